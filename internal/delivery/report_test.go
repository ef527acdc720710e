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

package delivery

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// TestReportDue: what is written and when, against what the resource shows, over the clock.
func TestReportDue(t *testing.T) {
	at := func(d time.Duration) *metav1.Time { return stamp(t0.Add(d)) }
	healthy := qrv1alpha1.SinkDeliveryStatus{LastDeliveryTime: at(0), ObservedTime: *at(0)}
	failing := qrv1alpha1.SinkDeliveryStatus{Backlog: 3, OldestUndeliveredTime: at(-time.Second), LastError: "HTTP 503",
		LastErrorTime: at(-time.Second), ObservedTime: *at(0)}
	lagging := qrv1alpha1.SinkDeliveryStatus{Backlog: 900, OldestUndeliveredTime: at(-time.Minute), ObservedTime: *at(0)}
	shown := func(s qrv1alpha1.SinkDeliveryStatus, delivered int64) *shownReport {
		return &shownReport{status: s, written: t0, delivered: delivered}
	}
	with := func(s qrv1alpha1.SinkDeliveryStatus, f func(*qrv1alpha1.SinkDeliveryStatus)) qrv1alpha1.SinkDeliveryStatus {
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name      string
		prev      *shownReport
		cur       qrv1alpha1.SinkDeliveryStatus
		delivered int64
		after     time.Duration
		want      bool
	}{
		{name: "nothing shown yet", cur: healthy, want: true},
		{name: "healthy, unchanged", prev: shown(healthy, 0), cur: healthy, after: 2 * time.Hour},
		{name: "a few deliveries within a minute", prev: shown(healthy, 0), delivered: 49,
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.LastDeliveryTime = at(5 * time.Second) }), after: 10 * time.Second},
		{name: "50 deliveries within a minute wait for the minute", prev: shown(healthy, 0), delivered: 400,
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.LastDeliveryTime = at(50 * time.Second) }), after: 50 * time.Second},
		{name: "50 deliveries after a minute", prev: shown(healthy, 0), delivered: 50, want: true,
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.LastDeliveryTime = at(time.Minute) }), after: time.Minute},
		{name: "a trickle waits an hour", prev: shown(healthy, 10), delivered: 59,
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.LastDeliveryTime = at(59 * time.Minute) }), after: 59 * time.Minute},
		{name: "a trickle after an hour", prev: shown(healthy, 10), delivered: 11, want: true,
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.LastDeliveryTime = at(time.Hour) }), after: time.Hour},
		{name: "the first delivery", prev: shown(qrv1alpha1.SinkDeliveryStatus{ObservedTime: *at(0)}, 0), delivered: 1, want: true,
			cur: healthy, after: 10 * time.Second},
		{name: "a healthy backlog that moved is not written", prev: shown(healthy, 0),
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.Backlog, s.OldestUndeliveredTime = 2, at(9*time.Second) }), after: 10 * time.Second},
		{name: "an error appears", prev: shown(healthy, 0), cur: failing, after: 10 * time.Second, want: true},
		{name: "another error", prev: shown(failing, 0), after: 10 * time.Second, want: true,
			cur: with(failing, func(s *qrv1alpha1.SinkDeliveryStatus) { s.LastError = "HTTP 500" })},
		{name: "the error clears", prev: shown(failing, 0), cur: healthy, after: 10 * time.Second, want: true},
		{name: "failing, figures unchanged", prev: shown(failing, 0), after: 20 * time.Second,
			cur: with(failing, func(s *qrv1alpha1.SinkDeliveryStatus) { s.RetryTime = at(25 * time.Second) })},
		{name: "failing, heartbeat", prev: shown(failing, 0), cur: failing, after: heartbeat, want: true},
		{name: "failing, backlog grew", prev: shown(failing, 0), after: 10 * time.Second, want: true,
			cur: with(failing, func(s *qrv1alpha1.SinkDeliveryStatus) { s.Backlog = 4 })},
		{name: "events expired", prev: shown(healthy, 0), after: 10 * time.Second, want: true,
			cur: with(healthy, func(s *qrv1alpha1.SinkDeliveryStatus) { s.Expired, s.LastExpiredTime = 1, at(9*time.Second) })},
		{name: "the sink falls behind", prev: shown(healthy, 0), cur: lagging, after: 10 * time.Second, want: true},
		{name: "the sink catches up", prev: shown(lagging, 0), cur: healthy, after: 10 * time.Second, want: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			now := t0.Add(tc.after)
			tc.cur.ObservedTime = *stamp(now)
			if got := reportDue(tc.prev, tc.cur, tc.delivered, now); got != tc.want {
				t.Errorf("due %v, want %v", got, tc.want)
			}
		})
	}
}

