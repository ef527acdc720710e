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

package accountstate

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

var t0 = time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)

const appID = "wx0123456789abcdef"

// fresh is an account never reconciled, generation 1.
func fresh() *v1alpha1.WeChatAccount {
	return &v1alpha1.WeChatAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "acct", Generation: 1},
		Spec:       v1alpha1.WeChatAccountSpec{SecretRef: v1alpha1.SecretReference{Name: "creds"}},
	}
}

func input(a *v1alpha1.WeChatAccount, now time.Time) Input {
	return Input{Account: a, Secret: Secret{Version: "7", AppID: appID}, QuotaInterval: time.Hour, Now: now}
}

// after runs one reconcile at now with the answers given, and returns the account with the
// status it would write.
func after(a *v1alpha1.WeChatAccount, now time.Time, tokenErr error) *v1alpha1.WeChatAccount {
	act := Decide(input(a, now))
	if act.CheckToken {
		act = act.TokenChecked(tokenErr)
	}
	if act.ReadQuota {
		act = act.QuotaRead(wechat.Quota{DailyLimit: 100000, Used: 3, Remain: 99997}, nil)
	}
	out := a.DeepCopy()
	out.Status = act.Status
	return out
}

var (
	allowlist = &wechat.Error{Code: 40164, Message: "invalid ip", Class: wechat.ClassTerminal}
	badSecret = &wechat.Error{Code: 40125, Message: "invalid appsecret", Class: wechat.ClassTerminal}
	busy      = &wechat.Error{Code: -1, Message: "system error", Class: wechat.ClassRetryable}
)

