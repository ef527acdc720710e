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
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
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

func permanent() *v1alpha1.WeChatQRCode {
	c := temporary()
	c.Name, c.UID = "perm", "uid-perm"
	c.Spec.Type, c.Spec.TTL = v1alpha1.Permanent, nil
	c.Spec.Scene = v1alpha1.Scene{Str: ptr.To("spring")}
	c.Status.IssuedFor = &v1alpha1.IssuedFor{AppID: appID, Type: v1alpha1.Permanent, Scene: v1alpha1.Scene{Str: ptr.To("spring")}}
	c.Status.ExpiresAt = nil
	return c
}

func TestNeeded(t *testing.T) {
	renewal, _ := ScheduledRenewal(temporary())
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
		{"temporary, before renewal", temporary, appID, renewal.Add(-time.Second), Current},
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
		{"permanent, a century later", permanent, appID, t0.AddDate(100, 0, 0), Current},
		{"only reply, ttl, renewBefore and annotations changed", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Generation = 7
			c.Annotations = map[string]string{v1alpha1.AnnotationScans: "42"}
			c.Spec.Reply = &v1alpha1.Reply{Text: "hi"}
			c.Spec.TTL = dur(720 * time.Hour)
			c.Spec.RenewBefore = dur(time.Hour)
			return c
		}, appID, t0.Add(time.Hour), Current},
		{"renewBefore lengthened past now", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Spec.RenewBefore = dur(2*time.Hour + 30*time.Minute)
			return c
		}, appID, t0.Add(time.Hour), Renewal},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Needed(tc.code(), tc.appID, tc.now); got != tc.expect {
				t.Errorf("Needed = %q, want %q", got, tc.expect)
			}
		})
	}
}

func TestDecideBackoff(t *testing.T) {
	// A first issuance that failed at t0 with the Secret at version "7"; retry at t0+10s.
	failed := func() *v1alpha1.WeChatQRCode {
		c := temporary()
		c.Status = v1alpha1.WeChatQRCodeStatus{
			ObservedGeneration: 1, FailedAttempts: 2, LastFailureTime: at(t0),
			LastFailureSecretVersion: "7", RenewalTime: at(t0.Add(10 * time.Second)),
		}
		return c
	}
	cases := []struct {
		name          string
		code          func() *v1alpha1.WeChatQRCode
		secretVersion string
		now           time.Time
		expect        Decision
	}{
		{"nothing to do", temporary, "7", t0, Decision{}},
		{"first issuance", unissued, "7", t0, Decision{First, true}},
		{"within backoff", failed, "7", t0.Add(9 * time.Second), Decision{First, false}},
		{"backoff over", failed, "7", t0.Add(10 * time.Second), Decision{First, true}},
		{"Secret changed during backoff", failed, "8", t0.Add(time.Second), Decision{First, true}},
		{"spec changed during backoff", func() *v1alpha1.WeChatQRCode {
			c := failed()
			c.Generation = 2
			return c
		}, "7", t0.Add(time.Second), Decision{First, true}},
		{"stale failure of a ticket that fits again", func() *v1alpha1.WeChatQRCode {
			c := temporary()
			c.Status.FailedAttempts, c.Status.LastFailureSecretVersion = 3, "7"
			c.Status.RenewalTime = at(t0.Add(time.Hour))
			return c
		}, "7", t0.Add(time.Minute), Decision{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Decide(tc.code(), appID, tc.secretVersion, tc.now); got != tc.expect {
				t.Errorf("Decide = %+v, want %+v", got, tc.expect)
			}
		})
	}
}

func TestRenewalTime(t *testing.T) {
	const seed = "uid/ticket"
	cases := []struct {
		name        string
		lifetime    time.Duration
		renewBefore time.Duration
		// The renewal lies in [expiry-renewBefore-maxJitter, expiry-renewBefore], floored.
		wantRenewBefore, wantMaxJitter time.Duration
	}{
		{"default: a third of the lifetime", 168 * time.Hour, 0, 56 * time.Hour, 112 * time.Hour / 10},
		{"explicit renewBefore", 168 * time.Hour, 24 * time.Hour, 24 * time.Hour, 144 * time.Hour / 10},
		{"renewBefore not shorter than what WeChat granted: default", time.Hour, 2 * time.Hour, 20 * time.Minute, 4 * time.Minute},
		{"short ttl, renewBefore close to it", time.Minute, 50 * time.Second, 50 * time.Second, time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expiry := t0.Add(tc.lifetime)
			got := RenewalTime(t0, expiry, tc.renewBefore, seed)
			latest := expiry.Add(-tc.wantRenewBefore)
			earliest := latest.Add(-tc.wantMaxJitter - time.Second) // truncation to the second
			if got.After(latest) || got.Before(earliest) {
				t.Errorf("renewal at %s, want within [%s, %s]", got, earliest, latest)
			}
			if got != got.Truncate(time.Second) {
				t.Errorf("renewal %s is not truncated to the second", got)
			}
			if again := RenewalTime(t0, expiry, tc.renewBefore, seed); !again.Equal(got) {
				t.Errorf("not deterministic: %s then %s", got, again)
			}
		})
	}
	t.Run("a ticket serves at least a tenth of its lifetime", func(t *testing.T) {
		got := RenewalTime(t0, t0.Add(100*time.Second), 99*time.Second+500*time.Millisecond, seed)
		if want := t0.Add(10 * time.Second); !got.Equal(want) {
			t.Errorf("renewal at %s, want the floor %s", got, want)
		}
	})
}

