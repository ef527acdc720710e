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
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

type kind struct {
	name   string
	spec   func(account string) v1alpha1.WeChatQRCodeSpec
	action string
}

// fourKinds are the four WeChat actions; temporary ones live long enough that nothing is due
// during a test.
var fourKinds = []kind{
	{"temporary-id", func(a string) v1alpha1.WeChatQRCodeSpec {
		return temporarySpec(a, idScene(123), time.Hour, 0)
	}, "QR_SCENE"},
	{"temporary-str", func(a string) v1alpha1.WeChatQRCodeSpec {
		return temporarySpec(a, strScene("spring-sale"), 2*time.Hour, 30*time.Minute)
	}, "QR_STR_SCENE"},
	{"permanent-id", func(a string) v1alpha1.WeChatQRCodeSpec { return permanentSpec(a, idScene(77)) }, "QR_LIMIT_SCENE"},
	{"permanent-str", func(a string) v1alpha1.WeChatQRCodeSpec { return permanentSpec(a, strScene("poster")) }, "QR_LIMIT_STR_SCENE"},
}

func (h *harness) createFourKinds(ns, account string) []*v1alpha1.WeChatQRCode {
	h.t.Helper()
	for _, k := range fourKinds {
		h.create(ns, k.name, k.spec(account))
	}
	var codes []*v1alpha1.WeChatQRCode
	for _, k := range fourKinds {
		codes = append(codes, h.waitReady(key(ns, k.name), metav1.ConditionTrue, v1alpha1.ReasonIssued))
	}
	return codes
}

func TestIssuesEveryKind(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, _ := h.accountSecret(ns, "official-account")
	firstTemporary := testutil.ToFloat64(issuances.WithLabelValues("Temporary", "First"))
	firstPermanent := testutil.ToFloat64(issuances.WithLabelValues("Permanent", "First"))

	codes := h.createFourKinds(ns, "official-account")
	for i, k := range fourKinds {
		code, st := codes[i], codes[i].Status
		t.Run(k.name, func(t *testing.T) {
			issued, ok := h.fake.Code(st.Ticket)
			if !ok {
				t.Fatalf("WeChat never issued ticket %q", st.Ticket)
			}
			if issued.AppID != appID || issued.Action != k.action || issued.Scene() != code.Spec.Scene.Key() || issued.URL != st.URL {
				t.Errorf("WeChat issued %+v; status has url %q", issued, st.URL)
			}
			if want := h.fake.URL + "/cgi-bin/showqrcode?ticket=" + url.QueryEscape(st.Ticket); st.ImageURL != want {
				t.Errorf("imageURL = %q, want %q", st.ImageURL, want)
			}
			resp, err := http.Get(st.ImageURL)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" {
				t.Errorf("GET imageURL: %s %s", resp.Status, resp.Header.Get("Content-Type"))
			}
			if f := st.IssuedFor; f == nil || f.AppID != appID || f.Type != code.Spec.Type || !f.Scene.Equal(code.Spec.Scene) {
				t.Errorf("issuedFor = %+v", f)
			}
			if code.Spec.Type == v1alpha1.Permanent {
				if st.ExpiresAt != nil || st.RenewalTime != nil {
					t.Errorf("permanent code with expiresAt %v renewalTime %v", st.ExpiresAt, st.RenewalTime)
				}
			} else {
				// Never later than WeChat's own expiry, and at most the truncation to the second
				// plus the call's duration earlier.
				if lead := issued.ExpiresAt.Sub(st.ExpiresAt.Time); lead < 0 || lead > 2*time.Second {
					t.Errorf("expiresAt %s, WeChat's %s", st.ExpiresAt.Time, issued.ExpiresAt)
				}
				if issued.ExpireSeconds != int64(code.Spec.TTL.Seconds()) {
					t.Errorf("requested %d s for ttl %s", issued.ExpireSeconds, code.Spec.TTL.Duration)
				}
				lifetime, renewBefore := st.ExpiresAt.Sub(st.IssuedAt.Time), st.ExpiresAt.Sub(st.IssuedAt.Time)/3
				if code.Spec.RenewBefore != nil {
					renewBefore = code.Spec.RenewBefore.Duration
				}
				if st.RenewalTime.Before(&metav1.Time{Time: st.IssuedAt.Add(lifetime / 10)}) || st.RenewalTime.After(st.ExpiresAt.Add(-renewBefore)) {
					t.Errorf("renewalTime %s outside [issuedAt + a tenth of %s, expiresAt - %s]", st.RenewalTime.Time, lifetime, renewBefore)
				}
			}
			if st.ObservedGeneration != code.Generation || st.FailedAttempts != 0 {
				t.Errorf("observedGeneration %d (generation %d), failedAttempts %d", st.ObservedGeneration, code.Generation, st.FailedAttempts)
			}
			h.waitEvent(key(ns, k.name), corev1.EventTypeNormal, v1alpha1.EventIssued, "issued")
		})
	}

	if n := h.fake.Calls(wechattest.EndpointCreate); n != 4 {
		t.Errorf("%d qrcode/create calls for 4 codes", n)
	}
	if n := h.secretReads.Load(); n != 1 {
		t.Errorf("the Secret's data was read %d times for 4 codes, want once (memoized by resourceVersion)", n)
	}
	if d := testutil.ToFloat64(issuances.WithLabelValues("Temporary", "First")) - firstTemporary; d != 2 {
		t.Errorf("issuances_total{Temporary,First} grew by %v", d)
	}
	if d := testutil.ToFloat64(issuances.WithLabelValues("Permanent", "First")) - firstPermanent; d != 2 {
		t.Errorf("issuances_total{Permanent,First} grew by %v", d)
	}

	want := `
# HELP wechat_qrcode_operator_codes WeChatQRCodes by status and reason of their Ready condition (Unknown with an empty reason: not reconciled yet).
# TYPE wechat_qrcode_operator_codes gauge
wechat_qrcode_operator_codes{ready="True",reason="Issued"} 4
`
	if err := testutil.CollectAndCompare(h.collector, strings.NewReader(want), "wechat_qrcode_operator_codes"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(h.collector, "wechat_qrcode_operator_ticket_expiration_timestamp_seconds"); n != 2 {
		t.Errorf("%d expiry series, want one per temporary code", n)
	}
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(h.collector); err != nil {
		t.Errorf("collector rejected by a pedantic registry: %v", err)
	}
}

