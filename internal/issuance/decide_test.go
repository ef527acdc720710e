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

package issuance

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

const appID = "wx0123456789abcdef"

func dur(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }
func at(t time.Time) *metav1.Time          { return &metav1.Time{Time: t} }

// temporary is a Temporary code whose ticket was issued at t0 for 3h (renewal: the default third).
func temporary() *v1alpha1.WeChatQRCode {
	return &v1alpha1.WeChatQRCode{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "tmp", UID: "uid-tmp", Generation: 1},
		Spec: v1alpha1.WeChatQRCodeSpec{
			AccountRef: v1alpha1.AccountReference{Name: "account"},
			Type:       v1alpha1.Temporary,
			Scene:      v1alpha1.Scene{ID: ptr.To[int64](123)},
			TTL:        dur(3 * time.Hour),
		},
		Status: v1alpha1.WeChatQRCodeStatus{
			ObservedGeneration: 1,
			Ticket:             "gQH47joAAAAAAAAAASxodHRw+/==",
			URL:                "http://weixin.qq.com/q/abc",
			IssuedFor:          &v1alpha1.IssuedFor{AppID: appID, Type: v1alpha1.Temporary, Scene: v1alpha1.Scene{ID: ptr.To[int64](123)}},
			IssuedAt:           at(t0),
			ExpiresAt:          at(t0.Add(3 * time.Hour)),
		},
	}
}

func unissued() *v1alpha1.WeChatQRCode {
	c := temporary()
	c.Status = v1alpha1.WeChatQRCodeStatus{}
	return c
}

func unissuedPermanent() *v1alpha1.WeChatQRCode {
	c := permanent()
	c.Status = v1alpha1.WeChatQRCodeStatus{}
	return c
}

func permanent() *v1alpha1.WeChatQRCode {
	c := temporary()
	c.Name, c.UID = "perm", "uid-perm"
	c.Spec.Type, c.Spec.TTL = v1alpha1.Permanent, nil
	c.Spec.Scene = v1alpha1.Scene{Str: ptr.To("spring")}
	c.Status.IssuedFor = &v1alpha1.IssuedFor{AppID: appID, Type: v1alpha1.Permanent, Scene: v1alpha1.Scene{Str: ptr.To("spring")}}
	c.Status.ExpiresAt = nil
	return c
}

// in is the Input of a reconcile of code at now with the account at version "7".
func in(code *v1alpha1.WeChatQRCode, now time.Time) Input {
	return Input{Code: code, Account: Account{Name: "WeChatAccount account", AppID: appID, Version: "7", PermanentLimit: v1alpha1.MaxPermanentCodes}, Now: now}
}

func TestTriggers(t *testing.T) {
	renewal, _ := scheduledRenewal(temporary())
	cases := []struct {
		name   string
		code   func() *v1alpha1.WeChatQRCode
		appID  string
		now    time.Time
		expect Trigger
	}{
		{"new code", unissued, appID, t0, First},
		{"ticket without issuedFor (written by someone else)", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Status.IssuedFor = nil
			return c
		}, appID, t0, First},
		{"temporary, before renewal", temporary, appID, renewal.Add(-time.Second), current},
		{"temporary, at renewal", temporary, appID, renewal, Renewal},
		{"temporary, expired unrenewed", temporary, appID, t0.Add(5 * time.Hour), Renewal},
		{"temporary without expiry in status", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Status.ExpiresAt = nil
			return c
		}, appID, t0, Renewal},
		{"Secret now holds another AppID", temporary, "wxffffffffffffffff", t0, AccountChanged},
		{"type changed to Permanent", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Spec.Type, c.Spec.TTL = v1alpha1.Permanent, nil
			return c
		}, appID, t0, TypeChanged},
		{"scene id changed", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Spec.Scene.ID = ptr.To[int64](124)
			return c
		}, appID, t0, SceneChanged},
		{"scene id 123 became string \"123\"", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Spec.Scene = v1alpha1.Scene{Str: ptr.To("123")}
			return c
		}, appID, t0, SceneChanged},
		{"permanent, a century later", permanent, appID, t0.AddDate(100, 0, 0), current},
		{"only reply, ttl, renewBefore and annotations changed", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Generation = 7
			c.Annotations = map[string]string{v1alpha1.AnnotationScans: "42"}
			c.Spec.Reply = &v1alpha1.Reply{ReplyMessage: v1alpha1.ReplyMessage{Text: "hi"}}
			c.Spec.TTL = dur(720 * time.Hour)
			c.Spec.RenewBefore = dur(time.Hour)
			return c
		}, appID, t0.Add(time.Hour), current},
		{"renewBefore lengthened past now", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Spec.RenewBefore = dur(2*time.Hour + 30*time.Minute)
			return c
		}, appID, t0.Add(time.Hour), Renewal},
		{"renew requested after issuance", requested(t0.Add(time.Minute), ""), appID, t0.Add(time.Hour), Requested},
		{"renew requested before issuance", requested(t0.Add(-time.Minute), ""), appID, t0.Add(time.Hour), current},
		{"renew request already acted on", requested(t0.Add(time.Minute), t0.Add(time.Minute).Format(time.RFC3339)), appID, t0.Add(time.Hour), current},
		{"renew request not a time", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Annotations = map[string]string{v1alpha1.AnnotationRenewRequestedAt: "now please"}
			return c
		}, appID, t0.Add(time.Hour), current},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := decision{Input: Input{Code: tc.code(), Account: Account{AppID: tc.appID}, Now: tc.now}}
			if got := d.needed(); got != tc.expect {
				t.Errorf("needed = %q, want %q", got, tc.expect)
			}
		})
	}
}

