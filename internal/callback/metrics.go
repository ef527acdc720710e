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
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// No label carries a value from the request: the path's appID, the scene or the ticket would let
// anyone on the internet create time series.
var (
	refusals = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "refusals_total",
		Help:      "Requests refused with a 4xx, by reason. Nothing of a refused request is counted.",
	}, []string{"reason"})
	events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "events_total",
		Help: "Verified pushes by kind (qr_subscribe, qr_scan, subscribe, unsubscribe, event, message) " +
			"and result (counted, duplicate, unmatched, ambiguous, failed, acknowledged).",
	}, []string{"kind", "result"})
	folds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "folds_total",
		Help:      "Fold rounds of the elected folder by result (ok, error), and tally shards written (shard_written).",
	}, []string{"result"})
	segmentsCollected = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "ledger_segments_collected_total",
		Help:      "Ledger segments deleted by the folder: fully folded and older than the dedupe window.",
	})
	malformedEntries = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "ledger_malformed_entries_total",
		Help:      "Ledger entries the folder skipped because they do not parse: written by something other than the callback server.",
	})
	viewPatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "view_patches_total",
		Help:      "Patches of a code's count annotations by the folder, by result: ok, gone (deleted or re-created), error.",
	}, []string{"result"})
	viewBacklog = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "view_backlog",
		Help:      "Codes whose count annotations lag their totals after the folder's last round, waiting for the view's patch budget (--view-patch-rate).",
	})
	statusPatches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "account_status_patches_total",
		Help:      "Patches of an account's status.callback by the folder, by result: ok, gone (account deleted), error.",
	}, []string{"result"})
	pushDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "push_duration_seconds",
		Help:      "Time from receiving a verified push to answering it; WeChat gives up after 5 s.",
		Buckets:   []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5},
	})
	accountLoaded = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "account_loaded",
		Help:      "1 for each account served, by AppID: its entry in the push config Secret is valid.",
	}, []string{"app_id"})
	accountDeparted = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "account_departed",
		Help: "1 for each account that left the push config less than --account-grace ago, by AppID: " +
			"its pushes are still verified and counted with its last keys.",
	}, []string{"app_id"})
)

// Per code, from the elected folder's tally: the labels are codes' names, which their owners
// choose, never anything from a request.
var (
	codeScans = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Name:      "code_scans",
		Help:      "Scans of a code, each event once (the elected folder reports it).",
	}, []string{"namespace", "name"})
	codeNewFollowers = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Name:      "code_new_followers",
		Help:      "Scans of a code that brought a new follower (subscribe).",
	}, []string{"namespace", "name"})
	codeUniqueScanners = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Name:      "code_unique_scanners",
		Help:      "Estimated distinct users who scanned a code (HyperLogLog, about 0.8% standard error).",
	}, []string{"namespace", "name"})
)

func observeCode(ns, name string, t qrv1alpha1.CodeTally) {
	codeScans.WithLabelValues(ns, name).Set(float64(t.Scans))
	codeNewFollowers.WithLabelValues(ns, name).Set(float64(t.Subscribes))
	codeUniqueScanners.WithLabelValues(ns, name).Set(float64(t.UniqueScanners))
}

func forgetCode(ns, name string) {
	for _, g := range []*prometheus.GaugeVec{codeScans, codeNewFollowers, codeUniqueScanners} {
		g.DeleteLabelValues(ns, name)
	}
}

func init() {
	metrics.Registry.MustRegister(codeScans, codeNewFollowers, codeUniqueScanners,
		refusals, events, folds, segmentsCollected, malformedEntries, viewPatches, viewBacklog, statusPatches, pushDuration,
		accountLoaded, accountDeparted)
}
