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
			"and result (counted, duplicate, unmatched, ambiguous, failed, acknowledged).",
	}, []string{"kind", "result"})
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

func init() {
	metrics.Registry.MustRegister(refusals, events, pushDuration, accountLoaded, accountDeparted)
}
