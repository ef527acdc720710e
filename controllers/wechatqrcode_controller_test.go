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
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
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
		codes = append(codes, h.waitReady(key(ns, k.name), metav1.ConditionTrue, issuance.ReasonIssued))
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
				if want, _ := issuance.ScheduledRenewal(code); !st.RenewalTime.Time.Equal(want) {
					t.Errorf("renewalTime %s, want %s", st.RenewalTime.Time, want)
				}
			}
			if st.ObservedGeneration != code.Generation || st.FailedAttempts != 0 {
				t.Errorf("observedGeneration %d (generation %d), failedAttempts %d", st.ObservedGeneration, code.Generation, st.FailedAttempts)
			}
			h.waitEvent(key(ns, k.name), corev1.EventTypeNormal, EventIssued, "issued")
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

func TestRenewsOnTimeAndKeepsThePreviousTicket(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	// Renewal 10 s after issuance (less up to 1 s of jitter).
	h.create(ns, "short", temporarySpec("acct", idScene(42), time.Minute, 50*time.Second))
	k := key(ns, "short")
	first := h.waitReady(k, metav1.ConditionTrue, issuance.ReasonIssued)
	if d := first.Status.RenewalTime.Sub(first.Status.IssuedAt.Time); d < 8*time.Second || d > 10*time.Second {
		t.Fatalf("renewal %s after issuance, want 9-10 s", d)
	}

	second := h.waitFor(k, 30*time.Second, "renewed", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.Ticket != "" && c.Status.Ticket != first.Status.Ticket
	})
	st := second.Status
	if st.IssuedAt.Before(first.Status.RenewalTime) {
		t.Errorf("renewed at %s, before the renewal time %s", st.IssuedAt, first.Status.RenewalTime)
	}
	if late := st.IssuedAt.Sub(first.Status.RenewalTime.Time); late > 3*time.Second {
		t.Errorf("renewed %s after the renewal time", late)
	}
	wantPrev := []v1alpha1.PreviousTicket{{Ticket: first.Status.Ticket, AppID: first.Status.IssuedFor.AppID, ExpiresAt: *first.Status.ExpiresAt}}
	if !equality.Semantic.DeepEqual(st.PreviousTickets, wantPrev) {
		t.Errorf("previousTickets = %+v, want %+v", st.PreviousTickets, wantPrev)
	}
	if old, _ := h.fake.Code(first.Status.Ticket); !time.Now().Before(old.ExpiresAt) {
		t.Errorf("the previous ticket is kept although WeChat expired it at %s", old.ExpiresAt)
	}
	h.waitEvent(k, corev1.EventTypeNormal, EventRenewed)
	if n := h.fake.Calls(wechattest.EndpointCreate); n != 2 {
		t.Errorf("%d create calls, want 2", n)
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

func TestFailures(t *testing.T) {
	h := newHarness(t, 1)
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
		// transient failures recover by themselves; the others wait for a change of the Secret.
		transient bool
		class     string
	}{
		{name: "system busy", fault: wechattest.Fault{Errcode: -1}, times: 1, reason: "WeChatErrorMinus1",
			note: []string{"errcode -1", "system error"}, minDelay: 3 * time.Second, maxDelay: 5 * time.Second, transient: true, class: "Retryable"},
		{name: "proxy failure", fault: wechattest.Fault{HTTPStatus: http.StatusBadGateway}, times: 1, reason: issuance.ReasonWeChatUnreachable,
			note: []string{"502"}, minDelay: 3 * time.Second, maxDelay: 5 * time.Second, transient: true, class: "Retryable"},
		{name: "token rejected twice", fault: wechattest.Fault{Errcode: 40001}, times: 2, reason: "WeChatError40001",
			note: []string{"errcode 40001", "retried once"}, minDelay: 3 * time.Second, maxDelay: 5 * time.Second, transient: true, class: "Token"},
		{name: "IP not allowlisted", fault: wechattest.Fault{Errcode: 40164}, times: 1, reason: "WeChatError40164",
			note: []string{"errcode 40164", "whitelist", "allowlist"}, minDelay: 47 * time.Minute, maxDelay: time.Hour, class: "Terminal"},
		{name: "unauthorized account", fault: wechattest.Fault{Errcode: 48001}, times: 1, reason: "WeChatError48001",
			note: []string{"errcode 48001", "verified service account"}, minDelay: 47 * time.Minute, maxDelay: time.Hour, class: "Terminal"},
		{name: "permanent cap", fault: wechattest.Fault{Errcode: 45029}, times: 1, permanent: true, reason: "WeChatError45029",
			note: []string{"errcode 45029", "100,000 permanent"}, minDelay: 47 * time.Minute, maxDelay: time.Hour, class: "Terminal"},
		{name: "daily quota", fault: wechattest.Fault{Errcode: 45009}, times: 1, reason: issuance.ReasonQuotaExhausted,
			note: []string{"errcode 45009", "quota", "next attempt at"}, minDelay: 0, maxDelay: 24*time.Hour + issuance.QuotaSpread, class: "Quota"},
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

			failed := h.waitReady(k, metav1.ConditionFalse, tc.reason)
			st := failed.Status
			if !containsAll(readyCondition(failed).Message, tc.note...) {
				t.Errorf("condition message %q lacks %q", readyCondition(failed).Message, tc.note)
			}
			if st.FailedAttempts != 1 || st.LastFailureTime == nil || st.RenewalTime == nil {
				t.Fatalf("failedAttempts %d, lastFailureTime %v, renewalTime %v", st.FailedAttempts, st.LastFailureTime, st.RenewalTime)
			}
			if d := st.RenewalTime.Sub(st.LastFailureTime.Time); d < tc.minDelay || d > tc.maxDelay {
				t.Errorf("next attempt %s after the failure, want %s to %s", d, tc.minDelay, tc.maxDelay)
			}
			h.waitEvent(k, corev1.EventTypeWarning, EventIssueFailed, tc.note...)
			if d := testutil.ToFloat64(issuanceFailures.WithLabelValues(strconv.Itoa(tc.fault.Errcode), tc.class)) - failures; d != 1 {
				t.Errorf("issuance_failures_total grew by %v", d)
			}

			if !tc.transient {
				// No retry during the backoff, then a change of the Secret retries at once.
				time.Sleep(time.Second)
				if n := h.fake.Calls(wechattest.EndpointCreate) - creates; n != tc.times {
					t.Fatalf("%d create calls during the backoff, want %d", n, tc.times)
				}
				h.updateSecret(ns, "acct", func(s *corev1.Secret) {
					s.Labels = map[string]string{"fixed": name}
				})
			}
			fixed := h.waitReady(k, metav1.ConditionTrue, issuance.ReasonIssued)
			if fixed.Status.FailedAttempts != 0 || fixed.Status.LastFailureTime != nil || fixed.Status.LastFailureSecretVersion != "" {
				t.Errorf("failure not cleared: %+v", fixed.Status)
			}
			if tc.transient && fixed.Status.IssuedAt.Before(st.RenewalTime) {
				t.Errorf("retried at %s, before the backoff ended at %s", fixed.Status.IssuedAt, st.RenewalTime)
			}
		})
	}
}

