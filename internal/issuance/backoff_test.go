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

func TestRetryAtExponential(t *testing.T) {
	cases := []struct {
		kind    FailureKind
		attempt int32
		nominal time.Duration // the delay before jitter takes up to a fifth off
	}{
		{Transient, 1, 5 * time.Second},
		{Transient, 2, 10 * time.Second},
		{Transient, 4, 40 * time.Second},
		{Transient, 6, 160 * time.Second},
		{Transient, 7, 5 * time.Minute},
		{Transient, 1000, 5 * time.Minute},
		{Terminal, 1, time.Hour},
		{Terminal, 2, 2 * time.Hour},
		{Terminal, 5, 16 * time.Hour},
		{Terminal, 6, 24 * time.Hour},
		{Terminal, 1 << 30, 24 * time.Hour},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%d/%d", tc.kind, tc.attempt), func(t *testing.T) {
			for i := range 50 {
				seed := fmt.Sprintf("uid-%d", i)
				d := RetryAt(tc.kind, tc.attempt, seed, t0).Sub(t0)
				if d > tc.nominal || d < tc.nominal-tc.nominal/5 {
					t.Fatalf("seed %s: delay %s, want within [%s, %s]", seed, d, tc.nominal-tc.nominal/5, tc.nominal)
				}
				if again := RetryAt(tc.kind, tc.attempt, seed, t0).Sub(t0); again != d {
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
			got := RetryAt(Quota, 1, "uid", tc.now)
			if got.Before(tc.reset) || !got.Before(tc.reset.Add(QuotaSpread)) {
				t.Errorf("retry at %s, want within %s after %s", got, QuotaSpread, tc.reset)
			}
		})
	}
}
