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
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

func expectReady(t *testing.T, st v1alpha1.WeChatQRCodeStatus, status metav1.ConditionStatus, reason string, msgParts ...string) {
	t.Helper()
	c := st.Condition(v1alpha1.ConditionReady)
	if c == nil {
		t.Fatal("no Ready condition")
	}
	if c.Status != status || c.Reason != reason {
		t.Errorf("Ready = %s/%s (%s), want %s/%s", c.Status, c.Reason, c.Message, status, reason)
	}
	for _, p := range msgParts {
		if !strings.Contains(c.Message, p) {
			t.Errorf("Ready message %q lacks %q", c.Message, p)
		}
	}
}

var fresh = Ticket{Ticket: "new+ticket/==", URL: "http://weixin.qq.com/q/new", ImageURL: "https://img/?ticket=new%2Bticket%2F%3D%3D"}

var (
	errQuota = &wechat.Error{Code: 45009, Message: "reach max api daily quota limit", Class: wechat.ClassQuota}
	errBusy  = &wechat.Error{Code: -1, Message: "system error", Class: wechat.ClassRetryable}
	errIP    = &wechat.Error{Code: 40164, Message: "invalid ip, not in whitelist", Class: wechat.ClassTerminal}
)

// attempt decides for code at now, which must call WeChat, and records the answer err (nil: fresh).
func attempt(t *testing.T, code *v1alpha1.WeChatQRCode, now time.Time, err error) Action {
	t.Helper()
	act := Decide(in(code, now))
	if act.Trigger == "" {
		t.Fatalf("no call decided: %+v", act.Status.Conditions)
	}
	if err != nil {
		return act.Failed(err, now)
	}
	return act.Succeeded(fresh, now)
}

func TestIssuedUsesTheLifetimeWeChatAnswered(t *testing.T) {
	c := temporary()
	c.Status = v1alpha1.WeChatQRCodeStatus{FailedAttempts: 3, LastFailureTime: at(t0), LastFailureSecretVersion: "7"}
	requested := t0.Add(1500 * time.Millisecond)
	tk := fresh
	tk.ExpireSeconds = 3600 // the spec asked for 3h
	st := Issued(c, appID, tk, requested)

	if !st.IssuedAt.Equal(&metav1.Time{Time: t0.Add(time.Second)}) {
		t.Errorf("issuedAt = %s, want the request time truncated to the second", st.IssuedAt)
	}
	if want := t0.Add(time.Second + time.Hour); !st.ExpiresAt.Time.Equal(want) {
		t.Errorf("expiresAt = %s, want %s (the answered 3600 s)", st.ExpiresAt, want)
	}
	if st.RenewalTime == nil || !st.RenewalTime.Before(st.ExpiresAt) || st.RenewalTime.Before(st.IssuedAt) {
		t.Errorf("renewalTime %v not between issuance and expiry", st.RenewalTime)
	}
	if st.Ticket != tk.Ticket || st.URL != tk.URL || st.ImageURL != tk.ImageURL {
		t.Errorf("ticket fields = %q %q %q", st.Ticket, st.URL, st.ImageURL)
	}
	if f := st.IssuedFor; f == nil || f.AppID != appID || f.Type != v1alpha1.Temporary || !f.Scene.Equal(c.Spec.Scene) {
		t.Errorf("issuedFor = %+v", f)
	}
	if st.FailedAttempts != 0 || st.LastFailureTime != nil || st.LastFailureSecretVersion != "" {
		t.Errorf("failure not cleared: %d %v %q", st.FailedAttempts, st.LastFailureTime, st.LastFailureSecretVersion)
	}
	if st.ObservedGeneration != c.Generation {
		t.Errorf("observedGeneration = %d", st.ObservedGeneration)
	}
	expectReady(t, st, metav1.ConditionTrue, v1alpha1.ReasonIssued)
	expectCondition(t, st, v1alpha1.ConditionReconciling, "")
	expectCondition(t, st, v1alpha1.ConditionStalled, "")
	if c.Status.Ticket != "" {
		t.Error("Issued modified its input")
	}
}