// requested is a temporary code with a renew request at the time given, and observed the value
// of the last request acted on.
func requested(at time.Time, observed string) func() *v1alpha1.WeChatQRCode {
	return func() *v1alpha1.WeChatQRCode {
		c := temporary()
		c.Annotations = map[string]string{v1alpha1.AnnotationRenewRequestedAt: at.Format(time.RFC3339)}
		c.Status.ObservedRenewRequest = observed
		return c
	}
}

// TestDecideOrder: when several rules apply, the first in Decide's order wins, and its outcome
// (reason, kstatus conditions, call or not) is the whole answer.
func TestDecideOrder(t *testing.T) {
	// A first issuance that failed at t0 with the Secret at version "7"; retry at t0+10s.
	failed := func(reason string, stalled bool) func() *v1alpha1.WeChatQRCode {
		return func() *v1alpha1.WeChatQRCode {
			c := unissued()
			c.Status = v1alpha1.WeChatQRCodeStatus{ObservedGeneration: 1}
			act := Decide(in(c, t0))
			err := error(&wechat.Error{Code: 45009, Message: "quota", Class: wechat.ClassQuota})
			if stalled {
				err = &wechat.Error{Code: 40164, Message: "ip", Class: wechat.ClassTerminal}
			}
			c.Status = act.Failed(err, t0).Status
			return c
		}
	}
	quotaWait := failed(v1alpha1.ReasonQuotaExhausted, false)
	badSecret := &Problem{Reason: v1alpha1.ReasonAccountSecretInvalid, Message: "Secret \"acct\": no value for appSecret"}
	// other is an older code of the same AppID claiming (and holding) the permanent scene.
	other := func(holds bool) Neighbour {
		c := permanent()
		c.Name, c.UID, c.CreationTimestamp = "other", "uid-other", metav1.Time{Time: t0.Add(-time.Hour)}
		if !holds {
			c.Status = v1alpha1.WeChatQRCodeStatus{}
		}
		return Neighbour{Code: c, AppID: appID}
	}
	dueForRenewal := t0.Add(2*time.Hour + 50*time.Minute)
	cases := []struct {
		name       string
		code       func() *v1alpha1.WeChatQRCode
		account    *Problem
		neighbours []Neighbour
		now        time.Time
		version    string
		// budget is the account's permanent codes used and limit, when not 0 of 100,000.
		budget *[2]int32
		// what Decide answers
		trigger              Trigger
		ready                metav1.ConditionStatus
		reason               string
		reconciling, stalled string
	}{
		{name: "nothing to do", code: temporary, now: t0, ready: metav1.ConditionTrue, reason: v1alpha1.ReasonIssued},
		{name: "first issuance", code: unissued, now: t0, trigger: First, ready: "", reconciling: string(First)},
		{name: "renewal due", code: temporary, now: dueForRenewal, trigger: Renewal, reconciling: string(Renewal)},
		{name: "quota backoff", code: quotaWait, now: t0.Add(time.Hour), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonQuotaExhausted, reconciling: v1alpha1.ReasonQuotaExhausted},
		{name: "quota backoff, Secret changed: call at once", code: quotaWait, now: t0.Add(time.Hour), version: "8", trigger: First, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonQuotaExhausted, reconciling: string(First)},
		{name: "terminal backoff", code: failed("", true), now: t0.Add(time.Minute), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(40164), stalled: v1alpha1.ReasonWeChatError(40164)},
		{name: "a bad Secret during a quota backoff: the Secret", code: quotaWait, account: badSecret, now: t0.Add(time.Hour),
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAccountSecretInvalid, stalled: v1alpha1.ReasonAccountSecretInvalid},
		{name: "a bad Secret and a scene conflict: the Secret", code: permanent, account: badSecret, neighbours: []Neighbour{other(true)}, now: t0,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAccountSecretInvalid, stalled: v1alpha1.ReasonAccountSecretInvalid},
		{name: "a scene conflict on a code whose first ticket is due: no call", code: func() *v1alpha1.WeChatQRCode {
			c := permanent()
			c.Status = v1alpha1.WeChatQRCodeStatus{}
			return c
		}, neighbours: []Neighbour{other(true)}, now: t0, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonSceneConflict, stalled: v1alpha1.ReasonSceneConflict},
		{name: "a holder keeps its scene against an older claimant", code: permanent, neighbours: []Neighbour{other(false)}, now: t0,
			ready: metav1.ConditionTrue, reason: v1alpha1.ReasonIssued},
		{name: "the same scene of another AppID is no conflict", code: permanent, neighbours: []Neighbour{{Code: other(true).Code, AppID: "wxother"}}, now: t0,
			ready: metav1.ConditionTrue, reason: v1alpha1.ReasonIssued},
		{name: "renew requested during a terminal backoff: the backoff", code: func() *v1alpha1.WeChatQRCode {
			c := failed("", true)()
			c.Annotations = map[string]string{v1alpha1.AnnotationRenewRequestedAt: t0.Format(time.RFC3339)}
			return c
		}, now: t0.Add(time.Minute), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(40164), stalled: v1alpha1.ReasonWeChatError(40164)},
		{name: "the 101st permanent code of a budget of 100: refused, no call", code: unissuedPermanent, budget: &[2]int32{100, 100}, now: t0,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonPermanentCodeLimit, stalled: v1alpha1.ReasonPermanentCodeLimit},
		{name: "the 100th permanent code of a budget of 100: issued", code: unissuedPermanent, budget: &[2]int32{99, 100}, now: t0, trigger: First, reconciling: string(First)},
		{name: "a budget of 0 refuses every new permanent code", code: unissuedPermanent, budget: &[2]int32{0, 0}, now: t0,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonPermanentCodeLimit, stalled: v1alpha1.ReasonPermanentCodeLimit},
		{name: "a code holding a permanent ticket is never refused", code: permanent, budget: &[2]int32{100, 10}, now: t0, ready: metav1.ConditionTrue, reason: v1alpha1.ReasonIssued},
		{name: "a permanent holder moving scene over budget is not refused", code: func() *v1alpha1.WeChatQRCode {
			c := permanent()
			c.Spec.Scene = v1alpha1.Scene{Str: ptr.To("autumn")}
			return c
		}, budget: &[2]int32{10, 10}, now: t0, trigger: SceneChanged, reconciling: string(SceneChanged)},
		{name: "Temporary codes ignore the budget", code: unissued, budget: &[2]int32{5, 0}, now: t0, trigger: First, reconciling: string(First)},
		{name: "a Temporary code turning Permanent over budget: refused", code: func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Spec.Type, c.Spec.TTL = v1alpha1.Permanent, nil
			return c
		}, budget: &[2]int32{3, 3}, now: t0, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonPermanentCodeLimit, stalled: v1alpha1.ReasonPermanentCodeLimit},
		{name: "an unusable account before the budget", code: unissuedPermanent, account: badSecret, budget: &[2]int32{3, 3}, now: t0,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAccountSecretInvalid, stalled: v1alpha1.ReasonAccountSecretInvalid},
		{name: "a scene conflict before the budget", code: unissuedPermanent, neighbours: []Neighbour{other(true)}, budget: &[2]int32{3, 3}, now: t0,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonSceneConflict, stalled: v1alpha1.ReasonSceneConflict},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			input := in(tc.code(), tc.now)
			input.Account.Problem, input.Neighbours = tc.account, tc.neighbours
			if tc.version != "" {
				input.Account.Version = tc.version
			}
			if tc.budget != nil {
				input.Account.PermanentUsed, input.Account.PermanentLimit = tc.budget[0], tc.budget[1]
			}
			act := Decide(input)
			if act.Trigger != tc.trigger {
				t.Errorf("trigger %q, want %q", act.Trigger, tc.trigger)
			}
			if r := act.Status.Condition(v1alpha1.ConditionReady); tc.ready == "" && r != nil || tc.ready != "" && (r == nil || r.Status != tc.ready || r.Reason != tc.reason) {
				t.Errorf("Ready = %+v, want %s/%s", r, tc.ready, tc.reason)
			}
			expectCondition(t, act.Status, v1alpha1.ConditionReconciling, tc.reconciling)
			expectCondition(t, act.Status, v1alpha1.ConditionStalled, tc.stalled)
		})
	}
}

