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

package fold

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// The fold's metrics, in the callback server's subsystem (the folder runs there).
var (
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
	foldDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "fold_duration_seconds",
		Help:      "Duration of the elected folder's rounds: reading the ledger and the tally, folding, writing the shards, deleting segments, patching the view.",
		Buckets:   prometheus.ExponentialBuckets(0.005, 2, 12),
	})
	memoryRebuilds = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "fold_memory_rebuilds_total",
		Help:      "Times the folder built its dedupe memory from every retained ledger entry, by reason: lease (a new term), error (a round failed), shard (a tally shard written by another), segment (a segment rewritten).",
	}, []string{"reason"})
	dedupeMemory = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "fold_dedupe_memory_events",
		Help:      "Events in the elected folder's dedupe memory after its last round: those folded within the dedupe window plus 30 s.",
	})
	viewBacklog = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "view_backlog",
		Help:      "Codes whose count annotations lag their totals after the folder's last round, waiting for the view's patch budget (--view-patch-rate).",
	})
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
		folds, segmentsCollected, malformedEntries, viewPatches, viewBacklog, foldDuration, memoryRebuilds, dedupeMemory)
}