func TestIssuedKeepsLiveTemporaryTickets(t *testing.T) {
	c := temporary()
	c.Status.PreviousTickets = []v1alpha1.PreviousTicket{
		{Ticket: "expired", AppID: "wxold", ExpiresAt: at(t0.Add(time.Hour))},
		{Ticket: "alive", AppID: "wxold", ExpiresAt: at(t0.Add(4 * time.Hour))},
	}
	now := t0.Add(2*time.Hour + 30*time.Minute)
	st := Issued(c, appID, fresh, now)
	want := []v1alpha1.PreviousTicket{
		{Ticket: "alive", AppID: "wxold", ExpiresAt: at(t0.Add(4 * time.Hour))},
		{Ticket: c.Status.Ticket, AppID: c.Status.IssuedFor.AppID, Scene: c.Spec.Scene, ExpiresAt: c.Status.ExpiresAt},
	}
	if !equality.Semantic.DeepEqual(st.PreviousTickets, want) {
		t.Errorf("previousTickets = %+v, want %+v", st.PreviousTickets, want)
	}

	// Renewed after the old ticket expired: nothing worth keeping.
	st = Issued(c, appID, fresh, t0.Add(5*time.Hour))
	if len(st.PreviousTickets) != 0 {
		t.Errorf("previousTickets = %+v, want none", st.PreviousTickets)
	}
}

// TestPermanentTicketsAreKeptUntilClaimed: a permanent code moved to another scene keeps its
// old ticket with no expiry, until another code of that AppID claims the scene or it claims the
// scene again itself.
func TestPermanentTicketsAreKeptUntilClaimed(t *testing.T) {
	c := permanent()
	old := c.Status.Ticket
	c.Spec.Scene = v1alpha1.Scene{ID: ptr.To[int64](7)}
	st := attempt(t, c, t0, nil).Status
	kept := []v1alpha1.PreviousTicket{{Ticket: old, AppID: appID, Scene: v1alpha1.Scene{Str: ptr.To("spring")}}}
	if !equality.Semantic.DeepEqual(st.PreviousTickets, kept) {
		t.Fatalf("previousTickets = %+v, want %+v", st.PreviousTickets, kept)
	}
	if st.ExpiresAt != nil || st.RenewalTime != nil {
		t.Errorf("permanent code got expiresAt %v renewalTime %v", st.ExpiresAt, st.RenewalTime)
	}
	expectReady(t, st, metav1.ConditionTrue, v1alpha1.ReasonIssued, "Permanent")
	c.Status = st
	if got := Decide(in(c, t0.AddDate(10, 0, 0))).Status.PreviousTickets; !equality.Semantic.DeepEqual(got, kept) {
		t.Errorf("ten years later previousTickets = %+v", got)
	}

	claimant := func(typ v1alpha1.QRCodeType, scene v1alpha1.Scene, appID string) Neighbour {
		n := permanent()
		n.Name, n.Spec.Type, n.Spec.Scene, n.Status = "y", typ, scene, v1alpha1.WeChatQRCodeStatus{}
		return Neighbour{Code: n, AppID: appID}
	}
	spring := v1alpha1.Scene{Str: ptr.To("spring")}
	for _, tc := range []struct {
		name      string
		neighbour Neighbour
		dropped   bool
	}{
		{"another code claims the scene", claimant(v1alpha1.Permanent, spring, appID), true},
		{"the same scene of another AppID", claimant(v1alpha1.Permanent, spring, "wxother"), false},
		{"a temporary code of the same scene", claimant(v1alpha1.Temporary, spring, appID), false},
		{"string \"7\" is not id 7", claimant(v1alpha1.Permanent, v1alpha1.Scene{Str: ptr.To("7")}, appID), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			input := in(c, t0)
			input.Neighbours = []Neighbour{tc.neighbour}
			act := Decide(input)
			if got := len(act.Status.PreviousTickets) == 0; got != tc.dropped {
				t.Errorf("previousTickets = %+v, dropped %v, want %v", act.Status.PreviousTickets, got, tc.dropped)
			}
			expectReady(t, act.Status, metav1.ConditionTrue, v1alpha1.ReasonIssued)
		})
	}

	t.Run("bounded: the oldest goes", func(t *testing.T) {
		many := c.DeepCopy()
		for i := range v1alpha1.MaxPreviousTickets {
			many.Status.PreviousTickets = append(many.Status.PreviousTickets, v1alpha1.PreviousTicket{
				Ticket: fmt.Sprint("t", i), AppID: appID, Scene: v1alpha1.Scene{ID: ptr.To(int64(100 + i))}})
		}
		many.Spec.Scene = v1alpha1.Scene{ID: ptr.To[int64](8)}
		// 102 with the spring ticket and the scene-7 one: the spring ticket and t0 go.
		st := Decide(in(many, t0)).Succeeded(Ticket{Ticket: "scene-8"}, t0).Status
		if n := len(st.PreviousTickets); n != v1alpha1.MaxPreviousTickets || st.PreviousTickets[0].Ticket != "t1" ||
			st.PreviousTickets[n-1].Ticket != c.Status.Ticket {
			t.Errorf("%d previous tickets, first %q, last %q", n, st.PreviousTickets[0].Ticket, st.PreviousTickets[n-1].Ticket)
		}
	})
	t.Run("claimed again by the code itself", func(t *testing.T) {
		back := c.DeepCopy()
		back.Spec.Scene = spring
		act := Decide(in(back, t0))
		if act.Trigger != SceneChanged {
			t.Fatalf("trigger %q", act.Trigger)
		}
		st := act.Succeeded(Ticket{Ticket: old, URL: "u"}, t0).Status
		if len(st.PreviousTickets) != 1 || st.PreviousTickets[0].Ticket != fresh.Ticket || st.Ticket != old {
			t.Errorf("ticket %q, previousTickets %+v: want the old ticket current and the scene-7 one kept", st.Ticket, st.PreviousTickets)
		}
	})
}