// TestRenewsOnTimeAndKeepsThePreviousTicket: a 30-day ticket (WeChat's longest) is renewed at
// its renewal time, not a second before, and the ticket it replaces is kept until it expires.
func TestRenewsOnTimeAndKeepsThePreviousTicket(t *testing.T) {
	h := newDirectHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	h.create(ns, "month", temporarySpec("acct", idScene(42), 720*time.Hour, 24*time.Hour))
	k := key(ns, "month")
	res, first := h.reconcile(k)
	if !readyIs(metav1.ConditionTrue, v1alpha1.ReasonIssued)(first) {
		t.Fatalf("not issued: %+v", first.Status)
	}
	st := first.Status
	if d := st.ExpiresAt.Sub(st.IssuedAt.Time); d != 720*time.Hour {
		t.Fatalf("ticket lives %s, want 720h", d)
	}
	// Renewal 24h before expiry, less up to a tenth of the 696h the ticket is current.
	untilRenewal := st.RenewalTime.Sub(h.clock.Now())
	if untilRenewal > 696*time.Hour || untilRenewal < 696*time.Hour-70*time.Hour {
		t.Fatalf("renewal in %s", untilRenewal)
	}
	if res.RequeueAfter != untilRenewal {
		t.Errorf("RequeueAfter %s, want the renewal in %s", res.RequeueAfter, untilRenewal)
	}

	h.step(untilRenewal - time.Second)
	if _, c := h.reconcile(k); c.Status.Ticket != st.Ticket || h.fake.Calls(wechattest.EndpointCreate) != 1 {
		t.Fatalf("renewed a second early")
	}
	h.step(time.Second)
	res, second := h.reconcile(k)
	if second.Status.Ticket == st.Ticket || !second.Status.IssuedAt.Equal(st.RenewalTime) {
		t.Fatalf("not renewed at the renewal time: %+v", second.Status)
	}
	wantPrev := []v1alpha1.PreviousTicket{{Ticket: st.Ticket, AppID: st.IssuedFor.AppID, Scene: idScene(42), ExpiresAt: st.ExpiresAt}}
	if !equality.Semantic.DeepEqual(second.Status.PreviousTickets, wantPrev) {
		t.Errorf("previousTickets = %+v, want %+v", second.Status.PreviousTickets, wantPrev)
	}
	if old, _ := h.fake.Code(st.Ticket); !h.clock.Now().Before(old.ExpiresAt) {
		t.Errorf("the previous ticket is kept although WeChat expired it at %s", old.ExpiresAt)
	}
	h.waitEvent(k, corev1.EventTypeNormal, v1alpha1.EventRenewed)
	if res.RequeueAfter != st.ExpiresAt.Sub(h.clock.Now()) {
		t.Errorf("RequeueAfter %s, want the previous ticket's expiry in %s", res.RequeueAfter, st.ExpiresAt.Sub(h.clock.Now()))
	}

	h.step(res.RequeueAfter)
	if _, c := h.reconcile(k); len(c.Status.PreviousTickets) != 0 {
		t.Errorf("expired previous ticket kept: %+v", c.Status.PreviousTickets)
	}
	if n := h.fake.Calls(wechattest.EndpointCreate); n != 2 {
		t.Errorf("%d create calls, want 2", n)
	}
}

