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
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// fakeRoutes are the sinks as a test declares them: by AppID, and by code; the codes that tag
// their scanners, and the tagging endpoint.
type fakeRoutes struct {
	accounts map[string]Sink
	codes    map[string]Sink
	tagging  map[string]qrv1alpha1.TagOn
	endpoint Target
}

func (r fakeRoutes) AccountSink(appID string) Sink          { return r.accounts[appID] }
func (r fakeRoutes) CodeSink(code string, _ types.UID) Sink { return r.codes[code] }
func (r fakeRoutes) Declarations() []Declaration            { return nil }
func (r fakeRoutes) CodeTagging(code string, _ types.UID, subscribe bool) Sink {
	if on, ok := r.tagging[code]; ok && (subscribe || on == qrv1alpha1.TagOnAllScanners) {
		return Sink{Declared: true, Target: r.endpoint, Retention: time.Hour}
	}
	return Sink{}
}

// taggingAt is the tagging endpoint at uri.
func taggingAt(uri string) Target {
	return Target{URI: uri, MaxEvents: 50, Tagging: true, CA: "pem"}
}

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

func sinkAt(uri string) Sink {
	return Sink{Declared: true, Target: Target{URI: uri}, Retention: time.Hour}
}

// entry is a scan of code with its event, scanned by scanner at t0+at.
func entry(key, code string, scanner int64, at time.Duration) qrv1alpha1.LedgerEntry {
	return qrv1alpha1.LedgerEntry{Key: key, Code: code, UID: "u", At: t0.Add(at).UnixMilli(), Scanner: scanner,
		Event: qrv1alpha1.LedgerEvent{AppID: "wx1", CreateTime: t0.Unix(), OpenID: "o", Scene: "1"}}
}

func segment(name string, status qrv1alpha1.WeChatScanLedgerStatus, batches ...[]qrv1alpha1.LedgerEntry) *qrv1alpha1.WeChatScanLedger {
	seg := &qrv1alpha1.WeChatScanLedger{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: status}
	for _, b := range batches {
		seg.Spec.Batches = append(seg.Spec.Batches, qrv1alpha1.FormatLedgerBatch(b))
	}
	return seg
}

type outcomes map[string]int

func (o outcomes) count(result string, n int) { o[result] += n }

// TestRouting: an event goes to the account's sink and the code's, once per URL; it waits while a
// declared sink does not resolve, and goes nowhere (counted) when neither has a sink.
func TestRouting(t *testing.T) {
	for _, tc := range []struct {
		name          string
		account, code Sink
		tagOn         qrv1alpha1.TagOn
		endpoint      Target
		subscribe     bool
		want          []string
		waits, noSink bool
	}{
		{name: "tagging", tagOn: qrv1alpha1.TagOnAllScanners, endpoint: taggingAt("https://m"), want: []string{"https://m"}},
		{name: "tagging and a sink", code: sinkAt("http://c"), tagOn: qrv1alpha1.TagOnAllScanners, endpoint: taggingAt("https://m"), want: []string{"http://c", "https://m"}},
		{name: "new followers: a subscribe", tagOn: qrv1alpha1.TagOnNewFollowers, subscribe: true, endpoint: taggingAt("https://m"), want: []string{"https://m"}},
		{name: "new followers: a follower's scan", tagOn: qrv1alpha1.TagOnNewFollowers, endpoint: taggingAt("https://m"), noSink: true},
		{name: "no manager publishes tagging", tagOn: qrv1alpha1.TagOnAllScanners, endpoint: Target{Tagging: true}, waits: true},
		{name: "account only", account: sinkAt("http://a"), want: []string{"http://a"}},
		{name: "code only", code: sinkAt("http://c"), want: []string{"http://c"}},
		{name: "both", account: sinkAt("http://a"), code: sinkAt("http://c"), want: []string{"http://a", "http://c"}},
		{name: "the same URL once", account: sinkAt("http://a"), code: sinkAt("http://a"), want: []string{"http://a"}},
		{name: "account unresolved", account: Sink{Declared: true, Retention: time.Hour}, code: sinkAt("http://c"), waits: true},
		{name: "code unresolved", code: Sink{Declared: true, Retention: time.Hour}, waits: true},
		{name: "no sink", noSink: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := outcomes{}
			b := newBacklog(100, o.count)
			r := fakeRoutes{accounts: map[string]Sink{"wx1": tc.account}, codes: map[string]Sink{"ns/c": tc.code}, endpoint: tc.endpoint}
			if tc.tagOn != "" {
				r.tagging = map[string]qrv1alpha1.TagOn{"ns/c": tc.tagOn}
			}
			e := entry("k1", "ns/c", 1, 0)
			e.Subscribe = tc.subscribe
			b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{e}), r)
			got := map[string]string{}
			for id, q := range b.queues {
				got[q.target.URI] = id
			}
			if len(got) != len(tc.want) {
				t.Fatalf("queued for %v, want %v", got, tc.want)
			}
			for _, w := range tc.want {
				id, ok := got[w]
				if !ok {
					t.Errorf("nothing queued for %s (queues %v)", w, got)
				}
				if strings.HasPrefix(w, "https://m") && id != taggingID {
					t.Errorf("the tagging endpoint's offsets are named %q, want %q whatever its URL", id, taggingID)
				}
			}
			if (len(b.unrouted) == 1) != tc.waits {
				t.Errorf("%d unrouted, want waiting %v", len(b.unrouted), tc.waits)
			}
			if (o[resultNoSink] == 1) != tc.noSink {
				t.Errorf("outcomes %v, want no_sink %v", o, tc.noSink)
			}
		})
	}
}