func TestFailed(t *testing.T) {
	t.Run("first issuance", func(t *testing.T) {
		c := unissued()
		act := attempt(t, c, t0, errBusy)
		st := act.Status
		if st.FailedAttempts != 1 || !st.LastFailureTime.Time.Equal(t0) || st.LastFailureSecretVersion != "7" {
			t.Errorf("failure fields = %d %v %q", st.FailedAttempts, st.LastFailureTime, st.LastFailureSecretVersion)
		}
		if want := retryAt(transient, 1, "uid-tmp/retry", t0).Truncate(time.Second); !st.RenewalTime.Time.Equal(want) {
			t.Errorf("renewalTime = %s, want the retry time %s", st.RenewalTime, want)
		}
		expectReady(t, st, metav1.ConditionFalse, "WeChatErrorMinus1", "errcode -1", "Attempt 1 failed")
		expectCondition(t, st, v1alpha1.ConditionReconciling, "WeChatErrorMinus1")
		expectCondition(t, st, v1alpha1.ConditionStalled, "")
		if len(act.Events) != 1 || act.Events[0].Type != corev1.EventTypeWarning || act.Events[0].Reason != v1alpha1.EventIssueFailed {
			t.Errorf("events %+v", act.Events)
		}
		// The next failure doubles the delay.
		c.Status = st
		st = attempt(t, c, st.RenewalTime.Time, errBusy).Status
		if d := st.RenewalTime.Sub(st.LastFailureTime.Time); st.FailedAttempts != 2 || d < 7*time.Second || d > 10*time.Second {
			t.Errorf("second failure: attempt %d, delay %s", st.FailedAttempts, d)
		}
	})
	t.Run("renewal while the ticket lives", func(t *testing.T) {
		st := attempt(t, temporary(), t0.Add(2*time.Hour+30*time.Minute), errQuota).Status
		expectReady(t, st, metav1.ConditionTrue, v1alpha1.ReasonRenewing, "valid until", "45009", "retries at once")
		expectCondition(t, st, v1alpha1.ConditionReconciling, v1alpha1.ReasonQuotaExhausted)
		if st.Ticket != temporary().Status.Ticket {
			t.Error("a failed renewal dropped the live ticket")
		}
	})
	t.Run("renewal of an expired ticket", func(t *testing.T) {
		st := attempt(t, temporary(), t0.Add(4*time.Hour), errQuota).Status
		expectReady(t, st, metav1.ConditionFalse, v1alpha1.ReasonQuotaExhausted, "45009", "next attempt at")
	})
	t.Run("terminal: stalled", func(t *testing.T) {
		st := attempt(t, unissued(), t0, errIP).Status
		expectCondition(t, st, v1alpha1.ConditionStalled, "WeChatError40164")
		expectCondition(t, st, v1alpha1.ConditionReconciling, "")
	})
	t.Run("scene changed: the old ticket no longer counts", func(t *testing.T) {
		c := temporary()
		c.Spec.Scene.ID = ptr.To[int64](9)
		expectReady(t, attempt(t, c, t0, errBusy).Status, metav1.ConditionFalse, "WeChatErrorMinus1")
	})
}

