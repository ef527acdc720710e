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

package tagging

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// Results of a follower of a tag, the members metric's label: tagged, already (tagged lately:
// no call), failed (tried again), or a skip reason.
const (
	resultTagged  = "tagged"
	resultAlready = "already"
	resultFailed  = "failed"
)

// The tagging's metrics, in the manager's: no label names a code or an account (there may be
// 100,000), and none an OpenID.
var (
	members = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "tagging_members_total",
		Help: "Followers of a tag by result: tagged, already (tagged lately: no call), failed (the scans are sent again), " +
			"or skipped for good: invalid_openid (40003), foreign_openid (49003), follower_tag_limit (45059), no_tags (the code is gone or names no tags).",
	}, []string{"result"})
	batches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "tagging_batches_total",
		Help: "Batches of up to 50 followers of one tag by result: ok (all tagged in one call), skipped (WeChat refused some followers for good: " +
			"the batch was split to tag the others), failed (some to be tried again).",
	}, []string{"result"})
	calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "tagging_calls_total",
		Help:      "batchtagging calls by result: ok, or errcode_<N> (errcode_0: no errcode, e.g. WeChat unreachable).",
	}, []string{"result"})
	lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Name:      "tagging_lag_seconds",
		Help:      "Time from a scan (WeChat's CreateTime) to its scanner tagged.",
		Buckets:   []float64{0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	})
	requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "tagging_requests_total",
		Help:      "Requests of the callback server's deliverer to the tagging endpoint by answer: ok (every scanner tagged or skipped), retry (answered 5xx or 400: sent again). Requests refused as unauthenticated or unauthorized are not counted here.",
	}, []string{"result"})
)

func init() {
	metrics.Registry.MustRegister(members, batches, calls, lag, requests)
	// The series the dashboard plots exist from the start, at 0: a manager that has not tagged
	// yet shows a rate of 0, not "no data" that looks like a broken scrape.
	members.WithLabelValues(resultTagged)
	calls.WithLabelValues("ok")
	requests.WithLabelValues("ok")
}
