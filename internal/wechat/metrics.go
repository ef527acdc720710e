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

package wechat

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

// Endpoint label values.
const (
	endpointCreate        = "qrcode/create"
	endpointToken         = "token"
	endpointStableToken   = "stable_token"
	endpointExternalToken = "external_token"
	endpointQuota         = "openapi/quota/get"
	endpointTagsGet       = "tags/get"
	endpointTagsCreate    = "tags/create"
	endpointBatchTagging  = "tags/members/batchtagging"
	endpointGetIDList     = "tags/getidlist"
)

// There is no appid label: an operator may serve many accounts, and per-account trouble is
// reported on the WeChatQRCode resources (conditions, Events) rather than in time series.
var (
	apiCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "wechat_api_calls_total",
		Help: "Calls to the WeChat API by endpoint and outcome: errcode (0 = success, other = " +
			"an errcode outside the documented set), timeout, network or http_<status>.",
	}, []string{"endpoint", "errcode"})
	apiLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricnames.Namespace,
		Name:      "wechat_api_request_duration_seconds",
		Help:      "Latency of WeChat API calls by endpoint, failures included.",
		Buckets:   []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"endpoint"})
	tokenFetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricnames.Namespace,
		Name:      "wechat_token_fetches_total",
		Help:      "Access token fetches by mode (stable, stable_force, classic, external) and result (ok, error).",
	}, []string{"mode", "result"})
)

func init() {
	metrics.Registry.MustRegister(apiCalls, apiLatency, tokenFetches)
}

func observeCall(endpoint string, d time.Duration, err error) {
	apiLatency.WithLabelValues(endpoint).Observe(d.Seconds())
	apiCalls.WithLabelValues(endpoint, outcomeLabel(err)).Inc()
}

// outcomeLabel keeps the errcode label bounded: unknown errcodes fold into "other".
func outcomeLabel(err error) string {
	var we *Error
	var he *HTTPError
	switch {
	case err == nil:
		return "0"
	case errors.As(err, &we):
		if _, known := errcodes[we.Code]; known {
			return strconv.Itoa(we.Code)
		}
		return "other"
	case errors.As(err, &he):
		return "http_" + strconv.Itoa(he.StatusCode)
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case ClassOf(err) == ClassRetryable:
		return "network"
	}
	return "malformed"
}

func observeTokenFetch(mode string, force bool, err error) {
	if force {
		mode += "_force"
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	tokenFetches.WithLabelValues(mode, result).Inc()
}