// TestExpiredWhileRenewalFails: the Expired message says one thing: the ticket expired at T, the
// renewal is failing with the errcode, the next attempt is at T'.
func TestExpiredWhileRenewalFails(t *testing.T) {
	c := temporary()
	c.Status = attempt(t, c, t0.Add(2*time.Hour+30*time.Minute), errIP).Status

	act := Decide(in(c, t0.Add(2*time.Hour+40*time.Minute)))
	if !equality.Semantic.DeepEqual(act.Status, c.Status) || act.Trigger != "" || len(act.Events) != 0 {
		t.Errorf("waiting before expiry changed status or made a call:\n%+v\n%+v", act.Status, c.Status)
	}
	act = Decide(in(c, t0.Add(3*time.Hour)))
	want := "The ticket expired at 2026-03-01T13:00:00Z; its renewal is failing: wechat errcode 40164 (invalid ip, not in whitelist): "
	expectReady(t, act.Status, metav1.ConditionFalse, v1alpha1.ReasonExpired, want, "Attempt 1 failed; next attempt at "+format(c.Status.RenewalTime.Time))
	if msg := act.Status.Condition(v1alpha1.ConditionReady).Message; strings.Contains(msg, "valid until") || !strings.HasPrefix(msg, want) {
		t.Errorf("Expired message %q", msg)
	}
	if st := act.Status; st.FailedAttempts != 1 || st.RenewalTime == nil || !st.RenewalTime.Equal(c.Status.RenewalTime) {
		t.Error("waiting changed the backoff")
	}
	if len(act.Events) != 1 || act.Events[0].Reason != v1alpha1.ReasonExpired {
		t.Errorf("events %+v, want one Expired", act.Events)
	}
}

func TestSceneTaken(t *testing.T) {
	holder := permanent()
	holder.Name, holder.Namespace, holder.CreationTimestamp = "holder", "other", metav1.Time{Time: t0.Add(-time.Hour)}
	c := permanent()
	c.Status.FailedAttempts, c.CreationTimestamp = 2, metav1.Time{Time: t0}
	input := in(c, t0)
	// Two codes hold the ticket (written concurrently): the older keeps it.
	input.Neighbours = []Neighbour{{Code: holder, AppID: appID}}
	act := Decide(input)
	expectReady(t, act.Status, metav1.ConditionFalse, v1alpha1.ReasonSceneConflict, "other/holder", `scene str "spring"`, appID)
	if st := act.Status; st.Ticket != "" || st.IssuedFor != nil || st.FailedAttempts != 0 || len(st.PreviousTickets) != 0 {
		t.Errorf("the shared ticket was kept: %q %+v, attempts %d, previous %+v", st.Ticket, st.IssuedFor, st.FailedAttempts, st.PreviousTickets)
	}

	// Moved onto a taken scene: the ticket of its former scene is its own and stays until replaced.
	c = permanent()
	c.Spec.Scene = v1alpha1.Scene{ID: ptr.To[int64](5)}
	holder.Spec.Scene = c.Spec.Scene
	input = in(c, t0)
	input.Neighbours = []Neighbour{{Code: holder, AppID: appID}}
	if st := Decide(input).Status; st.Ticket != c.Status.Ticket {
		t.Errorf("ticket of the former scene dropped")
	}
}

