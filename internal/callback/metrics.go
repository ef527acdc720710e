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
			"and result (counted, duplicate, unmatched, ambiguous, gone, failed, acknowledged).",
	}, []string{"kind", "result"})
	commits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "commits_total",
		Help: "Annotation patch attempts by result: ok, conflict (re-read and retried), unchanged " +
			"(every event already counted), gone (the code was deleted), error.",
	}, []string{"result"})
	batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "commit_batch_events",
		Help:      "Events merged into one commit of one code.",
		Buckets:   []float64{1, 2, 5, 10, 20, 50, 100, 200, 500},
	})
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
		Help:      "1 when the account Secret (namespace/name, as configured) was read and is valid, else 0.",
	}, []string{"secret"})
)

func init() {
	metrics.Registry.MustRegister(refusals, events, commits, batchSize, pushDuration, accountLoaded)
}