// TestOffsets: what is committed per segment and sink as events are delivered, refused, retried
// and held up, and that a deliverer reading those offsets back sends exactly what was not done.
func TestOffsets(t *testing.T) {
	a, c := sinkAt("http://a"), sinkAt("http://c")
	r := fakeRoutes{accounts: map[string]Sink{"wx1": a}, codes: map[string]Sink{"ns/c": c}}
	o := outcomes{}
	b := newBacklog(100, o.count)
	// Entry 1 has no event (no sink when scanned), entry 3 is a retry of entry 0.
	first := []qrv1alpha1.LedgerEntry{entry("k0", "ns/c", 1, 0), {Key: "plain", Code: "ns/x", UID: "u", At: t0.UnixMilli()}, entry("k2", "ns/other", 2, time.Second)}
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, first), r)
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, first, []qrv1alpha1.LedgerEntry{entry("k0", "ns/c", 1, 0), entry("k4", "ns/c", 3, 2*time.Second)}), r)
	qa, qc := b.queues[a.Target.id()], b.queues[c.Target.id()]
	if n, _ := qa.pending(); n != 3 {
		t.Fatalf("the account's sink has %d events waiting, want 3 (k0, k2, k4)", n)
	}
	if n, _ := qc.pending(); n != 2 {
		t.Fatalf("the code's sink has %d events waiting, want 2 (k0, k4)", n)
	}
	want := func(what string, delivered, atA, atC int64) {
		t.Helper()
		st := b.offsets()["s1"]
		if st.Delivered != delivered || st.Sinks[a.Target.id()] != atA || st.Sinks[c.Target.id()] != atC {
			t.Fatalf("%s: offsets %+v, want delivered %d, a %d, c %d", what, st, delivered, atA, atC)
		}
	}
	want("nothing sent", 0, 0, 0)

	// The code's sink takes k0 and k4 at once; the account's sink fails k0 then backs off.
	items := qc.take(t0, 2)
	qc.settle(t0, items, resultOK, "")
	want("the code's sink has all", 0, 0, 5)
	items = qa.take(t0, 1)
	if len(items) != 1 || items[0].entry.Key != "k0" {
		t.Fatalf("took %v, want k0 first", items)
	}
	qa.settle(t0, items, "", "answered 503")
	if got := qa.take(t0.Add(100*time.Millisecond), 1); got != nil {
		t.Fatalf("took %v during the backoff", got)
	}
	want("the account's sink failed", 0, 0, 5)
	// After the backoff: k0 delivered, k2 refused (done with: not sent again), k4 still out.
	now := t0.Add(minBackoff)
	items = qa.take(now, 2)
	qa.settle(now, items[:1], resultOK, "")
	qa.settle(now, items[1:], resultRejected, "")
	want("k0 and k2 done", 4, 4, 5)

	// A deliverer that takes over from these offsets sends k4 to the account's sink alone.
	committed := b.offsets()["s1"]
	next := newBacklog(100, outcomes{}.count)
	next.observe(segment("s1", committed, first, []qrv1alpha1.LedgerEntry{entry("k0", "ns/c", 1, 0), entry("k4", "ns/c", 3, 2*time.Second)}), r)
	if n, _ := next.queues[a.Target.id()].pending(); n != 1 || next.queues[c.Target.id()] != nil {
		t.Fatalf("the next deliverer has %v", next.queues)
	}
	if it := next.queues[a.Target.id()].items[0]; it.entry.Key != "k4" {
		t.Fatalf("the next deliverer sends %s, want k4", it.entry.Key)
	}
	if st := next.offsets()["s1"]; !sameStatus(st, committed) {
		t.Fatalf("the next deliverer would commit %+v over %+v", st, committed)
	}
}