func TestDecide(t *testing.T) {
	ready := func() *v1alpha1.WeChatAccount { return after(fresh(), t0, nil) }
	failed := func(err error) func() *v1alpha1.WeChatAccount {
		return func() *v1alpha1.WeChatAccount { return after(fresh(), t0, err) }
	}
	// failing: failed at t0 and again at t0+d.
	failing := func(err error, d time.Duration) func() *v1alpha1.WeChatAccount {
		return func() *v1alpha1.WeChatAccount { return after(after(fresh(), t0, err), t0.Add(d), err) }
	}
	cases := []struct {
		name    string
		account func() *v1alpha1.WeChatAccount
		mutate  func(*Input)
		now     time.Time
		// what Decide answers
		check, quota         bool
		ready                metav1.ConditionStatus
		reason               string
		reconciling, stalled string
		events               int
	}{
		{name: "new account: one token check", account: fresh, now: t0, check: true, reconciling: "CheckingToken"},
		{name: "checked: nothing to call", account: ready, now: t0.Add(time.Minute), ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenObtained},
		{name: "quota due after the interval", account: ready, now: t0.Add(time.Hour), quota: true, ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenObtained},
		{name: "Secret changed: check again", account: ready, mutate: func(in *Input) { in.Secret.Version = "8" }, now: t0.Add(time.Minute), check: true,
			ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenObtained, reconciling: "CheckingToken"},
		{name: "spec changed: check again", account: func() *v1alpha1.WeChatAccount { a := ready(); a.Generation = 2; return a }, now: t0.Add(time.Minute), check: true,
			ready: metav1.ConditionTrue, reason: v1alpha1.ReasonTokenObtained, reconciling: "CheckingToken"},
		{name: "40125 shown: no call until the Secret changes", account: failed(badSecret), now: t0.Add(48 * time.Hour),
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(40125), stalled: v1alpha1.ReasonWeChatError(40125)},
		{name: "40125, Secret fixed: check at once", account: failed(badSecret), mutate: func(in *Input) { in.Secret.Version = "8" }, now: t0.Add(time.Second), check: true,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(40125), reconciling: "CheckingToken"},
		{name: "40164 within the hour: no call", account: failed(allowlist), now: t0.Add(59 * time.Minute),
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(40164), stalled: v1alpha1.ReasonWeChatError(40164)},
		{name: "40164 an hour later: checked again (fixed in WeChat's console, unseen)", account: failed(allowlist), now: t0.Add(time.Hour), check: true,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(40164), reconciling: "CheckingToken"},
		{name: "WeChat busy once: retried after 5 s", account: failed(busy), now: t0.Add(TransientRetryMin), check: true,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(-1), reconciling: "CheckingToken"},
		{name: "WeChat busy once: not before", account: failed(busy), now: t0.Add(TransientRetryMin - time.Second),
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(-1), reconciling: v1alpha1.ReasonWeChatError(-1)},
		{name: "WeChat busy for 40 s: retried 40 s after the last check", account: failing(busy, 40*time.Second), now: t0.Add(80 * time.Second), check: true,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(-1), reconciling: "CheckingToken"},
		{name: "WeChat busy for 40 s: not before", account: failing(busy, 40*time.Second), now: t0.Add(79 * time.Second),
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(-1), reconciling: v1alpha1.ReasonWeChatError(-1)},
		{name: "WeChat busy for 10 min: retried a minute after the last check", account: failing(busy, 10*time.Minute), now: t0.Add(11 * time.Minute), check: true,
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(-1), reconciling: "CheckingToken"},
		{name: "WeChat busy for 10 min: not before", account: failing(busy, 10*time.Minute), now: t0.Add(11*time.Minute - time.Second),
			ready: metav1.ConditionFalse, reason: v1alpha1.ReasonWeChatError(-1), reconciling: v1alpha1.ReasonWeChatError(-1)},
		{name: "Secret missing: no call", account: ready, mutate: func(in *Input) {
			in.Secret = Secret{Problem: &issuance.Problem{Reason: v1alpha1.ReasonAccountSecretMissing, Message: "missing"}}
		}, now: t0.Add(time.Minute), ready: metav1.ConditionFalse, reason: v1alpha1.ReasonAccountSecretMissing, stalled: v1alpha1.ReasonAccountSecretMissing, events: 1},
		{name: "younger duplicate AppID: refused, no call", account: fresh, mutate: func(in *Input) {
			in.Older = &Member{Kind: v1alpha1.KindClusterWeChatAccount, Name: "shop"}
		}, now: t0, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuplicateAppID, stalled: v1alpha1.ReasonDuplicateAppID, events: 1},
		{name: "the older one deleted: checked", account: func() *v1alpha1.WeChatAccount {
			a := fresh()
			in := input(a, t0)
			in.Older = &Member{Kind: v1alpha1.KindClusterWeChatAccount, Name: "shop"}
			a.Status = Decide(in).Status
			return a
		}, now: t0.Add(time.Minute), check: true, ready: metav1.ConditionFalse, reason: v1alpha1.ReasonDuplicateAppID, reconciling: "CheckingToken"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			in := input(tc.account(), tc.now)
			if tc.mutate != nil {
				tc.mutate(&in)
			}
			act := Decide(in)
			if act.CheckToken != tc.check || act.ReadQuota != tc.quota {
				t.Errorf("check %t, quota %t; want %t, %t", act.CheckToken, act.ReadQuota, tc.check, tc.quota)
			}
			r := act.Status.Condition(v1alpha1.ConditionReady)
			if tc.ready == "" && r != nil || tc.ready != "" && (r == nil || r.Status != tc.ready || r.Reason != tc.reason) {
				t.Errorf("Ready = %+v, want %s/%s", r, tc.ready, tc.reason)
			}
			expectCondition(t, act.Status, v1alpha1.ConditionReconciling, tc.reconciling)
			expectCondition(t, act.Status, v1alpha1.ConditionStalled, tc.stalled)
			if len(act.Events) != tc.events {
				t.Errorf("%d events, want %d: %+v", len(act.Events), tc.events, act.Events)
			}
		})
	}
}