func expectCondition(t *testing.T, st v1alpha1.WeChatQRCodeStatus, typ, reason string) {
	t.Helper()
	c := st.Condition(typ)
	switch {
	case reason == "" && c != nil:
		t.Errorf("%s present: %s/%s", typ, c.Status, c.Reason)
	case reason != "" && (c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason):
		t.Errorf("%s = %+v, want True/%s", typ, c, reason)
	}
}

func TestFailureMeaning(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		kind   failureKind
		reason string
	}{
		{"system busy", &wechat.Error{Code: -1, Class: wechat.ClassRetryable}, transient, "WeChatErrorMinus1"},
		{"token rejected after the retry", &wechat.Error{Code: 40001, Class: wechat.ClassToken}, transient, "WeChatError40001"},
		{"quota", &wechat.Error{Code: 45009, Class: wechat.ClassQuota}, quota, v1alpha1.ReasonQuotaExhausted},
		{"IP allowlist", &wechat.Error{Code: 40164, Class: wechat.ClassTerminal}, terminal, "WeChatError40164"},
		{"HTTP 502", &wechat.HTTPError{Endpoint: "qrcode/create", StatusCode: 502}, transient, v1alpha1.ReasonWeChatUnreachable},
		{"HTTP 403", &wechat.HTTPError{Endpoint: "qrcode/create", StatusCode: 403}, terminal, v1alpha1.ReasonIssueFailed},
		{"deadline", context.DeadlineExceeded, transient, v1alpha1.ReasonWeChatUnreachable},
		{"token service HTTP 502", &wechat.TokenServiceError{URL: "http://tokens/", Err: &wechat.HTTPError{Endpoint: "external_token", StatusCode: 502}}, transient, v1alpha1.ReasonTokenServiceUnreachable},
		{"token service relays WeChat's errcode", &wechat.TokenServiceError{URL: "http://tokens/", Err: &wechat.Error{Code: 40013, Class: wechat.ClassTerminal}}, terminal, "WeChatError40013"},
		{"a request refused before sending", wechat.ErrInvalidRequest, terminal, v1alpha1.ReasonIssueFailed},
		{"wrapped", fmt.Errorf("create: %w", errors.Join(&wechat.Error{Code: 48001, Class: wechat.ClassTerminal})), terminal, "WeChatError48001"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := failureOf(tc.err)
			if f.kind != tc.kind || f.reason != tc.reason || f.message != tc.err.Error() {
				t.Errorf("failureOf = %+v, want kind %d reason %s", f, tc.kind, tc.reason)
			}
		})
	}
}

