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

package pushrecord

import (
	"maps"
	"slices"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

func TestCallbackStatus(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ms := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	bucket := func(d time.Duration, reasons map[string]int64) qrv1alpha1.RefusedBucket {
		return qrv1alpha1.RefusedBucket{Start: ms(d), Reasons: reasons}
	}
	rec := func(accounts map[string]qrv1alpha1.AccountPushes) qrv1alpha1.WeChatPushRecordSpec {
		return qrv1alpha1.WeChatPushRecordSpec{Accounts: accounts}
	}
	for name, c := range map[string]struct {
		records []qrv1alpha1.WeChatPushRecordSpec
		want    accountCallback
	}{
		"no record": {},
		"another account only": {records: []qrv1alpha1.WeChatPushRecordSpec{rec(map[string]qrv1alpha1.AccountPushes{
			"wxother": {LastVerifiedPush: ms(-time.Minute), Refused: []qrv1alpha1.RefusedBucket{bucket(-5*time.Minute, map[string]int64{"bad_signature": 3})}},
		})}},
		"summed over replicas, latest verified push": {
			records: []qrv1alpha1.WeChatPushRecordSpec{
				rec(map[string]qrv1alpha1.AccountPushes{"wxa": {LastVerifiedPush: ms(-time.Minute),
					Refused: []qrv1alpha1.RefusedBucket{bucket(-10*time.Minute, map[string]int64{"bad_signature": 2}), bucket(-5*time.Minute, map[string]int64{"stale_timestamp": 1})}}}),
				rec(map[string]qrv1alpha1.AccountPushes{"wxa": {LastVerifiedPush: ms(-2 * time.Minute),
					Refused: []qrv1alpha1.RefusedBucket{bucket(-5*time.Minute, map[string]int64{"bad_signature": 5})}}}),
			},
			want: accountCallback{lastVerified: ms(-time.Minute), refused: []qrv1alpha1.RefusedPushes{{Reason: "bad_signature", Count: 7}, {Reason: "stale_timestamp", Count: 1}}},
		},
		"a bucket that overlaps the hour counts, an older one does not": {
			records: []qrv1alpha1.WeChatPushRecordSpec{rec(map[string]qrv1alpha1.AccountPushes{"wxa": {Refused: []qrv1alpha1.RefusedBucket{
				bucket(-time.Hour-RefusedBucket, map[string]int64{"decrypt_failed": 4}),
				bucket(-time.Hour-RefusedBucket+time.Millisecond, map[string]int64{"bad_signature": 1}),
			}}})},
			want: accountCallback{refused: []qrv1alpha1.RefusedPushes{{Reason: "bad_signature", Count: 1}}},
		},
	} {
		t.Run(name, func(t *testing.T) {
			if got := callbackStatus(c.records, "wxa", now); !got.equal(c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// TestPushStats: refusals land in the bucket of their time, a snapshot reports a change once,
// buckets leave with the window (a change too: the record shrinks), and adopt never moves the
// last verified push back.
func TestPushStats(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC))
	p := NewStats(clk)
	if _, changed := p.snapshot(); changed {
		t.Error("empty stats changed")
	}
	p.Refused("wxa", "bad_signature")
	p.Refused("wxa", "bad_signature")
	clk.Step(RefusedBucket)
	p.Refused("wxa", "missing_parameter")
	p.Verified("wxa")
	got, changed := p.snapshot()
	want := []qrv1alpha1.RefusedBucket{
		{Start: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli(), Reasons: map[string]int64{"bad_signature": 2}},
		{Start: time.Date(2026, 3, 1, 12, 5, 0, 0, time.UTC).UnixMilli(), Reasons: map[string]int64{"missing_parameter": 1}},
	}
	if !changed || !slices.EqualFunc(got["wxa"].Refused, want, bucketsEqual) || got["wxa"].LastVerifiedPush != clk.Now().UnixMilli() {
		t.Fatalf("%+v (changed %v)", got, changed)
	}
	if _, changed := p.snapshot(); changed {
		t.Error("changed twice")
	}
	p.Adopt("wxa", 1)
	if got, _ := p.snapshot(); got["wxa"].LastVerifiedPush != clk.Now().UnixMilli() {
		t.Error("adopt moved the last verified push back")
	}
	clk.Step(RefusedWindow)
	got, changed = p.snapshot()
	if !changed || len(got["wxa"].Refused) != 1 {
		t.Errorf("after the window: %+v (changed %v), want the newer bucket only", got, changed)
	}
}

func bucketsEqual(a, b qrv1alpha1.RefusedBucket) bool {
	return a.Start == b.Start && maps.Equal(a.Reasons, b.Reasons)
}