func TestTokenInvalidatedMidRunRecoversWithOneRetry(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, _ := h.accountSecret(ns, "acct")
	h.create(ns, "before", temporarySpec("acct", idScene(1), time.Hour, 0))
	h.waitReady(key(ns, "before"), metav1.ConditionTrue, issuance.ReasonIssued)
	tokens := h.fake.Calls(wechattest.EndpointStableToken)

	h.fake.InvalidateTokens(appID) // another system forced a refresh
	h.create(ns, "after", temporarySpec("acct", idScene(2), time.Hour, 0))
	after := h.waitReady(key(ns, "after"), metav1.ConditionTrue, issuance.ReasonIssued)

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
		if e.Reason == EventIssueFailed {
			t.Errorf("recovered token error reported as a failure: %s", e.Note)
		}
	}
}

func TestSceneConflict(t *testing.T) {
	h := newHarness(t, 2)
	ns1, ns2 := h.ns[0], h.ns[1]
	appID, secret := h.account()
	otherAppID, otherSecret := h.account()
	h.secret(ns1, "acct", map[string]string{"appID": appID, "appSecret": secret})
	// The same account under another Secret name in another namespace, and a second account.
	h.secret(ns2, "same-account", map[string]string{"appID": appID, "appSecret": secret})
	h.secret(ns2, "other-account", map[string]string{"appID": otherAppID, "appSecret": otherSecret})

	h.create(ns1, "holder", permanentSpec("acct", idScene(500)))
	holder := h.waitReady(key(ns1, "holder"), metav1.ConditionTrue, issuance.ReasonIssued)
	creates := h.fake.Calls(wechattest.EndpointCreate)

	h.create(ns2, "latecomer", permanentSpec("same-account", idScene(500)))
	late := h.waitReady(key(ns2, "latecomer"), metav1.ConditionFalse, issuance.ReasonSceneConflict)
	if msg := readyCondition(late).Message; !containsAll(msg, ns1+"/holder", appID, "scene id 500") {
		t.Errorf("conflict message %q does not name the holder, AppID and scene", msg)
	}
	if late.Status.Ticket != "" {
		t.Errorf("the latecomer carries ticket %q", late.Status.Ticket)
	}
	h.waitEvent(key(ns2, "latecomer"), corev1.EventTypeWarning, issuance.ReasonSceneConflict)
	// Not conflicts: the same scene of another account, and a temporary code of the same scene.
	h.create(ns2, "other-account", permanentSpec("other-account", idScene(500)))
	h.create(ns2, "temporary", temporarySpec("same-account", idScene(500), time.Hour, 0))
	h.waitReady(key(ns2, "other-account"), metav1.ConditionTrue, issuance.ReasonIssued)
	h.waitReady(key(ns2, "temporary"), metav1.ConditionTrue, issuance.ReasonIssued)
	if n := h.fake.Calls(wechattest.EndpointCreate) - creates; n != 2 {
		t.Errorf("%d create calls, want 2 (none for the latecomer)", n)
	}

	// The holder leaves: the latecomer gets the scene, and WeChat answers the same ticket,
	// which is why two codes must never hold it at once.
	h.must(h.c.Delete(context.Background(), holder))
	late = h.waitReady(key(ns2, "latecomer"), metav1.ConditionTrue, issuance.ReasonIssued)
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
			case readyIs(metav1.ConditionTrue, issuance.ReasonIssued)(c):
				holders = append(holders, c)
			case readyIs(metav1.ConditionFalse, issuance.ReasonSceneConflict)(c) && c.Status.Ticket == "":
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

func TestAccountSecretProblemsAndRepair(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, secret := h.account()
	k := key(ns, "code")
	h.create(ns, "code", temporarySpec("acct", strScene("welcome"), time.Hour, 0))

	missing := h.waitReady(k, metav1.ConditionFalse, issuance.ReasonAccountSecretMissing)
	if msg := readyCondition(missing).Message; !containsAll(msg, `"acct"`, ns) {
		t.Errorf("message %q does not name the Secret", msg)
	}
	h.waitEvent(k, corev1.EventTypeWarning, issuance.ReasonAccountSecretMissing)

	// Not an AppID: refused by the one parser of account Secrets, before WeChat is asked.
	h.secret(ns, "acct", map[string]string{"appID": "wx/../" + appID, "appSecret": secret})
	malformed := h.waitReady(k, metav1.ConditionFalse, issuance.ReasonAccountSecretInvalid)
	if msg := readyCondition(malformed).Message; !containsAll(msg, `"acct"`, "appID") || strings.Contains(msg, appID) {
		t.Errorf("message %q does not name the key, or prints its value", msg)
	}

	h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.Data = map[string][]byte{"appID": []byte(appID)} })
	invalid := h.waitFor(k, 30*time.Second, "reports the missing appSecret", func(c *v1alpha1.WeChatQRCode) bool {
		return readyIs(metav1.ConditionFalse, issuance.ReasonAccountSecretInvalid)(c) && strings.Contains(readyCondition(c).Message, "appSecret")
	})
	if msg := readyCondition(invalid).Message; strings.Contains(msg, appID) {
		t.Errorf("message %q prints the AppID's value", msg)
	}
	if n := h.wechatCalls(); n != 0 {
		t.Errorf("%d WeChat calls without usable credentials", n)
	}

	wrong := randomHex(32)
	h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.StringData = map[string]string{"appSecret": wrong} })
	rejected := h.waitReady(k, metav1.ConditionFalse, "WeChatError40125")
	if msg := readyCondition(rejected).Message; !strings.Contains(msg, "AppSecret is invalid") {
		t.Errorf("message %q gives no advice", msg)
	}

	// A trailing newline, as `kubectl create secret --from-file` leaves it, is not a mistake.
	h.updateSecret(ns, "acct", func(s *corev1.Secret) { s.StringData = map[string]string{"appSecret": secret + "\n"} })
	fixed := h.waitReady(k, metav1.ConditionTrue, issuance.ReasonIssued)
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
	k := key(ns, "code")
	h.create(ns, "code", temporarySpec("acct", idScene(10), time.Hour, 0))
	first := h.waitReady(k, metav1.ConditionTrue, issuance.ReasonIssued)

	first.Spec.Scene = idScene(11)
	h.must(h.c.Update(context.Background(), first))
	moved := h.waitFor(k, 30*time.Second, "reissued for scene 11", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.IssuedFor != nil && c.Status.IssuedFor.Scene.Equal(idScene(11)) && readyIs(metav1.ConditionTrue, issuance.ReasonIssued)(c)
	})
	if issued, _ := h.fake.Code(moved.Status.Ticket); issued.SceneID != 11 {
		t.Errorf("WeChat issued scene %d", issued.SceneID)
	}
	if len(moved.Status.PreviousTickets) != 1 || moved.Status.PreviousTickets[0].Ticket != first.Status.Ticket {
		t.Errorf("previousTickets = %+v, want the scene-10 ticket", moved.Status.PreviousTickets)
	}
	h.waitEvent(k, corev1.EventTypeNormal, EventReissued)

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
	switched.Spec.Reply = &v1alpha1.Reply{Text: "欢迎"}
	h.must(h.c.Update(context.Background(), switched)) // switched now has the new generation
	h.waitFor(k, 30*time.Second, "observed the reply", func(c *v1alpha1.WeChatQRCode) bool {
		return c.Status.ObservedGeneration == switched.Generation
	})
	if n := h.fake.Calls(wechattest.EndpointCreate) - calls; n != 0 {
		t.Errorf("%d create calls for a new reply", n)
	}
}
