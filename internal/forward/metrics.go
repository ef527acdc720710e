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

package forward

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// The forwarder's metrics, in the callback server's subsystem (package delivery has the
// sinks').
// Their labels are fixed sets, never a URL (which may carry a token) nor anything of a request.
var (
	forwards = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "forwards_total",
		Help: "Pushes forwarded to the account's application (spec.forward), by result: ok (2xx), http_3xx, http_4xx, " +
			"http_5xx (relayed to WeChat as they are), timeout and error (WeChat got \"success\").",
	}, []string{"result"})
	forwardDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Subsystem: "callback",
		Name:      "forward_duration_seconds",
		Help:      "Time from forwarding a push to the application's whole answer, or to giving up.",
		Buckets:   []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 3, 4},
	})
)

func init() {
	metrics.Registry.MustRegister(forwards, forwardDuration)
}