func TestRetryAtExponential(t *testing.T) {
	cases := []struct {
		kind    failureKind
		attempt int32
		nominal time.Duration // the delay before jitter takes up to a fifth off
	}{
		{transient, 1, 5 * time.Second},
		{transient, 2, 10 * time.Second},
		{transient, 4, 40 * time.Second},
		{transient, 6, 160 * time.Second},
		{transient, 7, 5 * time.Minute},
		{transient, 1000, 5 * time.Minute},
		{terminal, 1, time.Hour},
		{terminal, 2, 2 * time.Hour},
		{terminal, 5, 16 * time.Hour},
		{terminal, 6, 24 * time.Hour},
		{terminal, 1 << 30, 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d/%d", tc.kind, tc.attempt), func(t *testing.T) {
			for i := range 50 {
				seed := fmt.Sprintf("uid-%d", i)
				d := retryAt(tc.kind, tc.attempt, seed, t0).Sub(t0)
				if d > tc.nominal || d < tc.nominal-tc.nominal/5 {
					t.Fatalf("seed %s: delay %s, want within [%s, %s]", seed, d, tc.nominal-tc.nominal/5, tc.nominal)
				}
				if again := retryAt(tc.kind, tc.attempt, seed, t0).Sub(t0); again != d {
					t.Fatalf("not deterministic: %s then %s", d, again)
				}
			}
		})
	}
}

func TestRetryAtQuotaWaitsForMidnightBeijing(t *testing.T) {
	cases := []struct {
		name string
		now  time.Time
		// Midnight Beijing is 16:00 UTC.
		reset time.Time
	}{
		{"Beijing afternoon", time.Date(2026, 3, 1, 7, 0, 0, 0, time.UTC), time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)},
		{"a second before the reset", time.Date(2026, 3, 1, 15, 59, 59, 0, time.UTC), time.Date(2026, 3, 1, 16, 0, 0, 0, time.UTC)},
		{"just after the reset: the next one", time.Date(2026, 3, 1, 16, 0, 1, 0, time.UTC), time.Date(2026, 3, 2, 16, 0, 0, 0, time.UTC)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := retryAt(quota, 1, "uid", tc.now)
			if got.Before(tc.reset) || !got.Before(tc.reset.Add(quotaSpread)) {
				t.Errorf("retry at %s, want within %s after %s", got, quotaSpread, tc.reset)
			}
		})
	}
}
