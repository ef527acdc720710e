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

// Command callback is the server WeChat pushes scan events to (the sidecar of the manager); see
// package internal/callback.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/memlimit"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/version"
)

// bindFlags registers the command line on fs; the Config is complete once fs is parsed.
func bindFlags(fs *flag.FlagSet) (*callback.Config, *zap.Options) {
	cfg := &callback.Config{Options: callback.DefaultOptions()}
	// The ports differ from the manager's conventional 8080/8081: both containers share the Pod's
	// network namespace.
	fs.StringVar(&cfg.BindAddress, "bind-address", ":8090", "address WeChat's pushes are served on (plain HTTP behind the Ingress)")
	fs.StringVar(&cfg.HealthProbeBindAddress, "health-probe-bind-address", ":8091", "address of /healthz and /readyz (0 disables)")
	fs.StringVar(&cfg.MetricsBindAddress, "metrics-bind-address", ":8092", "address of /metrics (0 disables)")
	// Off by default: it answers anyone who reaches it, and a profile costs CPU while it runs.
	fs.StringVar(&cfg.PprofBindAddress, "pprof-bind-address", "", "address of Go's /debug/pprof (heap and CPU profiles) over plain HTTP; empty disables")
	cfg.MetricsServing.BindFlags(fs)
	fs.DurationVar(&cfg.MaxClockSkew, "max-clock-skew", cfg.MaxClockSkew, "largest accepted difference, either way, between a push's timestamp and our clock")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", cfg.MaxBodyBytes, "largest accepted push body")
	fs.DurationVar(&cfg.ReplyDeadline, "reply-deadline", cfg.ReplyDeadline, "longest wait for a scan to be persisted before answering 503 (WeChat gives up at 5s)")
	fs.DurationVar(&cfg.CommitWindow, "commit-window", cfg.CommitWindow, "scans within this window share one ledger write")
	fs.DurationVar(&cfg.Fold.DedupeWindow, "dedupe-window", cfg.Fold.DedupeWindow, "how long after an event its retries are still recognised (at least 1m)")
	fs.DurationVar(&cfg.Fold.Interval, "fold-interval", cfg.Fold.Interval, "how often the elected replica folds the ledger into the codes' counts and the accounts' status.callback; both lag by about this (0: never fold on this replica)")
	fs.Float64Var(&cfg.Fold.ViewPatchRate, "view-patch-rate", cfg.Fold.ViewPatchRate, "most codes' count annotations the folder patches per second (a burst of one fold interval's worth); beyond that the longest stale go first, while the tally and the per-code metrics stay exact every fold")
	fs.DurationVar(&cfg.RecordInterval, "record-interval", cfg.RecordInterval, "how often this replica writes its push record (verified and refused pushes per account), when it changed")
	fs.IntVar(&cfg.Delivery.Workers, "sink-workers", cfg.Delivery.Workers, "requests in flight to each sink, at most (its connections): a sink gets at most this many divided by its answer time per second (times maxEvents in batched mode)")
	fs.DurationVar(&cfg.Delivery.CommitInterval, "sink-commit-interval", cfg.Delivery.CommitInterval, "how often the deliverer records in the ledger how far each sink has its events: what a deliverer that takes over sends again, at most")
	fs.DurationVar(&cfg.Delivery.StatusInterval, "sink-status-interval", cfg.Delivery.StatusInterval, "how often the deliverer considers writing status.sinkDelivery of the accounts and codes with a sink (1s to 20s): each is written at most this often, and only when its delivery changed meaningfully")
	fs.IntVar(&cfg.Delivery.BacklogLimit, "sink-backlog-limit", cfg.Delivery.BacklogLimit, "scan events kept for sinks that are down or slow, all sinks together (about 300 bytes each in etcd); beyond it the oldest expire, counted in sink_deliveries_total{result=\"expired\"}")
	fs.DurationVar(&cfg.AccountGrace, "account-grace", cfg.AccountGrace, "how long an account that left the push config is still served with its last keys, its pushes verified and counted: "+
		"a GitOps prune and re-sync or kubectl replace --force deletes and re-creates it, and WeChat retries a push only 3 times about 5s apart (0: refuse at once)")
	// In a Pod the Downward API sets both: the ledger and the tally live in the Pod's namespace,
	// and the Pod's name keeps the replicas' ledger segments apart.
	fs.StringVar(&cfg.Namespace, "namespace", os.Getenv("POD_NAMESPACE"), "the operator's namespace, where the push config Secret, the scan ledger and tally live (default $POD_NAMESPACE)")
	fs.StringVar(&cfg.Identity, "identity", defaultIdentity(), "this replica's name among the replicas, in its ledger segments' names (default $POD_NAME, else <hostname>-<pid>)")
	// The same --zap-* flags and log format as the manager, so both containers' logs read alike.
	zapOpts := &zap.Options{}
	zapOpts.BindFlags(fs)
	return cfg, zapOpts
}

func defaultIdentity() string {
	if id := os.Getenv("POD_NAME"); id != "" {
		return id
	}
	host, _ := os.Hostname()
	return strings.ToLower(fmt.Sprintf("%s-%d", host, os.Getpid()))
}

func main() {
	// flag.CommandLine, because controller-runtime registers --kubeconfig there.
	cfg, zapOpts := bindFlags(flag.CommandLine)
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		version.Print(os.Stdout, "callback")
		return
	}
	log := zap.New(zap.UseFlagOptions(zapOpts))
	ctrl.SetLogger(log)
	klog.SetLogger(log)
	memlimit.FromEnvironment(ctrl.Log.WithName("setup"))

	rc, err := ctrl.GetConfig()
	if err == nil {
		var mgr ctrl.Manager
		if mgr, _, err = callback.NewManager(rc, *cfg); err == nil {
			err = mgr.Start(ctrl.SetupSignalHandler())
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "callback:", err)
		os.Exit(1)
	}
}