// TestReportOf: the report of an owner's events: what this term knows, over what the resource
// showed; a sink's error is the resource's only while its events wait.
func TestReportOf(t *testing.T) {
	now := t0.Add(time.Minute)
	earlier := &shownReport{base: 5, status: qrv1alpha1.SinkDeliveryStatus{Expired: 5, LastExpiredTime: stamp(t0.Add(-time.Hour)),
		LastDeliveryTime: stamp(t0.Add(-2 * time.Hour))}}
	failing := sinkView{lastErr: "HTTP 503", failingSince: t0, retryAt: now.Add(4 * time.Second)}
	for _, tc := range []struct {
		name string
		prev *shownReport
		v    sinkView
		want qrv1alpha1.SinkDeliveryStatus
	}{
		{name: "first write, nothing happened", want: qrv1alpha1.SinkDeliveryStatus{}},
		{name: "carried over", prev: earlier, want: earlier.status},
		{name: "this term's expiries add to the earlier terms'", prev: earlier,
			v:    sinkView{stats: ownerStats{expired: 2, lastExpired: t0, delivered: 1, lastDelivered: t0.Add(time.Second)}},
			want: qrv1alpha1.SinkDeliveryStatus{Expired: 7, LastExpiredTime: stamp(t0), LastDeliveryTime: stamp(t0.Add(time.Second))}},
		{name: "the sink fails with nothing of this owner waiting", v: failing},
		{name: "the sink fails with events of this owner waiting",
			v: sinkView{lastErr: failing.lastErr, failingSince: failing.failingSince, retryAt: failing.retryAt,
				waiting: waiting{n: 2, oldest: t0.Add(1500 * time.Millisecond).UnixMilli()}},
			want: qrv1alpha1.SinkDeliveryStatus{Backlog: 2, OldestUndeliveredTime: stamp(t0.Add(time.Second)), LastError: "HTTP 503",
				LastErrorTime: stamp(t0), RetryTime: stamp(now.Add(4 * time.Second))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.want.ObservedTime = *stamp(now)
			got := reportOf(tc.prev, tc.v, now)
			if !equalReports(got, tc.want) {
				t.Errorf("got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func equalReports(a, b qrv1alpha1.SinkDeliveryStatus) bool {
	return a.LastDeliveryTime.Equal(b.LastDeliveryTime) && a.Backlog == b.Backlog && a.OldestUndeliveredTime.Equal(b.OldestUndeliveredTime) &&
		a.Expired == b.Expired && a.LastExpiredTime.Equal(b.LastExpiredTime) && a.LastError == b.LastError &&
		a.LastErrorTime.Equal(b.LastErrorTime) && a.RetryTime.Equal(b.RetryTime) && a.ObservedTime.Equal(&b.ObservedTime)
}

// TestViewsByOwner: an account and a code sharing one sink each see their own events: the
// code's waiting and delivered, the account's all of its AppID's; a failure and its retry time
// are the sink's.
func TestViewsByOwner(t *testing.T) {
	shared := sinkAt("http://shared")
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": shared}, codes: map[string]Sink{"ns/a": shared}}
	b := newBacklog(100, outcomes{}.count)
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{
		entry("k1", "ns/a", 1, 0), entry("k2", "ns/b", 2, time.Second), entry("k3", "ns/a", 3, 2*time.Second)}), routes)
	q := b.queues[shared.Target.id()]
	sent := q.take(t0, 1) // k1
	q.settle(t0.Add(3*time.Second), sent, resultOK, "")
	failed := q.take(t0.Add(3*time.Second), 1) // k2
	q.settle(t0.Add(4*time.Second), failed, "", "HTTP 503")
	decls := []Declaration{
		{Kind: qrv1alpha1.KindWeChatAccount, Namespace: "ns", Name: "main", AppID: "wx1", Sink: shared},
		{Kind: KindCode, Namespace: "ns", Name: "a", Sink: shared},
		{Kind: KindCode, Namespace: "ns", Name: "c", Sink: sinkAt("http://elsewhere")},
		{Kind: KindCode, Namespace: "ns", Name: "d", Sink: Sink{Declared: true}},
	}
	v := b.views(decls)
	if acct := v[0]; acct.waiting.n != 2 || acct.waiting.oldest != t0.Add(time.Second).UnixMilli() || acct.stats.delivered != 1 ||
		acct.lastErr != "HTTP 503" || !acct.retryAt.Equal(t0.Add(4*time.Second+minBackoff)) {
		t.Errorf("account: %+v", acct)
	}
	if code := v[1]; code.waiting.n != 1 || code.waiting.oldest != t0.Add(2*time.Second).UnixMilli() || code.stats.delivered != 1 ||
		!code.stats.lastDelivered.Equal(t0.Add(3*time.Second)) {
		t.Errorf("code a: %+v", code)
	}
	if v[2] != (sinkView{}) || v[3] != (sinkView{}) {
		t.Errorf("a sink with no events, an unresolved one: %+v, %+v", v[2], v[3])
	}
}

// TestPatchOf: a field the report lacks is removed, except on a term's first write, which
// leaves the expired count and the last times of earlier terms alone.
func TestPatchOf(t *testing.T) {
	r := qrv1alpha1.SinkDeliveryStatus{Expired: 3, ObservedTime: *stamp(t0)}
	p := patchOf(r, false)
	if p["expired"] != int64(3) || p["lastError"] != nil || p["lastDeliveryTime"] != (*metav1.Time)(nil) {
		t.Errorf("later write: %v", p)
	}
	if _, ok := p["lastError"]; !ok {
		t.Error("later write: lastError not removed")
	}
	p = patchOf(r, true)
	for _, f := range []string{"expired", "lastDeliveryTime", "lastExpiredTime"} {
		if _, ok := p[f]; ok {
			t.Errorf("first write sets %s", f)
		}
	}
	r.LastDeliveryTime = stamp(t0)
	if p = patchOf(r, true); p["lastDeliveryTime"] != r.LastDeliveryTime {
		t.Errorf("first write drops this term's delivery: %v", p)
	}
}

// TestReportBudget: the writes of one resource's report over 1,000 scans at a steady rate to a
// healthy sink, each acknowledged within a tick, with the report considered every default
// --sink-status-interval: within the budget of 25 from 0.1 scans a second up, the first write
// included; below, the hourly refresh (a write an hour, whatever the scans) dominates.
func TestReportBudget(t *testing.T) {
	interval := DefaultOptions().StatusInterval
	for _, tc := range []struct {
		perSecond float64
		want      int
	}{{0.01, 28}, {0.1, 21}, {1, 17}, {10, 2}, {100, 1}} {
		gap := time.Duration(float64(time.Second) / tc.perSecond)
		var prev *shownReport
		var v sinkView
		writes := 0
		consider := func(now time.Time) {
			cur := reportOf(prev, v, now)
			if reportDue(prev, cur, v.stats.delivered, now) {
				writes++
				prev = &shownReport{status: cur, written: now, delivered: v.stats.delivered}
			}
		}
		next := t0
		for now := t0; v.stats.delivered < 1000; now = now.Add(interval) {
			for ; !next.After(now) && v.stats.delivered < 1000; next = next.Add(gap) {
				v.stats.delivered++
				v.stats.lastDelivered = next
			}
			consider(now)
		}
		if writes > tc.want {
			t.Errorf("%v scans a second: %d writes per 1,000 scans, want at most %d", tc.perSecond, writes, tc.want)
		}
		t.Logf("%v scans a second: %d writes per 1,000 scans", tc.perSecond, writes)
	}
}

// TestWriteOrder: changes to written reports go before a term's first writes, in their order,
// up to the round's bound.
func TestWriteOrder(t *testing.T) {
	written := &shownReport{}
	due := []dueReport{
		{decl: Declaration{Name: "new-1"}}, {decl: Declaration{Name: "failing-1"}, prev: written},
		{decl: Declaration{Name: "new-2"}}, {decl: Declaration{Name: "failing-2"}, prev: written},
	}
	var got []string
	for _, d := range writeOrder(due, 3) {
		got = append(got, d.decl.Name)
	}
	if strings.Join(got, " ") != "failing-1 failing-2 new-1" {
		t.Errorf("written %v", got)
	}
}