// TestRenewalFailingUntilExpiry: a renewal refused until the ticket expires leaves one clear
// message: expired at T, the errcode, the next attempt.
func TestRenewalFailingUntilExpiry(t *testing.T) {
	h := newDirectHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	h.create(ns, "code", temporarySpec("acct", idScene(7), time.Hour, 20*time.Minute))
	k := key(ns, "code")
	_, issued := h.reconcile(k)
	h.step(issued.Status.RenewalTime.Sub(h.clock.Now()))

	h.fake.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: 40164})
	_, renewing := h.reconcile(k)
	if !readyIs(metav1.ConditionTrue, v1alpha1.ReasonRenewing)(renewing) {
		t.Fatalf("after a failed renewal: %+v", renewing.Status.Conditions)
	}
	if msg := readyCondition(renewing).Message; !containsAll(msg, "valid until "+issued.Status.ExpiresAt.UTC().Format(time.RFC3339), "errcode 40164", "next attempt at") {
		t.Errorf("Renewing message %q", msg)
	}
	expectConditions(t, renewing, "", v1alpha1.ReasonWeChatError(40164))

	h.step(issued.Status.ExpiresAt.Sub(h.clock.Now()))
	_, expired := h.reconcile(k)
	if !readyIs(metav1.ConditionFalse, v1alpha1.ReasonExpired)(expired) {
		t.Fatalf("after expiry: %+v", expired.Status.Conditions)
	}
	msg := readyCondition(expired).Message
	want := "The ticket expired at " + issued.Status.ExpiresAt.UTC().Format(time.RFC3339) + "; its renewal is failing: "
	if !strings.HasPrefix(msg, want) || !containsAll(msg, "errcode 40164", "next attempt at "+expired.Status.RenewalTime.UTC().Format(time.RFC3339)) || strings.Contains(msg, "valid until") {
		t.Errorf("Expired message %q, want it to start %q, name the next attempt and not say the ticket is valid", msg, want)
	}
	h.waitEvent(k, corev1.EventTypeWarning, v1alpha1.ReasonExpired, want, "errcode 40164")
	if n := h.fake.Calls(wechattest.EndpointCreate); n != 2 {
		t.Errorf("%d create calls, want 2 (none during the backoff)", n)
	}
}

// expectConditions checks kstatus's abnormal-true conditions: Reconciling or Stalled True with
// that reason, or ("") absent.
func expectConditions(t *testing.T, c *v1alpha1.WeChatQRCode, reconciling, stalled string) {
	t.Helper()
	for _, want := range []struct{ typ, reason string }{
		{v1alpha1.ConditionReconciling, reconciling}, {v1alpha1.ConditionStalled, stalled},
	} {
		got := c.Status.Condition(want.typ)
		switch {
		case want.reason == "" && got != nil:
			t.Errorf("%s present: %+v", want.typ, *got)
		case want.reason != "" && (got == nil || got.Status != metav1.ConditionTrue || got.Reason != want.reason):
			t.Errorf("%s = %+v, want True/%s", want.typ, got, want.reason)
		}
	}
}

// TestRestartMakesNoWeChatCalls: a new manager with a new WeChat client reconciles every code
// and asks WeChat nothing, tokens included.
func TestRestartMakesNoWeChatCalls(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	before := h.createFourKinds(ns, "acct")
	h.stop()
	calls := h.wechatCalls()
	done := reconciles(t)

	h.start()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		return reconciles(t)-done >= float64(len(before)), nil
	})
	if err != nil {
		t.Fatalf("the new manager reconciled %v codes, want %d", reconciles(t)-done, len(before))
	}
	if n := h.wechatCalls() - calls; n != 0 {
		t.Errorf("%d WeChat calls after the restart", n)
	}
	for _, b := range before {
		after := &v1alpha1.WeChatQRCode{}
		h.must(h.c.Get(context.Background(), client.ObjectKeyFromObject(b), after))
		if !equality.Semantic.DeepEqual(after.Status, b.Status) {
			t.Errorf("%s: status changed across the restart", b.Name)
		}
	}
}

// TestAnnotationUpdatesAreIgnored: the callback server's scan counts trigger no reconcile and no
// WeChat call.
func TestAnnotationUpdatesAreIgnored(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	codes := h.createFourKinds(ns, "acct")
	time.Sleep(time.Second) // let the reconciles of the final status writes finish
	calls, done := h.wechatCalls(), reconciles(t)

	for round := 1; round <= 3; round++ {
		for _, c := range codes {
			patch := []byte(`{"metadata":{"annotations":{"` + v1alpha1.AnnotationScans + `":"` + string(rune('0'+round)) + `"}}}`)
			h.must(h.c.Patch(context.Background(), c, client.RawPatch("application/merge-patch+json", patch)))
		}
	}
	// Proving that nothing happens takes a wait; 2 s is many times the reconcile latency seen above.
	time.Sleep(2 * time.Second)
	if n := reconciles(t) - done; n != 0 {
		t.Errorf("%v reconciles after annotation updates", n)
	}
	if n := h.wechatCalls() - calls; n != 0 {
		t.Errorf("%d WeChat calls after annotation updates", n)
	}
}