func TestUpToDate(t *testing.T) {
	c := temporary()
	c.Generation = 2
	c.Spec.RenewBefore = dur(2 * time.Hour)
	c.Status.FailedAttempts, c.Status.LastFailureSecretVersion = 1, "7"
	c.Status.PreviousTickets = []v1alpha1.PreviousTicket{{Ticket: "old", ExpiresAt: at(t0.Add(time.Minute))}}
	now := t0.Add(30 * time.Minute)
	act := Decide(in(c, now))
	st := act.Status
	want, _ := scheduledRenewal(c)
	if st.RenewalTime == nil || !st.RenewalTime.Time.Equal(want) || want.After(t0.Add(time.Hour)) {
		t.Errorf("renewalTime = %v, want %s (renewBefore 2h)", st.RenewalTime, want)
	}
	if st.FailedAttempts != 0 || st.ObservedGeneration != 2 {
		t.Errorf("attempts %d, observedGeneration %d", st.FailedAttempts, st.ObservedGeneration)
	}
	if len(st.PreviousTickets) != 0 {
		t.Errorf("expired previous ticket kept")
	}
	expectReady(t, st, metav1.ConditionTrue, v1alpha1.ReasonIssued, "renewal at")
	if d := act.RequeueAfter(now); d != want.Sub(now) {
		t.Errorf("RequeueAfter = %s, want the renewal in %s", d, want.Sub(now))
	}
}

// TestStoredStatusIsStable: a status stored (JSON, second precision) and recomputed is
// semantically equal, so a reconcile with nothing to do writes nothing and says nothing.
func TestStoredStatusIsStable(t *testing.T) {
	for _, c := range []*v1alpha1.WeChatQRCode{temporary(), permanent()} {
		c.Spec.Scene = v1alpha1.Scene{ID: ptr.To[int64](99)} // a re-issue: previous tickets too
		c.Status = attempt(t, c, t0.Add(1234*time.Millisecond), nil).Status
		raw, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		var stored v1alpha1.WeChatQRCode
		if err := json.Unmarshal(raw, &stored); err != nil {
			t.Fatal(err)
		}
		later := t0.Add(10*time.Minute + 700*time.Millisecond)
		if act := Decide(in(&stored, later)); !equality.Semantic.DeepEqual(act.Status, stored.Status) || len(act.Events) != 0 {
			t.Errorf("%s: recomputed status differs or Events: %+v\n got %+v\nwant %+v", c.Name, act.Events, act.Status, stored.Status)
		}
	}
}

func TestRequeueAfter(t *testing.T) {
	now := t0
	act := Action{Status: v1alpha1.WeChatQRCodeStatus{
		RenewalTime: at(t0.Add(2 * time.Hour)),
		ExpiresAt:   at(t0.Add(3 * time.Hour)),
		PreviousTickets: []v1alpha1.PreviousTicket{
			{Ticket: "a", ExpiresAt: at(t0.Add(90 * time.Minute))},
			{Ticket: "permanent"},
		},
	}}
	if d := act.RequeueAfter(now); d != 90*time.Minute {
		t.Errorf("RequeueAfter = %s, want the previous ticket's expiry", d)
	}
	act.Status.PreviousTickets = nil
	act.Status.RenewalTime = at(t0.Add(-time.Minute)) // due but blocked (Secret missing): no hot loop
	if d := act.RequeueAfter(now); d != 3*time.Hour {
		t.Errorf("RequeueAfter = %s, want the expiry", d)
	}
	if d := (Action{}).RequeueAfter(now); d != 0 {
		t.Errorf("RequeueAfter of a permanent code = %s", d)
	}
}

