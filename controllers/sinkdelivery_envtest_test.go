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
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
)

// TestSinkDeliveringEndToEnd: the manager and a real callback replica, whose elected deliverer
// sends a scan event from the ledger to a real HTTP sink that answers 503, the sink of both the
// code and its account. The deliverer reports it in each one's status.sinkDelivery; the manager
// turns their SinkDelivering False with the sink's answer in its message and a warning Event,
// Ready untouched. Once the sink answers, the event is delivered once and SinkDelivering turns
// True on both.
func TestSinkDeliveringEndToEnd(t *testing.T) {
	h := newHarness(t, 2)
	ns := h.ns[1]
	var failing atomic.Bool
	failing.Store(true)
	var delivered atomic.Int64
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		delivered.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(sink.Close)
	appID, secret := h.account()
	// With a push token: the callback server serves only accounts WeChat can push to.
	h.secret(ns, "acct", map[string]string{v1alpha1.AccountKeyAppID: appID, v1alpha1.AccountKeyAppSecret: secret, v1alpha1.AccountKeyToken: "tok"})
	acct := h.wechatAccount(ns, "acct", "acct", func(s *v1alpha1.WeChatAccountSpec) { s.Sink = &v1alpha1.Destination{URI: sink.URL + "/scans"} })
	accountDeliveringIs := func(status metav1.ConditionStatus, reason string) func(v1alpha1.Account) bool {
		return func(a v1alpha1.Account) bool {
			d := meta.FindStatusCondition(a.AccountStatus().Conditions, v1alpha1.ConditionSinkDelivering)
			return d != nil && d.Status == status && d.Reason == reason
		}
	}
	spec := temporarySpec("acct", strScene("poster"), time.Hour, 0)
	spec.Sink = &v1alpha1.Destination{URI: sink.URL + "/scans"}
	h.create(ns, "poster", spec)
	k := key(ns, "poster")
	deliveringIs := func(status metav1.ConditionStatus, reason string) func(*v1alpha1.WeChatQRCode) bool {
		return func(c *v1alpha1.WeChatQRCode) bool {
			d := meta.FindStatusCondition(c.Status.Conditions, v1alpha1.ConditionSinkDelivering)
			return c.IsReady() && d != nil && d.Status == status && d.Reason == reason
		}
	}
	code := h.waitFor(k, 30*time.Second, "awaiting a deliverer", deliveringIs(metav1.ConditionUnknown, v1alpha1.ReasonAwaitingDeliverer))

	opts := callback.DefaultOptions()
	opts.Namespace, opts.Identity, opts.Fold.Interval = h.operatorNS, "replica-0", 0
	opts.Delivery.StatusInterval = time.Second
	mgr, _, err := callback.NewManager(env.Config, callback.Config{Options: opts, BindAddress: "0", HealthProbeBindAddress: "0", MetricsBindAddress: "0"})
	h.must(err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	h.waitFor(k, 30*time.Second, "delivering, with nothing to deliver yet", deliveringIs(metav1.ConditionTrue, v1alpha1.ReasonDelivering))

	// A scan as a replica appends it to the ledger.
	now := time.Now()
	e := v1alpha1.LedgerEntry{Key: "k1", Code: ns + "/poster", UID: code.UID, Subscribe: true, At: now.UnixMilli(), Scanner: 1,
		Event: v1alpha1.LedgerEvent{AppID: appID, CreateTime: now.Unix(), OpenID: "o-1", Scene: "poster"}}
	h.must(h.c.Create(ctx, &v1alpha1.WeChatScanLedger{ObjectMeta: metav1.ObjectMeta{Namespace: h.operatorNS, Name: "replica-0-1-0"},
		Spec: v1alpha1.WeChatScanLedgerSpec{Batches: []string{v1alpha1.FormatLedgerBatch([]v1alpha1.LedgerEntry{e})}}}))

	code = h.waitFor(k, 30*time.Second, "failing", deliveringIs(metav1.ConditionFalse, v1alpha1.ReasonSinkFailing))
	msg := meta.FindStatusCondition(code.Status.Conditions, v1alpha1.ConditionSinkDelivering).Message
	if d := code.Status.SinkDelivery; !strings.Contains(msg, "answered 503") || !strings.Contains(msg, "1 scan events wait") ||
		d.Backlog != 1 || !strings.Contains(d.LastError, "503") || d.LastErrorTime == nil || strings.Contains(msg, sink.URL) {
		t.Errorf("message %q, report %+v: want the sink's 503, one event waiting, and no URL", msg, d)
	}
	h.waitEvent(k, corev1.EventTypeWarning, v1alpha1.ReasonSinkFailing, "503")
	h.waitAccount(key(ns, "acct"), acct, "failing", accountDeliveringIs(metav1.ConditionFalse, v1alpha1.ReasonSinkFailing))
	if d := acct.AccountStatus().SinkDelivery; d.Backlog != 1 || !strings.Contains(d.LastError, "503") {
		t.Errorf("the account's report %+v: want its one event waiting and the 503", d)
	}

	failing.Store(false)
	code = h.waitFor(k, time.Minute, "delivering again", func(c *v1alpha1.WeChatQRCode) bool {
		return deliveringIs(metav1.ConditionTrue, v1alpha1.ReasonDelivering)(c) && c.Status.SinkDelivery.Backlog == 0
	})
	if d := code.Status.SinkDelivery; delivered.Load() != 1 || d.LastError != "" || d.LastDeliveryTime == nil || d.Expired != 0 {
		t.Errorf("%d events delivered, report %+v: want one, its delivery time, no error", delivered.Load(), d)
	}
	h.waitAccount(key(ns, "acct"), acct, "delivering again", func(a v1alpha1.Account) bool {
		d := a.AccountStatus().SinkDelivery
		return accountDeliveringIs(metav1.ConditionTrue, v1alpha1.ReasonDelivering)(a) && d.Backlog == 0 && d.LastDeliveryTime != nil
	})
}