// TestUnresolvedHoldsOffsets: an event waiting for its sink to resolve keeps every offset of its
// segment below it (the sink may be any), is routed once the sink resolves, and expires with its
// retention if it never does.
func TestUnresolvedHoldsOffsets(t *testing.T) {
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": {Declared: true, Retention: time.Minute}}, codes: map[string]Sink{"ns/b": sinkAt("http://b")}}
	o := outcomes{}
	b := newBacklog(100, o.count)
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{entry("k0", "ns/c", 1, 0), entry("k1", "ns/b", 2, 0)}), routes)
	if len(b.unrouted) != 2 {
		t.Fatalf("%d unrouted, want both (the account's sink is not resolved)", len(b.unrouted))
	}
	if st := b.offsets()["s1"]; st.Delivered != 0 {
		t.Fatalf("offsets %+v past an unrouted event", st)
	}
	routes.accounts["wx1"] = sinkAt("http://a")
	b.tidy(t0.Add(time.Second), routes)
	if len(b.unrouted) != 0 || len(b.queues) != 2 {
		t.Fatalf("after resolving: %d unrouted, %d queues", len(b.unrouted), len(b.queues))
	}

	never := newBacklog(100, o.count)
	routes.accounts["wx1"] = Sink{Declared: true, Retention: time.Minute}
	never.observe(segment("s2", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{entry("k9", "ns/c", 1, 0)}), routes)
	never.tidy(t0.Add(time.Minute), routes)
	if len(never.unrouted) != 1 {
		t.Fatal("expired at its retention, not after it")
	}
	never.tidy(t0.Add(time.Minute+time.Millisecond), routes)
	if len(never.unrouted) != 0 || o[resultExpired] != 1 {
		t.Fatalf("%d unrouted, outcomes %v: want it expired", len(never.unrouted), o)
	}
	if st := never.offsets()["s2"]; st.Delivered != 1 {
		t.Fatalf("offsets %+v: an expired event is done with", st)
	}
}

// TestBacklogBounded: a dead sink's events expire with its retention, and beyond the backlog
// limit the oldest expire first; those in flight are left to their try.
func TestBacklogBounded(t *testing.T) {
	dead := Sink{Declared: true, Target: Target{URI: "http://dead"}, Retention: 10 * time.Minute}
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": dead}}
	o := outcomes{}
	b := newBacklog(3, o.count)
	var batch []qrv1alpha1.LedgerEntry
	for i := range 5 {
		batch = append(batch, entry(fmt.Sprint("k", i), "ns/c", int64(i), time.Duration(i)*time.Minute))
	}
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, batch), routes)
	q := b.queues[dead.Target.id()]
	inFlight := q.take(t0, 1) // k0
	b.tidy(t0, routes)
	if n, _ := q.pending(); n != 3 || o[resultExpired] != 2 {
		t.Fatalf("%d held, outcomes %v: want the limit of 3, k1 and k2 expired (k0 is in flight)", n, o)
	}
	if q.items[0] != inFlight[0] || q.items[1].entry.Key != "k3" {
		t.Fatalf("kept %s, %s: want k0 (in flight), then k3", q.items[0].entry.Key, q.items[1].entry.Key)
	}
	q.settle(t0, inFlight, "", "connection refused")
	b.tidy(t0.Add(10*time.Minute), routes)
	if n, _ := q.pending(); n != 3 {
		t.Fatalf("%d waiting: k0 expired at its retention, not after it", n)
	}
	b.tidy(t0.Add(12*time.Minute+time.Second), routes)
	if n, _ := q.pending(); n != 2 || o[resultExpired] != 3 || q.owners[owner{account: true, id: "wx1"}].expired != 3 {
		// k0 is older than 10 minutes now; k3 and k4 stay.
		t.Fatalf("%d waiting, outcomes %v", n, o)
	}
}