// TestFailureShownOnce: a failed check says what to do, with one Event; the same failure again
// (an hourly 40164 retry) adds none.
func TestFailureShownOnce(t *testing.T) {
	act := Decide(input(fresh(), t0)).TokenChecked(allowlist)
	r := act.Status.Condition(v1alpha1.ConditionReady)
	if len(act.Events) != 1 || r == nil || !contains(r.Message, "40164", "allowlist", "Checked again at 2026-03-01T11:00:00Z") {
		t.Fatalf("events %+v, Ready %+v", act.Events, r)
	}
	if act.RequeueAfter() != time.Hour {
		t.Errorf("requeue after %v, want 1h", act.RequeueAfter())
	}
	a := fresh()
	a.Status = act.Status
	again := Decide(input(a, t0.Add(time.Hour))).TokenChecked(allowlist)
	if len(again.Events) != 0 {
		t.Errorf("the same failure again made Events: %+v", again.Events)
	}
	a.Status = again.Status
	fixed := Decide(input(a, t0.Add(2*time.Hour))).TokenChecked(nil)
	if r := fixed.Status.Condition(v1alpha1.ConditionReady); r.Status != metav1.ConditionTrue || fixed.Status.Condition(v1alpha1.ConditionStalled) != nil || !fixed.ReadQuota {
		t.Errorf("fixed: %+v, read quota %t", fixed.Status.Conditions, fixed.ReadQuota)
	}
}

func TestQuotaAndCounts(t *testing.T) {
	in := input(fresh(), t0)
	in.Codes = v1alpha1.AccountCodes{Total: 5, Ready: 4}
	in.PermanentUsed = 2
	act := Decide(in).TokenChecked(nil)
	if !act.ReadQuota {
		t.Fatal("a Ready account without quota reads it")
	}
	act = act.QuotaRead(wechat.Quota{DailyLimit: 100000, Used: 7, Remain: 99993}, nil)
	st := act.Status
	if st.Quota == nil || st.Quota.Used != 7 || st.Quota.DailyLimit != 100000 || st.Quota.Error != "" ||
		*st.Codes != in.Codes || *st.PermanentCodes != (v1alpha1.PermanentCodeUsage{Used: 2, Limit: v1alpha1.MaxPermanentCodes}) ||
		st.Callback.Path != "/wechat/"+appID || st.AppID != appID || st.ObservedSecretVersion != "7" {
		t.Errorf("status %+v", st)
	}
	if act.RequeueAfter() != time.Hour {
		t.Errorf("next quota read in %v, want 1h", act.RequeueAfter())
	}
	a := fresh()
	a.Status = st
	failed := Decide(input(a, t0.Add(time.Hour))).QuotaRead(wechat.Quota{}, errors.New("wechat errcode 48001 (api unauthorized)"))
	if q := failed.Status.Quota; q.Used != 7 || !contains(q.Error, "48001") || !q.ObservedTime.Time.Equal(t0.Add(time.Hour)) || len(failed.Events) != 1 {
		t.Errorf("failed read: %+v, events %+v", q, failed.Events)
	}
	a.Status.Callback.LastVerifiedPushTime = &metav1.Time{Time: t0}
	other := input(a, t0.Add(time.Minute))
	other.Secret.AppID = "wxffffffffffffffff"
	if st := Decide(other).Status; st.Quota != nil || st.Callback.Path != "/wechat/wxffffffffffffffff" || st.Callback.LastVerifiedPushTime == nil {
		t.Errorf("another AppID: quota %+v, callback %+v", st.Quota, st.Callback)
	}
}

func TestOldest(t *testing.T) {
	a := Member{Kind: v1alpha1.KindWeChatAccount, Namespace: "b", Name: "x", Created: t0}
	b := Member{Kind: v1alpha1.KindClusterWeChatAccount, Name: "y", Created: t0.Add(time.Second)}
	c := Member{Kind: v1alpha1.KindWeChatAccount, Namespace: "a", Name: "x", Created: t0}
	if got := Oldest([]Member{b, a, c}); got != c {
		t.Errorf("oldest %v, want %v (same time: by kind, namespace, name)", got, c)
	}
	if got := Oldest([]Member{b, a}); got != a {
		t.Errorf("oldest %v, want %v", got, a)
	}
}

func expectCondition(t *testing.T, st v1alpha1.WeChatAccountStatus, typ, reason string) {
	t.Helper()
	c := st.Condition(typ)
	switch {
	case reason == "" && c != nil:
		t.Errorf("%s present: %s/%s", typ, c.Status, c.Reason)
	case reason != "" && (c == nil || c.Status != metav1.ConditionTrue || c.Reason != reason):
		t.Errorf("%s = %+v, want True/%s", typ, c, reason)
	}
}

