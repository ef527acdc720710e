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
)

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
			got := renewalTime(t0, expiry, tc.renewBefore, seed)
			latest := expiry.Add(-tc.wantRenewBefore)
			earliest := latest.Add(-tc.wantMaxJitter - time.Second) // truncation to the second
			if got.After(latest) || got.Before(earliest) {
				t.Errorf("renewal at %s, want within [%s, %s]", got, earliest, latest)
			}
			if got != got.Truncate(time.Second) {
				t.Errorf("renewal %s is not truncated to the second", got)
			}
			if again := renewalTime(t0, expiry, tc.renewBefore, seed); !again.Equal(got) {
				t.Errorf("not deterministic: %s then %s", got, again)
			}
		})
	}
	t.Run("a ticket serves at least a tenth of its lifetime", func(t *testing.T) {
		got := renewalTime(t0, t0.Add(100*time.Second), 99*time.Second+500*time.Millisecond, seed)
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
		r := renewalTime(t0, t0.Add(168*time.Hour), 0, fmt.Sprintf("uid-%d/ticket-%d", i, i))
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
	a := renewalTime(t0, t0.Add(168*time.Hour), 0, "uid-1/ticket-a")
	b := renewalTime(t0, t0.Add(168*time.Hour), 0, "uid-1/ticket-b")
	if a.Equal(b) {
		t.Errorf("two tickets of the same object renew at the same time %s", a)
	}
}

func TestScheduledRenewalFollowsRenewBefore(t *testing.T) {
	c := temporary()
	def, ok := scheduledRenewal(c)
	if !ok {
		t.Fatal("no renewal computed")
	}
	c.Spec.RenewBefore = dur(2 * time.Hour)
	moved, _ := scheduledRenewal(c)
	if !moved.Before(def) || moved.After(t0.Add(time.Hour)) {
		t.Errorf("renewBefore 2h moved the renewal from %s to %s, want at or before %s", def, moved, t0.Add(time.Hour))
	}
}
