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

package proc

import (
	"strconv"
	"time"
)

// ManagerArgs is a command line of cmd/manager in its flags' terms: the one place outside
// cmd/manager that spells them. A zero field leaves its flag out, so the manager's default holds,
// except LeaderElect, whose default (true) a local run must be able to turn off.
type ManagerArgs struct {
	Kubeconfig              string
	LeaderElect             bool
	LeaderElectionNamespace string
	// ClusterResourceNamespace is where ClusterWeChatAccounts' Secrets live; a run outside a Pod
	// needs it or LeaderElectionNamespace.
	ClusterResourceNamespace string
	MetricsAddr, ProbeAddr   string
	// PprofAddr serves Go's /debug/pprof (--pprof-bind-address); empty: none.
	PprofAddr string
	// PlainMetrics serves /metrics over plain HTTP without authentication (--metrics-secure=false):
	// local runs scrape it directly.
	PlainMetrics bool
	// WeChatURL is the base of both the API and the images: a fake WeChat serves both.
	WeChatURL string
	// WeChatQPS and WeChatBurst are the per-AppID rate limit of qrcode/create.
	WeChatQPS     float64
	WeChatBurst   int
	WeChatTimeout time.Duration
	KubeQPS       float64
	KubeBurst     int
	Workers       int
	// TaggingAddr and TaggingAdvertise place the tagging endpoint (a local run: 127.0.0.1:0,
	// advertised as 127.0.0.1); unset, a local run serves none.
	TaggingAddr, TaggingAdvertise string
	// Console makes the process log lines for a person at a terminal, not JSON for a pipeline.
	Console bool
}

// Args is the command line.
func (a ManagerArgs) Args() []string {
	var f flagList
	f.str("kubeconfig", a.Kubeconfig)
	f.add("leader-elect", strconv.FormatBool(a.LeaderElect))
	f.str("leader-election-namespace", a.LeaderElectionNamespace)
	f.str("cluster-resource-namespace", a.ClusterResourceNamespace)
	f.str("metrics-bind-address", a.MetricsAddr)
	f.plainMetrics(a.PlainMetrics)
	f.str("health-probe-bind-address", a.ProbeAddr)
	f.str("pprof-bind-address", a.PprofAddr)
	f.str("wechat-api-url", a.WeChatURL)
	f.str("wechat-image-url", a.WeChatURL)
	f.float("wechat-qps", a.WeChatQPS)
	f.int("wechat-burst", a.WeChatBurst)
	if a.WeChatTimeout > 0 {
		f.add("wechat-timeout", a.WeChatTimeout.String())
	}
	f.float("kube-api-qps", a.KubeQPS)
	f.int("kube-api-burst", a.KubeBurst)
	f.int("max-concurrent-reconciles", a.Workers)
	f.str("tagging-bind-address", a.TaggingAddr)
	f.str("tagging-advertise-address", a.TaggingAdvertise)
	f.console(a.Console)
	return f
}

// CallbackArgs is a command line of cmd/callback, as ManagerArgs is of cmd/manager.
type CallbackArgs struct {
	Kubeconfig string
	// Namespace (the operator's) holds the push config Secret, the ledger, the tallies and the
	// fold's Lease; Identity names this replica's ledger segments and push record.
	Namespace, Identity string
	// FoldInterval is how often the elected replica folds the ledger; zero keeps the default.
	FoldInterval                     time.Duration
	BindAddr, ProbeAddr, MetricsAddr string
	// PprofAddr serves Go's /debug/pprof (--pprof-bind-address); empty: none.
	PprofAddr string
	// PlainMetrics: as ManagerArgs.PlainMetrics.
	PlainMetrics bool
	Console      bool
}

// Args is the command line.
func (a CallbackArgs) Args() []string {
	var f flagList
	f.str("kubeconfig", a.Kubeconfig)
	f.str("namespace", a.Namespace)
	f.str("identity", a.Identity)
	if a.FoldInterval > 0 {
		f.add("fold-interval", a.FoldInterval.String())
	}
	f.str("bind-address", a.BindAddr)
	f.str("health-probe-bind-address", a.ProbeAddr)
	f.str("metrics-bind-address", a.MetricsAddr)
	f.str("pprof-bind-address", a.PprofAddr)
	f.plainMetrics(a.PlainMetrics)
	f.console(a.Console)
	return f
}

type flagList []string

func (f *flagList) add(name, value string) { *f = append(*f, "--"+name+"="+value) }

func (f *flagList) str(name, value string) {
	if value != "" {
		f.add(name, value)
	}
}

func (f *flagList) float(name string, value float64) {
	if value != 0 {
		f.add(name, strconv.FormatFloat(value, 'f', -1, 64))
	}
}

func (f *flagList) int(name string, value int) {
	if value != 0 {
		f.add(name, strconv.Itoa(value))
	}
}

func (f *flagList) plainMetrics(on bool) {
	if on {
		f.add("metrics-secure", "false")
	}
}

// console selects controller-runtime's zap console encoder, which both programs bind.
func (f *flagList) console(on bool) {
	if on {
		f.add("zap-encoder", "console")
	}
}