// TestPartitionKeyInOrder: a scanner's next event is not sent while the previous one is in flight,
// so that a sink which keeps order per partition key gets them in order.
func TestPartitionKeyInOrder(t *testing.T) {
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": sinkAt("http://a")}}
	b := newBacklog(100, outcomes{}.count)
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{
		entry("first", "ns/c", 7, 0), entry("other", "ns/c", 8, 0), entry("second", "ns/c", 7, time.Second),
	}), routes)
	q := b.queues[Target{URI: "http://a"}.id()]
	got := q.take(t0, 10)
	if len(got) != 2 || got[0].entry.Key != "first" || got[1].entry.Key != "other" {
		t.Fatalf("took %v, want first and other (second waits for first)", got)
	}
	q.settle(t0, got, resultOK, "")
	if got := q.take(t0, 10); len(got) != 1 || got[0].entry.Key != "second" {
		t.Fatalf("took %v, want second", got)
	}
}

// TestForget: a deleted segment's events are no one's to deliver, and its events' keys are
// forgotten.
func TestForget(t *testing.T) {
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": sinkAt("http://a")}}
	b := newBacklog(100, outcomes{}.count)
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{entry("k0", "ns/c", 1, 0)}), routes)
	b.forget("s1")
	if n, _ := b.queues[Target{URI: "http://a"}.id()].pending(); n != 0 || len(b.seen) != 0 || len(b.segs) != 0 {
		t.Fatalf("after forgetting: %d waiting, %d seen, %d segments", n, len(b.seen), len(b.segs))
	}
}

// TestTakeOverRetryInTwoSegments: WeChat's retry of a scan stored by two replicas is one event,
// sent from the copy read first; the other copy's segment commits past it. A deliverer that takes
// over before that event was delivered must send it, in whichever order it reads the segments:
// the copy it finds committed may have been passed as the retry of the one that was not.
func TestTakeOverRetryInTwoSegments(t *testing.T) {
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": sinkAt("http://a")}}
	original := segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{entry("k0", "ns/c", 1, 0)})
	retry := segment("s2", qrv1alpha1.WeChatScanLedgerStatus{}, []qrv1alpha1.LedgerEntry{entry("k1", "ns/c", 2, 0), entry("k0", "ns/c", 1, 0)})
	b := newBacklog(100, outcomes{}.count)
	b.observe(original, routes)
	b.observe(retry, routes)
	q := b.queues[Target{URI: "http://a"}.id()]
	items := q.take(t0, 2) // k0 from s1, then k1
	q.settle(t0, items[1:], resultOK, "")
	q.settle(t0, items[:1], "", "connection refused")
	offsets := b.offsets()
	if offsets["s1"].Delivered != 0 || offsets["s2"].Delivered != 2 {
		t.Fatalf("offsets %+v: want s1 held at k0, s2 past its copy", offsets)
	}
	original.Status, retry.Status = offsets["s1"], offsets["s2"]
	for _, order := range [][]*qrv1alpha1.WeChatScanLedger{{original, retry}, {retry, original}} {
		next := newBacklog(100, outcomes{}.count)
		for _, seg := range order {
			next.observe(seg, routes)
		}
		q := next.queues[Target{URI: "http://a"}.id()]
		if q == nil || len(q.items) != 1 || q.items[0].entry.Key != "k0" {
			t.Fatalf("reading %s then %s: the next deliverer has %v queued, want k0 once", order[0].Name, order[1].Name, q)
		}
		// Delivered now, it is done with for the deliverer after.
		q.settle(t0, q.take(t0, 1), resultOK, "")
		done := next.offsets()
		last := newBacklog(100, outcomes{}.count)
		for _, seg := range order {
			seg := seg.DeepCopy()
			seg.Status = done[seg.Name]
			last.observe(seg, routes)
		}
		if len(last.queues) != 0 {
			t.Errorf("reading %s then %s: k0 delivered and committed, and sent again", order[0].Name, order[1].Name)
		}
	}
}

