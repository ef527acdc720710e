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

package callback

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/go-logr/logr"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/clocked"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/election"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/fold"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushrecord"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/securemetrics"
)

// The callback server writes the codes' annotations (metadata) and, of the accounts' status, only
// status.callback (a merge patch of its own fields). Of Secrets it reads one, the push config
// the manager projects into the operator's namespace, by name (resourceNames; list and watch
// carry a metadata.name field selector): never an AppSecret, never another namespace. The
// ledger, the tally, the push records and the fold's Lease are in its own namespace (kustomize
// sets it), written by no one else: the manager has no rights on them.
//
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatqrcodes,verbs=get;list;watch;patch
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechataccounts/status;clusterwechataccounts/status;wechatqrcodes/status,verbs=patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch,resourceNames=wechat-qrcode-push-config,namespace=system
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatscanledgers,verbs=get;list;watch;create;patch;delete,namespace=system
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatscanledgers/status,verbs=patch,namespace=system
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatscantallies,verbs=get;create;update,namespace=system
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatpushrecords,verbs=list;create;patch;delete,namespace=system
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=system

// The Leases the replicas compete for: the fold's holder folds, the delivery's sends the scan
// events. Two Leases, so that the two loops can land on two replicas.
const (
	FoldLease     = "wechat-qrcode-callback-fold"
	DeliveryLease = "wechat-qrcode-callback-delivery"
)

// Config is a callback server process: Options plus its three listeners, each "0" to disable.
// Pushes come from the internet through an Ingress; probes and metrics stay inside the cluster,
// hence separate ports.
type Config struct {
	Options
	BindAddress            string
	HealthProbeBindAddress string
	MetricsBindAddress     string
	// PprofBindAddress serves Go's /debug/pprof over plain HTTP; empty: none.
	PprofBindAddress string
	// MetricsServing secures /metrics; its zero value is plain HTTP (tests), the flags' default
	// HTTPS with authentication and authorization.
	MetricsServing securemetrics.Serving
}

// NewManager returns a manager that serves pushes on cfg.BindAddress, and the Server itself for
// callers (tests) that serve it some other way.
func NewManager(rc *rest.Config, cfg Config) (manager.Manager, *Server, error) {
	if err := cfg.validate(); err != nil {
		return nil, nil, err
	}
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                cfg.MetricsServing.Options(cfg.MetricsBindAddress),
		HealthProbeBindAddress: cfg.HealthProbeBindAddress,
		PprofBindAddress:       cfg.PprofBindAddress,
		// Every replica serves; the fold and the delivery are led, each by a Lease of its own.
		Cache: cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		// Belt and braces: a cached Secret read would need list and watch on every Secret (the
		// keyring watches its one Secret itself), and a cached ledger would grow with the scans.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{
			&corev1.Secret{}, &qrv1alpha1.WeChatScanLedger{}, &qrv1alpha1.WeChatScanTally{}, &qrv1alpha1.WeChatPushRecord{},
		}}},
	})
	if err != nil {
		return nil, nil, err
	}
	s, err := Setup(mgr, cfg.Options)
	if err != nil {
		return nil, nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if cfg.BindAddress != "" && cfg.BindAddress != "0" {
		// Let in-flight pushes finish their commits when the Pod stops.
		shutdown := cfg.ReplyDeadline + time.Second
		err := mgr.Add(&manager.Server{
			Name: "wechat-push",
			Server: &http.Server{
				Addr: cfg.BindAddress,
				// Not a mux: every path goes through the refusal metric.
				Handler:           s,
				ReadHeaderTimeout: 2 * time.Second,
				ReadTimeout:       4 * time.Second,
				WriteTimeout:      cfg.ReplyDeadline + 2*time.Second,
				IdleTimeout:       90 * time.Second,
				MaxHeaderBytes:    16 << 10,
			},
			ShutdownTimeout: &shutdown,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return mgr, s, nil
}

// Setup adds the server's cache indexes, push config watch and push recorder to mgr, whose cache
// must not have started yet, and its readiness check: ready once the cache has synced and the
// push config has been read once. Serving it is the caller's business (see NewManager).
func Setup(mgr ctrl.Manager, opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := mgr.GetLogger().WithName("callback")
	codes, err := indexCodes(context.Background(), mgr.GetCache())
	if err != nil {
		return nil, err
	}
	cs, err := kubernetes.NewForConfig(mgr.GetConfig())
	if err != nil {
		return nil, err
	}
	s := newServer(opts, clock.RealClock{}, cs, codes, mgr.GetClient(), log)
	rec := pushrecord.NewRecorder(s.stats, clock.RealClock{}, mgr.GetClient(), opts.Namespace, opts.Identity, opts.RecordInterval, log.WithName("record"))
	for _, r := range []manager.Runnable{s.keyring, rec} {
		if err := mgr.Add(r); err != nil {
			return nil, err
		}
	}
	d, err := delivery.New(mgr.GetConfig(), mgr.GetScheme(), mgr.GetClient().Status(), routes{keys: s.keyring, codes: codes}, clock.RealClock{}, opts.delivering(), log.WithName("delivery"))
	if err != nil {
		return nil, err
	}
	deliverer, err := election.New(mgr.GetConfig(), opts.Namespace, DeliveryLease, opts.Identity, d, log.WithName("delivery"))
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(deliverer); err != nil {
		return nil, err
	}
	if opts.Fold.Interval > 0 {
		// The accounts' status.callback is reported under the fold's Lease, after each round.
		report := pushrecord.NewReporter(clock.RealClock{}, mgr.GetAPIReader(), mgr.GetClient(), mgr.GetClient().Status(), opts.Namespace, s.keyring, s.stats)
		f := fold.New(clock.RealClock{}, mgr.GetAPIReader(), mgr.GetCache(), mgr.GetClient(), report, opts.folding(), log)
		leader, err := election.New(mgr.GetConfig(), opts.Namespace, FoldLease, opts.Identity, f, log.WithName("fold"))
		if err != nil {
			return nil, err
		}
		if err := mgr.Add(leader); err != nil {
			return nil, err
		}
	}
	return s, mgr.AddReadyzCheck("callback", func(r *http.Request) error {
		if !s.keyring.loaded.Load() {
			return errors.New("push config not read yet")
		}
		ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("cache not synced")
		}
		return nil
	})
}

// newServer wires a Server: cs watches the push config Secret; codes serves the index lookups;
// writer appends to the ledger; clk times everything.
func newServer(opts Options, clk clock.WithDelayedExecution, cs kubernetes.Interface, codes codeIndex, writer client.Writer, log logr.Logger) *Server {
	keys := &keyring{client: cs, namespace: opts.Namespace, log: log, clock: clk, grace: opts.AccountGrace}
	keys.byAppID.Store(&map[string]*pushKeys{})
	return &Server{
		opts:      opts,
		forwarder: forward.New(clk, log),
		keyring:   keys,
		stats:     pushrecord.NewStats(clk),
		counter:   ledger.New(clk, writer, opts.Namespace, opts.Identity, opts.CommitWindow),
		codes:     codes,
		log:       log,
		sampler:   clocked.NewSampler(clk),
		clock:     clk,
	}
}