// TestRenewalSpread applies 10,000 week-long codes in the same second and counts how many renew
// in the busiest second.
func TestRenewalSpread(t *testing.T) {
	perSecond := map[time.Time]int{}
	busiest := 0
	var first, last time.Time
	for i := range 10000 {
		r := RenewalTime(t0, t0.Add(168*time.Hour), 0, fmt.Sprintf("uid-%d/ticket-%d", i, i))
		perSecond[r]++
		busiest = max(busiest, perSecond[r])
		if first.IsZero() || r.Before(first) {
			first = r
		}
		if r.After(last) {
			last = r
		}
	}
	if spread := last.Sub(first); spread < 10*time.Hour {
		t.Errorf("renewals spread over %s only", spread)
	}
	// 10,000 over ~40,000 s: a busiest second above 5 would mean the hash clusters.
	if busiest > 5 {
		t.Errorf("%d codes renew in the same second", busiest)
	}
	// Different tickets of one object get different jitters: no lockstep across renewals.
	a := RenewalTime(t0, t0.Add(168*time.Hour), 0, "uid-1/ticket-a")
	b := RenewalTime(t0, t0.Add(168*time.Hour), 0, "uid-1/ticket-b")
	if a.Equal(b) {
		t.Errorf("two tickets of the same object renew at the same time %s", a)
	}
}

func TestScheduledRenewalFollowsRenewBefore(t *testing.T) {
	c := temporary()
	def, ok := ScheduledRenewal(c)
	if !ok {
		t.Fatal("no renewal computed")
	}
	c.Spec.RenewBefore = dur(2 * time.Hour)
	moved, _ := ScheduledRenewal(c)
	if !moved.Before(def) || moved.After(t0.Add(time.Hour)) {
		t.Errorf("renewBefore 2h moved the renewal from %s to %s, want at or before %s", def, moved, t0.Add(time.Hour))
	}
}

func TestSceneHolder(t *testing.T) {
	old, young := Claim{"b", "old", t0, false}, Claim{"a", "young", t0.Add(time.Minute), false}
	cases := []struct {
		name   string
		claims []Claim
		expect Claim
	}{
		{"alone", []Claim{young}, young},
		{"the oldest wins", []Claim{young, old}, old},
		{"same second: namespace then name", []Claim{{"b", "x", t0, false}, {"a", "z", t0, false}, {"a", "y", t0, false}}, Claim{"a", "y", t0, false}},
		{"a holder keeps its ticket against an older newcomer", []Claim{old, {"a", "young", t0.Add(time.Minute), true}}, Claim{"a", "young", t0.Add(time.Minute), true}},
		{"two holders: the oldest", []Claim{{"a", "young", t0.Add(time.Minute), true}, {"b", "old", t0, true}}, Claim{"b", "old", t0, true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := SceneHolder(tc.claims); got != tc.expect {
				t.Errorf("SceneHolder = %+v, want %+v", got, tc.expect)
			}
		})
	}
}

func TestPermanentSceneKey(t *testing.T) {
	cases := []struct {
		spec   v1alpha1.WeChatQRCodeSpec
		expect string
	}{
		{v1alpha1.WeChatQRCodeSpec{Type: v1alpha1.Permanent, Scene: v1alpha1.Scene{ID: ptr.To[int64](123)}}, "id:123"},
		{v1alpha1.WeChatQRCodeSpec{Type: v1alpha1.Permanent, Scene: v1alpha1.Scene{Str: ptr.To("123")}}, "str:123"},
		{v1alpha1.WeChatQRCodeSpec{Type: v1alpha1.Temporary, Scene: v1alpha1.Scene{ID: ptr.To[int64](123)}}, ""},
	}
	for _, tc := range cases {
		if got := PermanentSceneKey(&tc.spec); got != tc.expect {
			t.Errorf("PermanentSceneKey(%s %s) = %q, want %q", tc.spec.Type, SceneText(tc.spec.Scene), got, tc.expect)
		}
	}
}