// TestFailures: each class of WeChat failure backs off for its time on the clock, makes no call
// before, and recovers after (transient, quota) or at a change of the Secret (terminal).
func TestFailures(t *testing.T) {
	h := newDirectHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")

	cases := []struct {
		name      string
		fault     wechattest.Fault
		times     int // the client retries a token error once
		permanent bool
		reason    string
		note      []string
		// The backoff until the next attempt, within these bounds.
		minDelay, maxDelay time.Duration
		// recovery: "clock" (the backoff runs out), "secret" (a change of the Secret).
		recovery string
		class    string
		// kstatus: which abnormal-true condition the failure sets.
		reconciling, stalled bool
	}{
		{name: "system busy", fault: wechattest.Fault{Errcode: -1}, times: 1, reason: "WeChatErrorMinus1",
			note: []string{"errcode -1", "system error"}, minDelay: 4 * time.Second, maxDelay: 5 * time.Second, recovery: "clock", class: "Retryable", reconciling: true},
		{name: "proxy failure", fault: wechattest.Fault{HTTPStatus: http.StatusBadGateway}, times: 1, reason: v1alpha1.ReasonWeChatUnreachable,
			note: []string{"502"}, minDelay: 4 * time.Second, maxDelay: 5 * time.Second, recovery: "clock", class: "Retryable", reconciling: true},
		{name: "token rejected twice", fault: wechattest.Fault{Errcode: 40001}, times: 2, reason: "WeChatError40001",
			note: []string{"errcode 40001", "retried once"}, minDelay: 4 * time.Second, maxDelay: 5 * time.Second, recovery: "clock", class: "Token", reconciling: true},
		{name: "IP not allowlisted", fault: wechattest.Fault{Errcode: 40164}, times: 1, reason: "WeChatError40164",
			note: []string{"errcode 40164", "whitelist", "allowlist"}, minDelay: 48 * time.Minute, maxDelay: time.Hour, recovery: "secret", class: "Terminal", stalled: true},
		{name: "unauthorized account", fault: wechattest.Fault{Errcode: 48001}, times: 1, reason: "WeChatError48001",
			note: []string{"errcode 48001", "verified service account"}, minDelay: 48 * time.Minute, maxDelay: time.Hour, recovery: "secret", class: "Terminal", stalled: true},
		{name: "permanent cap", fault: wechattest.Fault{Errcode: 45029}, times: 1, permanent: true, reason: "WeChatError45029",
			note: []string{"errcode 45029", "100,000 permanent"}, minDelay: 48 * time.Minute, maxDelay: time.Hour, recovery: "secret", class: "Terminal", stalled: true},
		{name: "daily quota", fault: wechattest.Fault{Errcode: 45009}, times: 1, reason: v1alpha1.ReasonQuotaExhausted,
			note: []string{"errcode 45009", "quota", "next attempt at"}, minDelay: 0, maxDelay: 24*time.Hour + 15*time.Minute, recovery: "clock", class: "Quota", reconciling: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			name := "failing-" + string(rune('a'+i))
			k := key(ns, name)
			failures := testutil.ToFloat64(issuanceFailures.WithLabelValues(strconv.Itoa(tc.fault.Errcode), tc.class))
			spec := temporarySpec("acct", idScene(int64(1000+i)), time.Hour, 0)
			if tc.permanent {
				spec = permanentSpec("acct", idScene(int64(1000+i)))
			}
			creates := h.fake.Calls(wechattest.EndpointCreate)
			h.fake.FailNext(wechattest.EndpointCreate, tc.times, tc.fault)
			h.create(ns, name, spec)

			res, failed := h.reconcile(k)
			if !readyIs(metav1.ConditionFalse, tc.reason)(failed) {
				t.Fatalf("Ready = %+v, want False/%s", readyCondition(failed), tc.reason)
			}
			st := failed.Status
			if !containsAll(readyCondition(failed).Message, tc.note...) {
				t.Errorf("condition message %q lacks %q", readyCondition(failed).Message, tc.note)
			}
			reconciling, stalled := "", ""
			if tc.reconciling {
				reconciling = tc.reason
			}
			if tc.stalled {
				stalled = tc.reason
			}
			expectConditions(t, failed, reconciling, stalled)
			if st.FailedAttempts != 1 || st.LastFailureTime == nil || st.RenewalTime == nil {
				t.Fatalf("failedAttempts %d, lastFailureTime %v, renewalTime %v", st.FailedAttempts, st.LastFailureTime, st.RenewalTime)
			}
			backoff := st.RenewalTime.Sub(h.clock.Now())
			if backoff < tc.minDelay || backoff > tc.maxDelay || res.RequeueAfter != backoff {
				t.Errorf("next attempt in %s (RequeueAfter %s), want %s to %s", backoff, res.RequeueAfter, tc.minDelay, tc.maxDelay)
			}
			h.waitEvent(k, corev1.EventTypeWarning, v1alpha1.EventIssueFailed, tc.note...)
			if d := testutil.ToFloat64(issuanceFailures.WithLabelValues(strconv.Itoa(tc.fault.Errcode), tc.class)) - failures; d != 1 {
				t.Errorf("issuance_failures_total grew by %v", d)
			}

			// No call during the backoff, then one when it runs out or the Secret changes.
			h.step(backoff - time.Second)
			if h.reconcile(k); h.fake.Calls(wechattest.EndpointCreate)-creates != tc.times {
				t.Fatalf("%d create calls during the backoff, want %d", h.fake.Calls(wechattest.EndpointCreate)-creates, tc.times)
			}
			if tc.recovery == "clock" {
				h.step(time.Second)
			} else {
				h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.Labels = map[string]string{"fixed": name} })
			}
			_, fixed := h.reconcile(k)
			if !readyIs(metav1.ConditionTrue, v1alpha1.ReasonIssued)(fixed) {
				t.Fatalf("not recovered: %+v", readyCondition(fixed))
			}
			if fixed.Status.FailedAttempts != 0 || fixed.Status.LastFailureTime != nil || fixed.Status.LastFailureSecretVersion != "" {
				t.Errorf("failure not cleared: %+v", fixed.Status)
			}
			expectConditions(t, fixed, "", "")
		})
	}
}

