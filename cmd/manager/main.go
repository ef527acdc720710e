/*
Copyright 2026 The WeChat QR Code Operator Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

// Command manager runs the WeChatQRCode controller: the only process that calls WeChat's API and
// owns the accounts' access tokens.
package main

import (
	"context"
	"errors"
	"flag"
	"net/http"
	"os"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"

	"github.com/qrcode-operator/wechat-qrcode-operator/controllers"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/memlimit"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/securemetrics"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/tagging"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/version"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// leaderElectionID names the Lease; every replica of one installation must agree on it.
const leaderElectionID = "wechat-qrcode-operator.qrcode-operator.io"

type flags struct {
	metricsAddr, probeAddr  string
	pprofAddr               string
	metrics                 securemetrics.Serving
	leaderElect             bool
	leaderElectionNamespace string
	maxConcurrentReconciles int
	kubeQPS                 float64
	kubeBurst               int
	wechat                  wechat.Options
	externalTokenAuthFile   string
	clusterNamespace        string
	quotaInterval           time.Duration
	tagging                 tagging.Options
	taggingServer           tagging.ServerOptions
}

// bindFlags registers the command line on fs; the flags are complete once fs is parsed.
func bindFlags(fs *flag.FlagSet) (*flags, *zap.Options) {
	f := &flags{}
	fs.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0 disables)")
	f.metrics.BindFlags(fs)
	fs.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	// Off by default: it answers anyone who reaches it, and a profile costs CPU while it runs.
	fs.StringVar(&f.pprofAddr, "pprof-bind-address", "", "address of Go's /debug/pprof (heap and CPU profiles) over plain HTTP; empty disables")
	// On by default: two replicas that both led would both call WeChat and fight over the
	// accounts' tokens. Turn it off only for a single local process.
	fs.BoolVar(&f.leaderElect, "leader-elect", true, "elect one active manager among the replicas")
	fs.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader election Lease (default: the Pod's own)")
	// Reconciles wait mostly on WeChat (hundreds of ms from outside China, up to the timeout when
	// it hangs); four keep the per-AppID rate limit, not the workers, the bottleneck, and one slow
	// account from stalling the others.
	fs.IntVar(&f.maxConcurrentReconciles, "max-concurrent-reconciles", 4, "codes reconciled in parallel")
	// controller-runtime's defaults: an issuance costs one to three requests (a status patch, a
	// Normal Event within its budget, a live read when the cache's copy may be stale), so 20/s
	// keeps up with WeChat's default 5 creates/s per account.
	fs.Float64Var(&f.kubeQPS, "kube-api-qps", 20, "sustained requests per second to the Kubernetes API")
	fs.IntVar(&f.kubeBurst, "kube-api-burst", 30, "burst of requests to the Kubernetes API")

	fs.StringVar(&f.wechat.APIBaseURL, "wechat-api-url", wechat.DefaultAPIBaseURL, "base URL of WeChat's API (a fake or a proxy in tests)")
	fs.StringVar(&f.wechat.ImageBaseURL, "wechat-image-url", wechat.DefaultImageBaseURL, "base URL of status.imageURL (showqrcode)")
	fs.StringVar(&f.externalTokenAuthFile, "wechat-external-token-authorization-file", "",
		"file holding the Authorization header value sent to the token services of accounts with tokenSource External (mount it from a Secret)")
	fs.Float64Var(&f.wechat.QPS, "wechat-qps", wechat.DefaultQPS, "qrcode/create calls per second per AppID, unless the account's spec.rateLimit.qps says (WeChat allows 100,000 a day, 1.16/s sustained)")
	fs.IntVar(&f.wechat.Burst, "wechat-burst", wechat.DefaultBurst, "burst of qrcode/create calls per AppID, unless the account's spec.rateLimit.burst says")
	fs.StringVar(&f.clusterNamespace, "cluster-resource-namespace", "",
		"namespace of the ClusterWeChatAccounts' Secrets and of the projected push config (default: the Pod's namespace, $POD_NAMESPACE, else --leader-election-namespace)")
	// One read an hour is 24 calls a day of openapi/quota/get's own quota per account.
	fs.DurationVar(&f.quotaInterval, "quota-interval", time.Hour, "how often each Ready account's qrcode/create quota is read with openapi/quota/get (0 never)")
	fs.DurationVar(&f.wechat.Timeout, "wechat-timeout", wechat.DefaultTimeout, "timeout of each WeChat request, token fetches included")

	f.tagging = tagging.DefaultOptions()
	fs.StringVar(&f.taggingServer.BindAddress, "tagging-bind-address", ":9445",
		"address of the tagging endpoint (HTTPS), where the callback servers send the scans of codes with spec.tags while this manager leads (0 disables: their scanners are not tagged)")
	fs.StringVar(&f.taggingServer.AdvertiseHost, "tagging-advertise-address", "",
		"the address the callback servers reach the tagging endpoint at (default: the Pod's IP, $POD_IP; outside a Pod without it, no endpoint is served)")
	fs.DurationVar(&f.tagging.BatchWait, "tag-batch-wait", f.tagging.BatchWait,
		"how long the scanners of a tag left over after the full batchtagging calls of 50 wait for others, counted from the oldest of them, before they go as they are (at most 30s, within the deliverer's 45 s per tagging request)")

	zapOpts := &zap.Options{}
	zapOpts.BindFlags(fs)
	return f, zapOpts
}

func main() {
	// flag.CommandLine, because controller-runtime registers --kubeconfig there.
	f, zapOpts := bindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		version.Print(os.Stdout, "manager")
		return
	}
	log := zap.New(zap.UseFlagOptions(zapOpts))
	ctrl.SetLogger(log)
	// client-go's leader election and informers log through klog: same format, same sink.
	klog.SetLogger(log)
	memlimit.FromEnvironment(ctrl.Log.WithName("setup"))
	cfg, err := ctrl.GetConfig()
	if err == nil {
		err = run(ctrl.SetupSignalHandler(), cfg, *f)
	}
	if err != nil {
		ctrl.Log.WithName("setup").Error(err, "manager failed")
		os.Exit(1)
	}
}

// run runs the manager on the API server of cfg until ctx ends.
func run(ctx context.Context, cfg *rest.Config, f flags) error {
	if f.externalTokenAuthFile != "" {
		auth, err := os.ReadFile(f.externalTokenAuthFile)
		if err != nil {
			return err
		}
		f.wechat.ExternalTokenHeader = http.Header{"Authorization": {strings.TrimSpace(string(auth))}}
	}

	clusterNamespace := f.clusterNamespace
	for _, ns := range []string{os.Getenv("POD_NAMESPACE"), f.leaderElectionNamespace} {
		if clusterNamespace == "" {
			clusterNamespace = ns
		}
	}
	if clusterNamespace == "" {
		return errors.New("--cluster-resource-namespace is needed outside a Pod (no POD_NAMESPACE) without --leader-election-namespace")
	}

	cfg = rest.CopyConfig(cfg)
	cfg.QPS, cfg.Burst = float32(f.kubeQPS), f.kubeBurst
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme.New(),
		Metrics:                 f.metrics.Options(f.metricsAddr),
		HealthProbeBindAddress:  f.probeAddr,
		PprofBindAddress:        f.pprofAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        leaderElectionID,
		LeaderElectionNamespace: f.leaderElectionNamespace,
		// The process exits as soon as the manager stops, so the successor need not wait out the
		// Lease during a rolling update.
		LeaderElectionReleaseOnCancel: true,
		// Managed fields and the callback server's dedupe record are most of what the informers
		// would hold, and unused.
		Cache: cache.Options{DefaultTransform: controllers.CacheTransform()},
	})
	if err != nil {
		return err
	}

	wc := wechat.New(f.wechat)
	rs := controllers.New(controllers.Options{
		Client:                   mgr.GetClient(),
		APIReader:                mgr.GetAPIReader(),
		WeChat:                   wc,
		Recorder:                 mgr.GetEventRecorder("wechatqrcode-controller"),
		Clock:                    clock.RealClock{},
		ClusterResourceNamespace: clusterNamespace,
		QuotaInterval:            f.quotaInterval,
	})
	if err := rs.SetupWithManager(ctx, mgr, controller.Options{MaxConcurrentReconciles: f.maxConcurrentReconciles}); err != nil {
		return err
	}
	if err := addTagging(mgr, cfg, rs, wc, f); err != nil {
		return err
	}
	if err := metrics.Registry.Register(controllers.NewCodeCollector(mgr.GetCache(), mgr.Elected())); err != nil {
		return err
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	return mgr.Start(ctx)
}

// addTagging serves the tagging endpoint while the manager leads: on --tagging-bind-address, at
// the Pod's IP, to callers the API server authenticates and authorizes (post on /tagging), and
// published in the push config.
func addTagging(mgr ctrl.Manager, cfg *rest.Config, rs *controllers.Reconcilers, wc *wechat.Client, f flags) error {
	log := ctrl.Log.WithName("tagging")
	opts := f.taggingServer
	if opts.AdvertiseHost == "" {
		opts.AdvertiseHost = os.Getenv("POD_IP")
	}
	switch {
	case opts.BindAddress == "0":
		return nil
	case opts.AdvertiseHost == "":
		log.Info("no tagging endpoint: outside a Pod (no $POD_IP) without --tagging-advertise-address; the scanners of codes with spec.tags are not tagged")
		return nil
	}
	t, err := tagging.New(wc, rs.TaggingLookup(), clock.RealClock{}, f.tagging, log)
	if err != nil {
		return err
	}
	filter, err := filters.WithAuthenticationAndAuthorization(cfg, mgr.GetHTTPClient())
	if err != nil {
		return err
	}
	return mgr.Add(tagging.NewServer(t, opts, filter, rs.PushConfig.PublishTagging, mgr.GetClient().Status(), log))
}
