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

package controllers

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// Counters of what the reconciler did. errcode is bounded by WeChat's error list; 0 stands for
// failures without one (network, timeout, HTTP status), which class tells apart.
var (
	issuances = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "issuances_total",
		Help:      "Tickets issued, by code type and trigger (First, Renewal, AccountChanged, TypeChanged, SceneChanged).",
	}, []string{"type", "trigger"})
	issuanceFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "issuance_failures_total",
		Help:      "Failed attempts to issue a ticket, by WeChat errcode (0: none, e.g. network) and class (Retryable, Token, Quota, Terminal).",
	}, []string{"errcode", "class"})
)

func init() {
	metrics.Registry.MustRegister(issuances, issuanceFailures)
}

func countIssuance(code *v1alpha1.WeChatQRCode, trigger issuance.Trigger) {
	issuances.WithLabelValues(string(code.Spec.Type), string(trigger)).Inc()
}

func countFailure(err error) {
	issuanceFailures.WithLabelValues(strconv.Itoa(wechat.ErrCode(err)), wechat.ClassOf(err).String()).Inc()
}

var (
	codesDesc = prometheus.NewDesc(metricnames.Namespace+"_codes",
		"WeChatQRCodes by status and reason of their Ready condition (Unknown with an empty reason: not reconciled yet).",
		[]string{"ready", "reason"}, nil)
	expiryDesc = prometheus.NewDesc(metricnames.Namespace+"_ticket_expiration_timestamp_seconds",
		"When the current ticket of each Temporary code expires, in Unix seconds.",
		[]string{"namespace", "name"}, nil)
	renewalDesc = prometheus.NewDesc(metricnames.Namespace+"_ticket_renewal_timestamp_seconds",
		"When the operator will next ask WeChat for a ticket for each code (renewal or retry), in Unix seconds.",
		[]string{"namespace", "name"}, nil)
)

// CodeCollector reports the state of every WeChatQRCode, read from the informer cache at scrape
// time, so that it always matches the cluster and needs no bookkeeping when codes are deleted.
// Only the leader reports: the replicas' caches are alike, and sums over replicas must not count
// a code twice.
type CodeCollector struct {
	reader  client.Reader
	elected <-chan struct{}
}

// NewCodeCollector reads codes through reader (the manager's cache) once elected is closed.
func NewCodeCollector(reader client.Reader, elected <-chan struct{}) *CodeCollector {
	return &CodeCollector{reader: reader, elected: elected}
}

// Describe implements prometheus.Collector.
func (c *CodeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- codesDesc
	ch <- expiryDesc
	ch <- renewalDesc
}

// Collect implements prometheus.Collector.
func (c *CodeCollector) Collect(ch chan<- prometheus.Metric) {
	select {
	case <-c.elected:
	default:
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var codes v1alpha1.WeChatQRCodeList
	// Read-only: skipping the deep copy keeps a scrape of thousands of codes cheap.
	if err := c.reader.List(ctx, &codes, client.UnsafeDisableDeepCopy); err != nil {
		// An invalid metric would fail the whole scrape (controller-runtime serves with
		// HTTPErrorOnError) and hide every other metric; the gauges' absence is the signal.
		logf.Log.WithName("metrics").Error(err, "listing WeChatQRCodes for the code gauges")
		return
	}
	type state struct{ ready, reason string }
	counts := map[state]int{}
	for i := range codes.Items {
		code := &codes.Items[i]
		s := state{"Unknown", ""}
		if cond := code.ReadyCondition(); cond != nil {
			s = state{string(cond.Status), cond.Reason}
		}
		counts[s]++
		if t := code.Status.ExpiresAt; t != nil {
			ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, float64(t.Unix()), code.Namespace, code.Name)
		}
		if t := code.Status.RenewalTime; t != nil {
			ch <- prometheus.MustNewConstMetric(renewalDesc, prometheus.GaugeValue, float64(t.Unix()), code.Namespace, code.Name)
		}
	}
	for s, n := range counts {
		ch <- prometheus.MustNewConstMetric(codesDesc, prometheus.GaugeValue, float64(n), s.ready, s.reason)
	}
}
