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
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

func ready(t *testing.T, st v1alpha1.WeChatQRCodeStatus) metav1.Condition {
	t.Helper()
	c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if c == nil {
		t.Fatal("no Ready condition")
	}
	return *c
}

func expectReady(t *testing.T, st v1alpha1.WeChatQRCodeStatus, status metav1.ConditionStatus, reason string, msgParts ...string) {
	t.Helper()
	c := ready(t, st)
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
	expectReady(t, st, metav1.ConditionTrue, ReasonIssued)
	if c.Status.Ticket != "" {
		t.Error("Issued modified its input")
	}
}

func TestIssuedKeepsLiveTemporaryTickets(t *testing.T) {
	c := temporary()
	c.Status.PreviousTickets = []v1alpha1.PreviousTicket{
		{Ticket: "expired", AppID: "wxold", ExpiresAt: metav1.Time{Time: t0.Add(time.Hour)}},
		{Ticket: "alive", AppID: "wxold", ExpiresAt: metav1.Time{Time: t0.Add(4 * time.Hour)}},
	}
	now := t0.Add(2*time.Hour + 30*time.Minute)
	st := Issued(c, appID, fresh, now)
	want := []v1alpha1.PreviousTicket{
		{Ticket: "alive", AppID: "wxold", ExpiresAt: metav1.Time{Time: t0.Add(4 * time.Hour)}},
		{Ticket: c.Status.Ticket, AppID: c.Status.IssuedFor.AppID, ExpiresAt: *c.Status.ExpiresAt},
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

func TestIssuedPermanent(t *testing.T) {
	c := permanent()
	c.Spec.Scene = v1alpha1.Scene{ID: ptr.To[int64](7)} // scene changed: the old permanent ticket goes
	st := Issued(c, appID, fresh, t0)
	if st.ExpiresAt != nil || st.RenewalTime != nil {
		t.Errorf("permanent code got expiresAt %v renewalTime %v", st.ExpiresAt, st.RenewalTime)
	}
	if len(st.PreviousTickets) != 0 {
		t.Errorf("a permanent ticket went to previousTickets: %+v", st.PreviousTickets)
	}
	expectReady(t, st, metav1.ConditionTrue, ReasonIssued, "Permanent")
}

func TestFailed(t *testing.T) {
	quota := Failure{Kind: Quota, Reason: ReasonQuotaExhausted, Message: "wechat errcode 45009 (reach max api daily quota limit): wait"}
	busy := Failure{Kind: Transient, Reason: ReasonWeChatError(-1), Message: "wechat errcode -1 (system error): retrying"}

	t.Run("first issuance", func(t *testing.T) {
		c := temporary()
		c.Status = v1alpha1.WeChatQRCodeStatus{}
		st := Failed(c, First, busy, "7", t0)
		if st.FailedAttempts != 1 || !st.LastFailureTime.Time.Equal(t0) || st.LastFailureSecretVersion != "7" {
			t.Errorf("failure fields = %d %v %q", st.FailedAttempts, st.LastFailureTime, st.LastFailureSecretVersion)
		}
		if want := RetryAt(Transient, 1, "uid-tmp/retry", t0).Truncate(time.Second); !st.RenewalTime.Time.Equal(want) {
			t.Errorf("renewalTime = %s, want the retry time %s", st.RenewalTime, want)
		}
		expectReady(t, st, metav1.ConditionFalse, "WeChatErrorMinus1", "errcode -1", "Attempt 1 failed")
		// The next failure doubles the delay.
		c.Status = st
		st = Failed(c, First, busy, "7", st.RenewalTime.Time)
		if d := st.RenewalTime.Sub(st.LastFailureTime.Time); st.FailedAttempts != 2 || d < 7*time.Second || d > 10*time.Second {
			t.Errorf("second failure: attempt %d, delay %s", st.FailedAttempts, d)
		}
	})
	t.Run("renewal while the ticket lives", func(t *testing.T) {
		st := Failed(temporary(), Renewal, quota, "7", t0.Add(2*time.Hour+30*time.Minute))
		expectReady(t, st, metav1.ConditionTrue, ReasonRenewing, "valid until", "45009", "retries at once")
		if st.Ticket != temporary().Status.Ticket {
			t.Error("a failed renewal dropped the live ticket")
		}
	})
	t.Run("renewal of an expired ticket", func(t *testing.T) {
		st := Failed(temporary(), Renewal, quota, "7", t0.Add(4*time.Hour))
		expectReady(t, st, metav1.ConditionFalse, ReasonQuotaExhausted, "45009", "next attempt at")
	})
	t.Run("scene changed: the old ticket no longer counts", func(t *testing.T) {
		c := temporary()
		c.Spec.Scene.ID = ptr.To[int64](9)
		st := Failed(c, SceneChanged, busy, "7", t0)
		expectReady(t, st, metav1.ConditionFalse, "WeChatErrorMinus1")
	})
}

func TestWaiting(t *testing.T) {
	c := temporary()
	c.Status = Failed(c, Renewal, Failure{Kind: Terminal, Reason: ReasonWeChatError(40164), Message: "errcode 40164"}, "7", t0.Add(2*time.Hour+30*time.Minute))
	c.Generation = 1

	st := Waiting(c, t0.Add(2*time.Hour+40*time.Minute))
	if !equality.Semantic.DeepEqual(st, c.Status) {
		t.Errorf("waiting before expiry changed status:\n%+v\n%+v", st, c.Status)
	}
	st = Waiting(c, t0.Add(3*time.Hour))
	expectReady(t, st, metav1.ConditionFalse, ReasonExpired, "expired at", "errcode 40164")
	if st.FailedAttempts != 1 || st.RenewalTime == nil || !st.RenewalTime.Equal(c.Status.RenewalTime) {
		t.Error("waiting changed the backoff")
	}
}

func TestSceneTaken(t *testing.T) {
	c := permanent()
	c.Status.FailedAttempts = 2
	st := SceneTaken(c, appID, "other/holder", t0)
	expectReady(t, st, metav1.ConditionFalse, ReasonSceneConflict, "other/holder", `scene str "spring"`, appID)
	if st.Ticket != "" || st.IssuedFor != nil || st.FailedAttempts != 0 {
		t.Errorf("the shared ticket was kept: %q %+v, attempts %d", st.Ticket, st.IssuedFor, st.FailedAttempts)
	}

	// Moved onto a taken scene: the ticket of its former scene is its own and stays until replaced.
	c = permanent()
	c.Spec.Scene = v1alpha1.Scene{ID: ptr.To[int64](5)}
	if st := SceneTaken(c, appID, "other/holder", t0); st.Ticket != c.Status.Ticket {
		t.Errorf("ticket of the former scene dropped")
	}
}

func TestUpToDate(t *testing.T) {
	c := temporary()
	c.Generation = 2
	c.Spec.RenewBefore = dur(2 * time.Hour)
	c.Status.FailedAttempts, c.Status.LastFailureSecretVersion = 1, "7"
	c.Status.PreviousTickets = []v1alpha1.PreviousTicket{{Ticket: "old", ExpiresAt: metav1.Time{Time: t0.Add(time.Minute)}}}
	now := t0.Add(30 * time.Minute)
	st := UpToDate(c, now)
	want, _ := ScheduledRenewal(c)
	if st.RenewalTime == nil || !st.RenewalTime.Time.Equal(want) || want.After(t0.Add(time.Hour)) {
		t.Errorf("renewalTime = %v, want %s (renewBefore 2h)", st.RenewalTime, want)
	}
	if st.FailedAttempts != 0 || st.ObservedGeneration != 2 {
		t.Errorf("attempts %d, observedGeneration %d", st.FailedAttempts, st.ObservedGeneration)
	}
	if len(st.PreviousTickets) != 0 {
		t.Errorf("expired previous ticket kept")
	}
	expectReady(t, st, metav1.ConditionTrue, ReasonIssued, "renewal at")
	if d := NextReconcile(&st, now); d != want.Sub(now) {
		t.Errorf("NextReconcile = %s, want the renewal in %s", d, want.Sub(now))
	}
}

// TestStoredStatusIsStable: a status stored (JSON, second precision) and recomputed is
// semantically equal, so a reconcile with nothing to do writes nothing.
func TestStoredStatusIsStable(t *testing.T) {
	c := temporary()
	c.Status = Issued(c, appID, Ticket{Ticket: "t", URL: "u", ImageURL: "i", ExpireSeconds: 3 * 3600}, t0.Add(1234*time.Millisecond))
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	var stored v1alpha1.WeChatQRCode
	if err := json.Unmarshal(raw, &stored); err != nil {
		t.Fatal(err)
	}
	later := t0.Add(10*time.Minute + 700*time.Millisecond)
	if got := UpToDate(&stored, later); !equality.Semantic.DeepEqual(got, stored.Status) {
		t.Errorf("recomputed status differs:\n got %+v\nwant %+v", got, stored.Status)
	}
}

func TestNextReconcile(t *testing.T) {
	now := t0
	st := v1alpha1.WeChatQRCodeStatus{
		RenewalTime: at(t0.Add(2 * time.Hour)),
		ExpiresAt:   at(t0.Add(3 * time.Hour)),
		PreviousTickets: []v1alpha1.PreviousTicket{
			{Ticket: "a", ExpiresAt: metav1.Time{Time: t0.Add(90 * time.Minute)}},
		},
	}
	if d := NextReconcile(&st, now); d != 90*time.Minute {
		t.Errorf("NextReconcile = %s, want the previous ticket's expiry", d)
	}
	st.PreviousTickets = nil
	st.RenewalTime = at(t0.Add(-time.Minute)) // due but blocked (Secret missing): no hot loop
	if d := NextReconcile(&st, now); d != 3*time.Hour {
		t.Errorf("NextReconcile = %s, want the expiry", d)
	}
	if d := NextReconcile(&v1alpha1.WeChatQRCodeStatus{}, now); d != 0 {
		t.Errorf("NextReconcile of a permanent code = %s", d)
	}
}