func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// TestDestinations: spec.forward and spec.sink as they resolve: the URL into status and a True
// condition; a reference that does not resolve leaves no URL (nothing is sent to a stale
// address), a False condition with its reason, and a look again later; none, no condition.
func TestDestinations(t *testing.T) {
	missing := &Destination{Problem: &issuance.Problem{Reason: "NotFound", Message: "spec.forward.service: Service ns/bot not found: create it"}}
	for _, tc := range []struct {
		name                   string
		forward, sink          *Destination
		forwardURL, sinkURI    string
		forwardCond, sinkCond  metav1.ConditionStatus
		forwardReason, requeue string
	}{
		{name: "none"},
		{name: "both resolve", forward: &Destination{URL: "http://bot.ns.svc:8080/wx"}, sink: &Destination{URL: "http://sink.ns.svc:80/"},
			forwardURL: "http://bot.ns.svc:8080/wx", sinkURI: "http://sink.ns.svc:80/", forwardCond: metav1.ConditionTrue, sinkCond: metav1.ConditionTrue, forwardReason: v1alpha1.ReasonResolved},
		{name: "forward missing", forward: missing, sink: &Destination{URL: "http://sink.ns.svc:80/"},
			sinkURI: "http://sink.ns.svc:80/", forwardCond: metav1.ConditionFalse, sinkCond: metav1.ConditionTrue, forwardReason: "NotFound", requeue: "yes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := fresh()
			a.Spec.Sink = &v1alpha1.Destination{URI: "http://sink.ns.svc:80/", Batch: &v1alpha1.Batch{MaxEvents: 100}}
			a.Status.ForwardURL = "http://stale"
			a.Status.SinkMaxEvents = 7
			in := input(a, t0)
			in.Forward, in.Sink = tc.forward, tc.sink
			act := Decide(in)
			st := act.Status
			if st.ForwardURL != tc.forwardURL || st.SinkURI != tc.sinkURI {
				t.Errorf("forwardURL %q sinkURI %q, want %q %q", st.ForwardURL, st.SinkURI, tc.forwardURL, tc.sinkURI)
			}
			if want := issuance.SinkMaxEvents(tc.sinkURI, a.Spec.Sink); st.SinkMaxEvents != want {
				t.Errorf("sinkMaxEvents %d, want %d", st.SinkMaxEvents, want)
			}
			for _, c := range []struct {
				typ    string
				status metav1.ConditionStatus
			}{{v1alpha1.ConditionForwardResolved, tc.forwardCond}, {v1alpha1.ConditionSinkResolved, tc.sinkCond}} {
				got := st.Condition(c.typ)
				if (got == nil) != (c.status == "") || got != nil && got.Status != c.status {
					t.Errorf("%s = %+v, want %q", c.typ, got, c.status)
				}
			}
			if f := st.Condition(v1alpha1.ConditionForwardResolved); f != nil && (f.Reason != tc.forwardReason || f.Status == metav1.ConditionFalse && f.Message != missing.Problem.Message) {
				t.Errorf("ForwardResolved %+v", f)
			}
			if tc.requeue != "" && act.RequeueAfter() != issuance.DestinationRetry {
				t.Errorf("requeue after %s, want %s", act.RequeueAfter(), issuance.DestinationRetry)
			}
			var warned []string
			for _, e := range act.Events {
				warned = append(warned, e.Reason)
			}
			if want := tc.forwardCond == metav1.ConditionFalse; want != slices.Contains(warned, v1alpha1.EventForwardUnresolved) {
				t.Errorf("events %v, want a ForwardUnresolved warning: %v", warned, want)
			}
			// The same problem seen again warns no more.
			again := a.DeepCopy()
			again.Status = st
			in.Account = again
			if again := Decide(in); tc.forwardCond == metav1.ConditionFalse && len(again.Events) != 0 {
				t.Errorf("second look warned again: %+v", again.Events)
			}
		})
	}
}
