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
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// central is a central token service honouring the TokenSource.ExternalURL contract: it owns the
// AppID's token by calling stable_token on the fake.
type central struct {
	*httptest.Server
	calls int
}

func newCentral(t *testing.T, f *fixture) *central {
	c := &central{}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.calls++
		if r.Header.Get("Authorization") != "Bearer central" || r.URL.Query().Get("tenant") != "a" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		appID := r.URL.Query().Get("appid")
		if appID == "wxbroken" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		body := fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q}`, appID, testSecret)
		resp, err := http.Post(f.srv.URL+wechattest.EndpointStableToken, "application/json", strings.NewReader(body))
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		_ = json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(c.Close)
	return c
}

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want Class
	}{
		{fmt.Errorf("wrapped: %w", newError(45009, "quota")), ClassQuota},
		{fmt.Errorf("wrapped: %w", newError(42001, "expired")), ClassToken},
		{newError(-1, "busy"), ClassRetryable},
		{newError(99999, "new"), ClassTerminal},
		{&HTTPError{StatusCode: 500}, ClassRetryable},
		{&HTTPError{StatusCode: 429}, ClassRetryable},
		{&HTTPError{StatusCode: 400}, ClassTerminal},
		{context.DeadlineExceeded, ClassRetryable},
		{fmt.Errorf("x: %w", context.Canceled), ClassRetryable},
		{&url.Error{Op: "Post", URL: "https://x", Err: errors.New("connection refused")}, ClassRetryable},
		{errors.New("something else"), ClassTerminal},
	} {
		if got := ClassOf(tc.err); got != tc.want {
			t.Errorf("ClassOf(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
	if ErrCode(fmt.Errorf("a: %w", newError(40053, "m"))) != 40053 || ErrCode(errors.New("x")) != 0 {
		t.Error("ErrCode must unwrap *Error and answer 0 otherwise")
	}
	for c, want := range map[Class]string{ClassRetryable: "Retryable", ClassToken: "Token", ClassQuota: "Quota", ClassTerminal: "Terminal", Class(9): "Class(9)"} {
		if c.String() != want {
			t.Errorf("%d.String() = %s", int(c), c)
		}
	}
	for code := range errcodes {
		if newError(code, "m").Advice() == unknownAdvice {
			t.Errorf("errcode %d has no advice", code)
		}
	}
}

// TestErrorIn reads the errcode back from an error's text, as Error() writes it and wrapped.
func TestErrorIn(t *testing.T) {
	for _, tc := range []struct {
		text  string
		code  int
		class Class
		ok    bool
	}{
		{newError(45009, "api freq out of limit (rid: 1)").Error(), 45009, ClassQuota, true},
		{"batchtagging: " + newError(40001, "invalid credential").Error(), 40001, ClassToken, true},
		{fmt.Errorf("batchtagging: %w", newError(-1, "system error")).Error(), -1, ClassRetryable, true},
		{newError(48001, "").Error(), 48001, ClassTerminal, true},
		{newError(99999, "new").Error(), 99999, ClassTerminal, true},
		{"wechat errcode x (y): z", 0, 0, false},
		{"wechat errcode 45009", 0, 0, false},
		{`the tags "a" do not exist at WeChat yet`, 0, 0, false},
		{"", 0, 0, false},
	} {
		e, ok := ErrorIn(tc.text)
		if ok != tc.ok || ok && (e.Code != tc.code || e.Class != tc.class) {
			t.Errorf("ErrorIn(%q) = %+v, %v; want %d %v, %v", tc.text, e, ok, tc.code, tc.class, tc.ok)
		}
	}
}

// assertNoCredentials fails if any credential of the fixture's account appears in s.
func assertNoCredentials(t *testing.T, f *fixture, what, s string) {
	t.Helper()
	for _, secret := range append(f.srv.IssuedTokens(testAppID), testSecret) {
		if strings.Contains(s, secret) || strings.Contains(s, url.QueryEscape(secret)) {
			t.Errorf("%s leaks a credential: %s", what, s)
		}
	}
}

func TestRedaction(t *testing.T) {
	t.Run("timeout on qrcode/create", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Timeout = 200 * time.Millisecond })
		f.mustCreate()
		f.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Hang: true})
		_, err := f.create()
		if ClassOf(err) != ClassRetryable || !strings.Contains(err.Error(), "access_token=REDACTED") {
			t.Errorf("want a retryable error with the token redacted, got %v", err)
		}
		assertNoCredentials(t, f, "error", err.Error())
		var ue *url.Error
		if !errors.As(err, &ue) || !ue.Timeout() {
			t.Errorf("the redacted error must still be a timeout *url.Error: %#v", err)
		}
	})
	t.Run("timeout on the classic token endpoint", func(t *testing.T) {
		f := newFixture(t, func(o *Options) { o.Timeout = 200 * time.Millisecond })
		f.creds.Tokens.Mode = TokenModeClassic
		f.srv.FailNext(wechattest.EndpointToken, 1, wechattest.Fault{Hang: true})
		_, err := f.create()
		if ClassOf(err) != ClassRetryable || !strings.Contains(err.Error(), "secret=REDACTED") {
			t.Errorf("want a retryable error with the secret redacted, got %v", err)
		}
		assertNoCredentials(t, f, "error", err.Error())
	})
	t.Run("connection refused with a cached token", func(t *testing.T) {
		f := newFixture(t, nil)
		f.mustCreate()
		f.srv.Close()
		_, err := f.create()
		if ClassOf(err) != ClassRetryable || err == nil {
			t.Errorf("want a retryable error, got %v", err)
		}
		assertNoCredentials(t, f, "error", err.Error())
	})
	t.Run("errmsg echoing the secret", func(t *testing.T) {
		echo := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var in stableTokenRequest
			_ = json.NewDecoder(r.Body).Decode(&in)
			fmt.Fprintf(w, `{"errcode":40125,"errmsg":"invalid appsecret %s"}`, in.Secret)
		}))
		defer echo.Close()
		_, err := New(Options{APIBaseURL: echo.URL}).CreateQRCode(context.Background(), Credentials{AppID: testAppID, AppSecret: testSecret}, temp)
		if ErrCode(err) != 40125 || strings.Contains(err.Error(), testSecret) {
			t.Errorf("got %v", err)
		}
	})
	t.Run("metrics", func(t *testing.T) {
		f := newFixture(t, nil)
		f.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: 40001})
		f.mustCreate()
		families, err := metrics.Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range families {
			assertNoCredentials(t, f, "metric "+mf.GetName(), mf.String())
		}
		if !strings.Contains(f.logs.String(), "access token rejected") {
			t.Errorf("the rejection should be logged (without the token):\n%s", f.logs)
		}
	})
}

func histogramCount(t *testing.T, endpoint string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := apiLatency.WithLabelValues(endpoint).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}

func TestMetrics(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Timeout = 200 * time.Millisecond })
	f.mustCreate()
	for _, tc := range []struct {
		fault wechattest.Fault
		label string
	}{
		{wechattest.Fault{}, "0"},
		{wechattest.Fault{Errcode: 45009}, "45009"},
		{wechattest.Fault{Errcode: 61234}, "other"},
		{wechattest.Fault{HTTPStatus: 502}, "http_502"},
		{wechattest.Fault{Hang: true}, "timeout"},
	} {
		counter := apiCalls.WithLabelValues(endpointCreate, tc.label)
		before, observed := testutil.ToFloat64(counter), histogramCount(t, endpointCreate)
		if tc.fault != (wechattest.Fault{}) {
			f.srv.FailNext(wechattest.EndpointCreate, 1, tc.fault)
		}
		_, _ = f.create()
		if got := testutil.ToFloat64(counter) - before; got != 1 {
			t.Errorf("errcode label %q: +%v, want +1", tc.label, got)
		}
		if histogramCount(t, endpointCreate) != observed+1 {
			t.Errorf("%q: latency not observed", tc.label)
		}
	}
	if testutil.ToFloat64(tokenFetches.WithLabelValues("stable", "ok")) < 1 {
		t.Error("token fetches not counted")
	}
	problems, err := testutil.GatherAndLint(metrics.Registry,
		"wechat_qrcode_operator_wechat_api_calls_total",
		"wechat_qrcode_operator_wechat_api_request_duration_seconds",
		"wechat_qrcode_operator_wechat_token_fetches_total")
	if err != nil || len(problems) > 0 {
		t.Errorf("metric lint: %v %v", err, problems)
	}
}