// TestQuotaResetsAtBeijingMidnight: codes that found the day's quota spent make no call until
// midnight Beijing time (16:00 UTC), when WeChat resets it, and then succeed.
func TestQuotaResetsAtBeijingMidnight(t *testing.T) {
	h := newDirectHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	// 15:00 UTC is 23:00 in Beijing: an hour before the reset.
	now := h.clock.Now()
	h.clock.SetTime(time.Date(now.Year(), now.Month(), now.Day()+1, 15, 0, 0, 0, time.UTC))
	h.fake.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: 45009})
	h.create(ns, "code", temporarySpec("acct", idScene(1), time.Hour, 0))
	k := key(ns, "code")
	_, spent := h.reconcile(k)
	if !readyIs(metav1.ConditionFalse, v1alpha1.ReasonQuotaExhausted)(spent) {
		t.Fatalf("Ready = %+v", readyCondition(spent))
	}
	reset := h.clock.Now().Add(time.Hour)
	if at := spent.Status.RenewalTime.Time; at.Before(reset) || !at.Before(reset.Add(15*time.Minute)) {
		t.Fatalf("next attempt at %s, want within 15 min after %s", at, reset)
	}
	h.step(time.Hour - time.Second) // 23:59:59 in Beijing
	h.reconcile(k)
	if n := h.fake.Calls(wechattest.EndpointCreate); n != 1 {
		t.Fatalf("%d create calls before the reset", n)
	}
	h.clock.SetTime(spent.Status.RenewalTime.Time)
	if _, c := h.reconcile(k); !readyIs(metav1.ConditionTrue, v1alpha1.ReasonIssued)(c) {
		t.Fatalf("not issued after the reset: %+v", readyCondition(c))
	}
}