// TestBackoffPerRound: the tries in flight when a sink goes down fail together and back it off
// once; each round of tries after a backoff that fails doubles it, up to the longest; a
// delivery ends it.
func TestBackoffPerRound(t *testing.T) {
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": sinkAt("http://a")}}
	b := newBacklog(100, outcomes{}.count)
	var batch []qrv1alpha1.LedgerEntry
	for i := range 40 {
		batch = append(batch, entry(fmt.Sprint("k", i), "ns/c", int64(i), 0))
	}
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, batch), routes)
	q := b.queues[Target{URI: "http://a"}.id()]
	now := t0
	// failRound takes n events one by one, as n workers do, and fails each try apart.
	failRound := func(n int) {
		var tries [][]*item
		for range n {
			tries = append(tries, q.take(now, 1))
		}
		for _, items := range tries {
			if len(items) != 1 {
				t.Fatalf("at %s: took %d, want 1 (backed off until %s)", now.Sub(t0), len(items), q.retryAt.Sub(t0))
			}
			now = now.Add(time.Millisecond)
			q.settle(now, items, "", "connection refused")
		}
	}
	for round, want := range []time.Duration{minBackoff, 2 * minBackoff, 4 * minBackoff} {
		failRound(10)
		if got := q.retryAt.Sub(now); got > want || got < want-10*time.Millisecond {
			t.Fatalf("round %d of 10 tries failed: backed off %s, want %s", round+1, got, want)
		}
		if got := q.take(now, 1); got != nil {
			t.Fatalf("round %d: took %v during the backoff", round+1, got)
		}
		now = q.retryAt
	}
	items := q.take(now, 1)
	q.settle(now, items, resultOK, "")
	if !q.retryAt.IsZero() || q.backoff != 0 {
		t.Fatalf("after a delivery: backed off until %s (%s)", q.retryAt, q.backoff)
	}
}

// TestTaggingLingers: the tagging endpoint's events wait to fill a request until TaggingLinger
// after the oldest was scanned; a full request goes at once, and a sink's events never wait.
func TestTaggingLingers(t *testing.T) {
	routes := fakeRoutes{accounts: map[string]Sink{"wx1": sinkAt("http://a")},
		tagging: map[string]qrv1alpha1.TagOn{"ns/c": qrv1alpha1.TagOnAllScanners}, endpoint: taggingAt("https://m")}
	b := newBacklog(100, outcomes{}.count)
	var scans []qrv1alpha1.LedgerEntry
	for i := range 3 {
		scans = append(scans, entry(fmt.Sprint(i), "ns/c", int64(i), time.Duration(i)*100*time.Millisecond))
	}
	b.observe(segment("s1", qrv1alpha1.WeChatScanLedgerStatus{}, scans), routes)
	sink, tagging := b.queues[Target{URI: "http://a"}.id()], b.queues[taggingAt("https://m").id()]
	if got := sink.take(t0, 10); len(got) != 3 {
		t.Errorf("the sink took %d events at once, want 3", len(got))
	}
	if got := tagging.take(t0.Add(TaggingLinger-time.Millisecond), 10); got != nil {
		t.Errorf("the tagging endpoint took %d events before the linger", len(got))
	}
	if got := tagging.take(t0.Add(time.Second), 2); len(got) != 2 {
		t.Errorf("a full request: took %d events, want 2 at once", len(got))
	}
	if got := tagging.take(t0.Add(TaggingLinger+200*time.Millisecond), 10); len(got) != 1 || got[0].entry.Key != "2" {
		t.Errorf("after the linger of the oldest left: took %v, want event 2", got)
	}
}

func TestLingers(t *testing.T) {
	tagging := taggingAt("https://m")
	for _, tc := range []struct {
		name     string
		target   Target
		count, n int
		since    time.Duration
		want     bool
	}{
		{"a sink never lingers", Target{URI: "http://a", MaxEvents: 50}, 1, 50, 0, false},
		{"tagging, part full, fresh", tagging, 10, 500, 999 * time.Millisecond, true},
		{"tagging, part full, lingered", tagging, 10, 500, TaggingLinger, false},
		{"tagging, full", tagging, 500, 500, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lingers(tc.target, tc.count, tc.n, t0, t0.Add(tc.since)); got != tc.want {
				t.Errorf("lingers = %v, want %v", got, tc.want)
			}
		})
	}
}