func TestEvents(t *testing.T) {
	only := func(t *testing.T, act Action, typ, reason string, noteParts ...string) {
		t.Helper()
		if len(act.Events) != 1 || act.Events[0].Type != typ || act.Events[0].Reason != reason {
			t.Fatalf("events %+v, want one %s %s", act.Events, typ, reason)
		}
		for _, p := range noteParts {
			if !strings.Contains(act.Events[0].Note, p) {
				t.Errorf("note %q lacks %q", act.Events[0].Note, p)
			}
		}
	}
	only(t, attempt(t, unissued(), t0, nil), corev1.EventTypeNormal, v1alpha1.EventIssued)
	only(t, attempt(t, temporary(), t0.Add(2*time.Hour+50*time.Minute), nil), corev1.EventTypeNormal, v1alpha1.EventRenewed)
	moved := temporary()
	moved.Spec.Scene.ID = ptr.To[int64](5)
	only(t, attempt(t, moved, t0, nil), corev1.EventTypeNormal, v1alpha1.EventReissued)
	req := requested(t0.Add(time.Minute), "")()
	act := attempt(t, req, t0.Add(time.Hour), nil)
	only(t, act, corev1.EventTypeNormal, v1alpha1.EventRenewed, "Renewal requested at 2026-03-01T10:01:00Z")
	if act.Status.ObservedRenewRequest != "2026-03-01T10:01:00Z" {
		t.Errorf("observedRenewRequest %q", act.Status.ObservedRenewRequest)
	}

	// A new problem is told once.
	input := in(unissued(), t0)
	input.Account.Problem = &Problem{Reason: v1alpha1.ReasonAccountSecretMissing, Message: "Secret \"acct\" does not exist"}
	act = Decide(input)
	only(t, act, corev1.EventTypeWarning, v1alpha1.ReasonAccountSecretMissing, "does not exist")
	input.Code.Status = act.Status
	if again := Decide(input); len(again.Events) != 0 {
		t.Errorf("told twice: %+v", again.Events)
	}

	// An account being checked is no Event; its failure is, with its reason and message, once
	// per reason of the account's, whatever its message says of the next retry.
	input = in(unissued(), t0)
	input.Account.Problem = AccountChecking(`WeChatAccount "acct" in namespace shop`)
	act = Decide(input)
	expectReady(t, act.Status, metav1.ConditionFalse, v1alpha1.ReasonAccountNotReady, "is being checked")
	if len(act.Events) != 0 {
		t.Errorf("an account being checked is told: %+v", act.Events)
	}
	input.Code.Status = act.Status
	for i, c := range []struct {
		reason, message string
		told            bool
	}{
		{"WeChatUnreachable", "Getting an access token failed: timeout. Checked again at 10:00:05", true},
		{"WeChatUnreachable", "Getting an access token failed: timeout. Checked again at 10:00:10", false},
		{"WeChatError40013", "Getting an access token failed: wechat errcode 40013 (invalid appid)", true},
	} {
		input.Account.Problem = AccountNotReady(`WeChatAccount "acct" in namespace shop`, c.reason, c.message)
		act = Decide(input)
		if !c.told {
			if len(act.Events) != 0 {
				t.Errorf("%d: told again: %+v", i, act.Events)
			}
		} else {
			only(t, act, corev1.EventTypeWarning, v1alpha1.ReasonAccountNotReady,
				`WeChatAccount "acct" in namespace shop is not Ready (`+c.reason+"): "+c.message)
		}
		input.Code.Status = act.Status
	}

	// A renew request of a Permanent code is refused once.
	p := permanent()
	p.Annotations = map[string]string{v1alpha1.AnnotationRenewRequestedAt: "2026-03-01T10:01:00Z"}
	act = Decide(in(p, t0.Add(time.Hour)))
	only(t, act, corev1.EventTypeWarning, v1alpha1.EventRenewRequestIgnored, "Permanent")
	if act.Trigger != "" || act.Status.ObservedRenewRequest != "2026-03-01T10:01:00Z" {
		t.Errorf("trigger %q, observedRenewRequest %q", act.Trigger, act.Status.ObservedRenewRequest)
	}
	p.Status = act.Status
	if again := Decide(in(p, t0.Add(time.Hour))); len(again.Events) != 0 {
		t.Errorf("refused twice: %+v", again.Events)
	}
}

// TestBoundedNote: a note is cut to the API server's 1,024 bytes, never inside a character.
func TestBoundedNote(t *testing.T) {
	for _, tc := range []struct {
		name string
		note string
		want int
	}{
		{"short", "Created at WeChat the tags \"a\" (id 100)", 39},
		{"exactly the limit", strings.Repeat("a", 1024), 1024},
		{"ascii, too long", strings.Repeat("a", 2000), 1024},
		{"three-byte characters, too long", "a" + strings.Repeat("春", 500), 1022},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Event{Note: tc.note}.BoundedNote()
			if len(got) != tc.want || !utf8.ValidString(got) {
				t.Errorf("%d bytes (valid UTF-8: %v), want %d", len(got), utf8.ValidString(got), tc.want)
			}
			if len(tc.note) > 1024 && !strings.HasSuffix(got, " …") {
				t.Errorf("a cut note ends %q, want it marked", got[len(got)-8:])
			}
		})
	}
}