func TestTokenInvalidatedMidRunRecoversWithOneRetry(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, _ := h.accountSecret(ns, "acct")
	h.create(ns, "before", temporarySpec("acct", idScene(1), time.Hour, 0))
	h.waitReady(key(ns, "before"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	tokens := h.fake.Calls(wechattest.EndpointStableToken)

	h.fake.InvalidateTokens(appID) // another system forced a refresh
	h.create(ns, "after", temporarySpec("acct", idScene(2), time.Hour, 0))
	after := h.waitReady(key(ns, "after"), metav1.ConditionTrue, v1alpha1.ReasonIssued)

	if after.Status.FailedAttempts != 0 {
		t.Errorf("recovery took %d failed attempts", after.Status.FailedAttempts)
	}
	if n := h.fake.CallsWithErrcode(wechattest.EndpointCreate, 40001); n != 1 {
		t.Errorf("%d create calls rejected with 40001, want 1", n)
	}
	if n := h.fake.CallsWithErrcode(wechattest.EndpointCreate, 0); n != 2 {
		t.Errorf("%d successful create calls, want 2", n)
	}
	if n := h.fake.Calls(wechattest.EndpointStableToken) - tokens; n < 1 || n > 2 {
		t.Errorf("%d token fetches to recover", n)
	}
	for _, e := range h.events(key(ns, "after")) {
		if e.Reason == v1alpha1.EventIssueFailed {
			t.Errorf("recovered token error reported as a failure: %s", e.Note)
		}
	}
}

func TestSceneConflict(t *testing.T) {
	h := newHarness(t, 2)
	ns1, ns2 := h.ns[0], h.ns[1]
	appID, secret := h.account()
	otherAppID, otherSecret := h.account()
	// The account shared by both namespaces (a ClusterWeChatAccount, its Secret in the operator's
	// namespace), and a second account.
	h.secret(h.operatorNS, "acct", map[string]string{"appID": appID, "appSecret": secret})
	shared := "shared-" + randomHex(8)
	h.wechatAccount("", shared, "acct")
	sharedSpec := func(spec v1alpha1.WeChatQRCodeSpec) v1alpha1.WeChatQRCodeSpec {
		spec.AccountRef = v1alpha1.AccountReference{Kind: v1alpha1.KindClusterWeChatAccount, Name: shared}
		return spec
	}
	h.secret(ns2, "other-account", map[string]string{"appID": otherAppID, "appSecret": otherSecret})
	h.wechatAccount(ns2, "other-account", "other-account")

	h.create(ns1, "holder", sharedSpec(permanentSpec("", idScene(500))))
	holder := h.waitReady(key(ns1, "holder"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	creates := h.fake.Calls(wechattest.EndpointCreate)

	h.create(ns2, "latecomer", sharedSpec(permanentSpec("", idScene(500))))
	late := h.waitReady(key(ns2, "latecomer"), metav1.ConditionFalse, v1alpha1.ReasonSceneConflict)
	if msg := readyCondition(late).Message; !containsAll(msg, ns1+"/holder", appID, "scene id 500") {
		t.Errorf("conflict message %q does not name the holder, AppID and scene", msg)
	}
	if late.Status.Ticket != "" {
		t.Errorf("the latecomer carries ticket %q", late.Status.Ticket)
	}
	h.waitEvent(key(ns2, "latecomer"), corev1.EventTypeWarning, v1alpha1.ReasonSceneConflict)
	// Not conflicts: the same scene of another account, and a temporary code of the same scene.
	h.create(ns2, "other-account", permanentSpec("other-account", idScene(500)))
	h.create(ns2, "temporary", sharedSpec(temporarySpec("", idScene(500), time.Hour, 0)))
	h.waitReady(key(ns2, "other-account"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	h.waitReady(key(ns2, "temporary"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	if n := h.fake.Calls(wechattest.EndpointCreate) - creates; n != 2 {
		t.Errorf("%d create calls, want 2 (none for the latecomer)", n)
	}

	// The holder leaves: the latecomer gets the scene, and WeChat answers the same ticket,
	// which is why two codes must never hold it at once.
	h.must(h.c.Delete(context.Background(), holder))
	late = h.waitReady(key(ns2, "latecomer"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	if late.Status.Ticket != holder.Status.Ticket {
		t.Errorf("WeChat answered %q for the scene, the holder had %q", late.Status.Ticket, holder.Status.Ticket)
	}
}

// TestSceneConflictSettlesUnderConcurrency: codes claiming one permanent scene, created in a burst
// and reconciled by four workers, end with exactly one holder, named by all the others.
func TestSceneConflictSettlesUnderConcurrency(t *testing.T) {
	h := newHarnessWorkers(t, 1, 4)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	names := []string{"f", "b", "e", "a", "d", "c"}
	for _, n := range names {
		h.create(ns, n, permanentSpec("acct", strScene("contested")))
	}
	// Settled: one code holds the scene and every other one names it.
	settled := func(context.Context) (bool, error) {
		var holders, conflicted []*v1alpha1.WeChatQRCode
		for _, n := range names {
			c := &v1alpha1.WeChatQRCode{}
			if err := h.c.Get(context.Background(), key(ns, n), c); err != nil {
				return false, err
			}
			switch {
			case readyIs(metav1.ConditionTrue, v1alpha1.ReasonIssued)(c):
				holders = append(holders, c)
			case readyIs(metav1.ConditionFalse, v1alpha1.ReasonSceneConflict)(c) && c.Status.Ticket == "":
				conflicted = append(conflicted, c)
			}
		}
		if len(holders) != 1 || len(conflicted) != len(names)-1 {
			return false, nil
		}
		for _, c := range conflicted {
			if !strings.Contains(readyCondition(c).Message, ns+"/"+holders[0].Name) {
				return false, nil
			}
		}
		return true, nil
	}
	if err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, settled); err != nil {
		t.Fatalf("the conflict never settled on one holder: %v", err)
	}
	creates := h.fake.Calls(wechattest.EndpointCreate)
	t.Logf("%d create calls for %d codes claiming one scene", creates, len(names))
	if creates < 1 || creates > len(names) {
		t.Errorf("%d create calls", creates)
	}
	time.Sleep(2 * time.Second)
	if ok, _ := settled(context.Background()); !ok || h.fake.Calls(wechattest.EndpointCreate) != creates {
		t.Errorf("the settlement did not hold")
	}
}

// TestAccountProblemsAndRepair: a code whose account is missing, then whose account's Secret is
// missing, malformed, incomplete or wrong, says so without calling WeChat; the account shows each
// problem once; the repaired Secret makes the account and then the code Ready at once.
func TestAccountProblemsAndRepair(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, secret := h.account()
	k := key(ns, "code")
	h.create(ns, "code", temporarySpec("acct", strScene("welcome"), time.Hour, 0))

	// No account yet: the code names it.
	notFound := h.waitReady(k, metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound)
	if msg := readyCondition(notFound).Message; !containsAll(msg, `WeChatAccount "acct"`, ns, "spec.accountRef") {
		t.Errorf("message %q does not name the account", msg)
	}
	h.wechatAccount(ns, "acct", "acct")
	ak := key(ns, "acct")
	acct := &v1alpha1.WeChatAccount{}
	// notReady waits for the account's Ready reason, then for the code to carry it.
	notReady := func(reason string, messageParts ...string) *v1alpha1.WeChatQRCode {
		t.Helper()
		h.waitAccount(ak, acct, fmt.Sprintf("Ready=False/%s saying %q", reason, messageParts), func(a v1alpha1.Account) bool {
			return accountReadyIs(metav1.ConditionFalse, reason)(a) && containsAll(a.AccountStatus().Condition(v1alpha1.ConditionReady).Message, messageParts...)
		})
		if msg := acct.Status.Condition(v1alpha1.ConditionReady).Message; strings.Contains(msg, secret) {
			t.Errorf("account message %q prints the AppSecret", msg)
		}
		return h.waitFor(k, 30*time.Second, "AccountNotReady with "+reason, func(c *v1alpha1.WeChatQRCode) bool {
			return readyIs(metav1.ConditionFalse, v1alpha1.ReasonAccountNotReady)(c) && strings.Contains(readyCondition(c).Message, reason)
		})
	}
	notReady(v1alpha1.ReasonAccountSecretMissing, `"acct"`, ns, "spec.secretRef")

	// Not an AppID: refused by the one parser of account Secrets, before WeChat is asked.
	h.secret(ns, "acct", map[string]string{"appID": "wx/../" + appID, "appSecret": secret})
	if msg := readyCondition(notReady(v1alpha1.ReasonAccountSecretInvalid, `"acct"`, "appID")).Message; strings.Contains(msg, appID) {
		t.Errorf("message %q prints the AppID", msg)
	}
	h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.Data = map[string][]byte{"appID": []byte(appID)} })
	notReady(v1alpha1.ReasonAccountSecretInvalid, "appSecret")
	if n := h.wechatCalls(); n != 0 {
		t.Errorf("%d WeChat calls without usable credentials", n)
	}

	// A wrong AppSecret shows on the account once: one token call for the Secret change, one
	// Event, and the code says the account is not ready without calling WeChat.
	wrong := randomHex(32)
	h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.StringData = map[string]string{"appSecret": wrong} })
	rejected := notReady("WeChatError40125", "AppSecret is invalid")
	if !strings.Contains(readyCondition(rejected).Message, "AppSecret is invalid") {
		t.Errorf("the code's message %q does not carry the account's advice", readyCondition(rejected).Message)
	}
	if n, m := h.fake.Calls(wechattest.EndpointStableToken), h.fake.Calls(wechattest.EndpointCreate); n != 1 || m != 0 {
		t.Errorf("%d token calls and %d creates for one Secret change with a wrong AppSecret, want 1 and 0", n, m)
	}
	if n := len(h.accountEvents(ak, "WeChatError40125")); n != 1 {
		t.Errorf("%d WeChatError40125 Events on the account, want 1", n)
	}

	// A trailing newline, as `kubectl create secret --from-file` leaves it, is not a mistake.
	h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.StringData = map[string]string{"appSecret": secret + "\n"} })
	h.waitAccount(ak, acct, "Ready", accountReadyIs(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained))
	if n := h.fake.Calls(wechattest.EndpointStableToken); n != 2 {
		t.Errorf("%d token calls after two Secret changes with an AppSecret, want 2", n)
	}
	fixed := h.waitReady(k, metav1.ConditionTrue, v1alpha1.ReasonIssued)
	if fixed.Status.FailedAttempts != 0 {
		t.Errorf("failedAttempts %d after the repair", fixed.Status.FailedAttempts)
	}

	// No credential anywhere: status, Events.
	leaks := append([]string{secret, wrong}, h.fake.IssuedTokens(appID)...)
	raw, _ := json.Marshal(fixed)
	var notes []string
	for _, e := range h.events(k) {
		notes = append(notes, e.Note)
	}
	for _, leak := range leaks {
		if strings.Contains(string(raw), leak) || strings.Contains(strings.Join(notes, "\n"), leak) {
			t.Errorf("a credential appears in the status or an Event")
		}
	}
}

func TestSpecChangesReissue(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, secret := h.account()
	otherAppID, otherSecret := h.account()
	h.secret(ns, "acct", map[string]string{"appID": appID, "appSecret": secret})
	h.wechatAccount(ns, "acct", "acct")
	k := key(ns, "code")
	h.create(ns, "code", temporarySpec("acct", idScene(10), time.Hour, 0))
	first := h.waitReady(k, metav1.ConditionTrue, v1alpha1.ReasonIssued)

	first.Spec.Scene = idScene(11)
	h.must(h.c.Update(context.Background(), first))
	moved := h.waitFor(k, 30*time.Second, "reissued for scene 11", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.IssuedFor != nil && c.Status.IssuedFor.Scene.Equal(idScene(11)) && readyIs(metav1.ConditionTrue, v1alpha1.ReasonIssued)(c)
	})
	if issued, _ := h.fake.Code(moved.Status.Ticket); issued.SceneID != 11 {
		t.Errorf("WeChat issued scene %d", issued.SceneID)
	}
	if len(moved.Status.PreviousTickets) != 1 || moved.Status.PreviousTickets[0].Ticket != first.Status.Ticket {
		t.Errorf("previousTickets = %+v, want the scene-10 ticket", moved.Status.PreviousTickets)
	}
	h.waitEvent(k, corev1.EventTypeNormal, v1alpha1.EventReissued)

	// The Secret now holds another account: a ticket of that account.
	h.updateSecret(ns, "acct", func(s *corev1.Secret) {
		s.StringData = map[string]string{"appID": otherAppID, "appSecret": otherSecret}
	})
	switched := h.waitFor(k, 30*time.Second, "reissued for the other account", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.IssuedFor != nil && c.Status.IssuedFor.AppID == otherAppID
	})
	if issued, _ := h.fake.Code(switched.Status.Ticket); issued.AppID != otherAppID {
		t.Errorf("ticket issued for %s", issued.AppID)
	}

	// Reply and annotations are no business of WeChat's.
	calls := h.fake.Calls(wechattest.EndpointCreate)
	switched.Spec.Reply = &v1alpha1.Reply{ReplyMessage: v1alpha1.ReplyMessage{Text: "欢迎"}}
	h.must(h.c.Update(context.Background(), switched)) // switched now has the new generation
	h.waitFor(k, 30*time.Second, "observed the reply", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.ObservedGeneration == switched.Generation
	})
	if n := h.fake.Calls(wechattest.EndpointCreate) - calls; n != 0 {
		t.Errorf("%d create calls for a new reply", n)
	}
}

