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

package delivery

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// The delivery's metrics, in the callback server's subsystem (the deliverer runs there). Their
// labels are fixed sets, never a URL (which may carry a token).
var (
	deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_deliveries_total",
		Help: "Scan events by outcome for each sink: ok (acknowledged), rejected (a 4xx other than 408 and 429, not sent again), " +
			"expired (older than the sink's retention, or the oldest beyond --sink-backlog-limit), no_sink (its account and code had no sink any more).",
	}, []string{"result"})
	retries = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_retries_total",
		Help:      "Failed tries to deliver scan events (no answer, a 5xx, 408 or 429), each followed by the sink's backoff.",
	})
	requestDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_delivery_duration_seconds",
		Help:      "Time of one try to deliver scan events to a sink.",
		Buckets:   []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
	})
	requestEvents = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_request_events",
		Help:      "Scan events one try carried: 1 in binary mode, up to spec.sink.batch.maxEvents in batched mode.",
		Buckets:   []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000},
	})
	lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_delivery_lag_seconds",
		Help:      "Time from a scan's arrival to its event's acknowledgement by a sink.",
		Buckets:   []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	})
	backlogEvents = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_backlog_events",
		Help:      "Scan events the deliverer holds for their sinks, all sinks together (at most --sink-backlog-limit); 0 on replicas that do not deliver.",
	})
	oldestUndelivered = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_oldest_undelivered_seconds",
		Help:      "Age of the oldest scan event not yet acknowledged by its sink; 0 when none waits.",
	})
	commits = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_offset_commits_total",
		Help:      "Writes of delivery offsets into ledger segments' status, by result: ok, gone (the segment was deleted), error.",
	}, []string{"result"})
	statusWrites = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "sink_status_writes_total",
		Help:      "Writes of status.sinkDelivery into accounts and codes with a sink, by result: ok, gone (the resource was deleted), error.",
	}, []string{"result"})
)

func init() {
	metrics.Registry.MustRegister(deliveries, retries, requestDuration, requestEvents, lag, backlogEvents, oldestUndelivered, commits, statusWrites)
}