// TestPermanentSceneChangeKeepsTheOldTicket: a permanent code moved to another scene keeps its
// old ticket (posters printed with it still count for it) until another code of the same AppID
// claims that scene and gets the same ticket from WeChat.
func TestPermanentSceneChangeKeepsTheOldTicket(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, _ := h.accountSecret(ns, "acct")
	h.create(ns, "x", permanentSpec("acct", idScene(1)))
	x := h.waitReady(key(ns, "x"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	t1 := x.Status.Ticket

	x.Spec.Scene = idScene(2)
	h.must(h.c.Update(context.Background(), x))
	x = h.waitFor(key(ns, "x"), 30*time.Second, "reissued for scene 2", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.IssuedFor != nil && c.Status.IssuedFor.Scene.Equal(idScene(2)) && c.IsReady()
	})
	want := []v1alpha1.PreviousTicket{{Ticket: t1, AppID: appID, Scene: idScene(1)}}
	if !equality.Semantic.DeepEqual(x.Status.PreviousTickets, want) {
		t.Fatalf("previousTickets = %+v, want %+v (no expiry)", x.Status.PreviousTickets, want)
	}

	h.create(ns, "y", permanentSpec("acct", idScene(1)))
	y := h.waitReady(key(ns, "y"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	if y.Status.Ticket != t1 {
		t.Errorf("WeChat answered %q for scene 1, x had %q", y.Status.Ticket, t1)
	}
	h.waitFor(key(ns, "x"), 30*time.Second, "dropped the ticket y claimed", func(c *v1alpha1.WeChatQRCode) bool {
		return len(c.Status.PreviousTickets) == 0 && c.Status.Ticket == x.Status.Ticket
	})
}

// TestRenewRequested: the renew-requested-at annotation re-issues a Temporary code once; a
// Permanent code refuses it with one Event.
func TestRenewRequested(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	codes := h.createFourKinds(ns, "acct")
	temporary, permanent := codes[0], codes[2]
	creates := h.fake.Calls(wechattest.EndpointCreate)

	h.step(time.Minute)
	requested := h.clock.Now().UTC().Format(time.RFC3339)
	annotate := func(c *v1alpha1.WeChatQRCode) {
		patch := []byte(`{"metadata":{"annotations":{"` + v1alpha1.AnnotationRenewRequestedAt + `":"` + requested + `"}}}`)
		h.must(h.c.Patch(context.Background(), c, client.RawPatch("application/merge-patch+json", patch)))
	}
	annotate(temporary)
	renewed := h.waitFor(client.ObjectKeyFromObject(temporary), 30*time.Second, "re-issued on request", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.Ticket != temporary.Status.Ticket && c.IsReady()
	})
	if renewed.Status.ObservedRenewRequest != requested || len(renewed.Status.PreviousTickets) != 1 {
		t.Errorf("observedRenewRequest %q, previousTickets %+v", renewed.Status.ObservedRenewRequest, renewed.Status.PreviousTickets)
	}
	h.waitEvent(client.ObjectKeyFromObject(temporary), corev1.EventTypeNormal, v1alpha1.EventRenewed, "Renewal requested at "+requested)

	annotate(permanent)
	refused := h.waitFor(client.ObjectKeyFromObject(permanent), 30*time.Second, "refused the request", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.ObservedRenewRequest == requested
	})
	if refused.Status.Ticket != permanent.Status.Ticket {
		t.Errorf("a permanent code was re-issued")
	}
	h.waitEvent(client.ObjectKeyFromObject(permanent), corev1.EventTypeWarning, v1alpha1.EventRenewRequestIgnored, "Permanent")
	if n := h.fake.Calls(wechattest.EndpointCreate) - creates; n != 1 {
		t.Errorf("%d create calls, want 1 (the temporary code's)", n)
	}
	// The annotation stays; the next reconcile (a new reply) says nothing more about it.
	refused.Spec.Reply = &v1alpha1.Reply{ReplyMessage: v1alpha1.ReplyMessage{Text: "hi"}}
	h.must(h.c.Update(context.Background(), refused))
	h.waitFor(client.ObjectKeyFromObject(permanent), 30*time.Second, "observed the reply", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.ObservedGeneration == refused.Generation
	})
	ignored := 0
	for _, e := range h.events(client.ObjectKeyFromObject(permanent)) {
		if e.Reason == v1alpha1.EventRenewRequestIgnored {
			ignored++
			if e.Series != nil {
				ignored += int(e.Series.Count)
			}
		}
	}
	if ignored != 1 {
		t.Errorf("%d RenewRequestIgnored Events, want 1", ignored)
	}
}
