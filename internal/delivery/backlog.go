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
	"cmp"
	"slices"
	"time"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// backlog is the deliverer's view of the outbox: the segments read so far, and per sink the
// events it still has to get, oldest first. It holds no lock and reads no clock: the controller
// serializes it and passes the time in, so every decision in it is table-tested.
type backlog struct {
	segs   map[string]*seg
	queues map[string]*queue
	// seen holds the events already taken, by code and key, with the copy taken first: WeChat's
	// retry of a scan that another replica (or the same one, after a failed write) also stored
	// is one event.
	seen map[event]place
	// unrouted are events waiting for a sink to resolve.
	unrouted []*item
	// limit bounds the events waiting, all sinks together; the oldest beyond it expire.
	limit int
	// stats are what each sink did this term, by id: kept when its queue empties.
	stats map[string]*sinkStats
	// outcome is told of every event that leaves the backlog other than by a send: expired and
	// no_sink, with the time it waited.
	outcome func(result string, n int)
}

type event struct{ code, key string }

// place is where one copy of an event is stored.
type place struct {
	seg *seg
	pos int64
}

// done is whether the deliverer that committed the segment's offsets was past this copy for the
// sink id: it delivered it, or it was refused or expired, or the deliverer passed it as the
// retry of another copy, which it sent.
func (p place) done(id string) bool {
	off, ok := p.seg.committed.Sinks[id]
	return p.pos < p.seg.committed.Delivered || ok && p.pos < off
}

// passed is whether the deliverer that committed the segment's offsets was past this copy for
// any sink.
func (p place) passed() bool {
	for id := range p.seg.committed.Sinks {
		if p.done(id) {
			return true
		}
	}
	return p.pos < p.seg.committed.Delivered
}

// seg is a segment as read: how far it is parsed, and what its status says was committed.
type seg struct {
	name      string
	batches   int
	size      int64
	committed qrv1alpha1.WeChatScanLedgerStatus
	// targets are the sinks this segment has had events for, by id: each keeps an offset.
	targets map[string]bool
	events  []event
	gone    bool
}

// item is one event for one sink (or, unrouted, for whichever it resolves to).
type item struct {
	seg *seg
	// target is the id of its sink's queue ("" while unrouted).
	target string
	pos    int64
	// first is, for a later copy of an event, the copy taken first. The later copy goes to the
	// sinks for which the first was committed and it is not: which of them the deliverer that
	// committed the offsets sent is not written down, and the one not committed may be it.
	first    *place
	entry    qrv1alpha1.LedgerEntry
	expires  time.Time
	inFlight bool
	done     bool
}

// queue is one sink's events, in the order they were read.
type queue struct {
	target Target
	items  []*item
	// keys are the partition keys in flight: a scanner's next event waits for the previous one,
	// so that a sink that keeps order (a Kafka-backed broker) gets them in order.
	keys    map[int64]int
	workers int
	// retryAt is when the sink is tried again after a failed try; backoff doubles per failed
	// round of tries.
	retryAt time.Time
	backoff time.Duration
	*sinkStats
}

// Retry timing of a sink that fails: doubled from minBackoff per failed try, up to maxBackoff,
// for as long as its events are retained.
const (
	minBackoff = 500 * time.Millisecond
	maxBackoff = 30 * time.Second
)

func newBacklog(limit int, outcome func(string, int)) *backlog {
	return &backlog{segs: map[string]*seg{}, queues: map[string]*queue{}, seen: map[event]place{}, limit: limit, outcome: outcome,
		stats: map[string]*sinkStats{}}
}

// observe reads what obj has beyond what was read of it before and routes its new events.
// Entries below the offsets its status records are done with; a malformed entry (the folder
// logs and counts it) and an entry without an event have nothing to deliver. Of an event stored
// more than once, the copy read first is sent, and a later copy only to the sinks for which the
// first was committed and it is not: a deliverer that took over reads the segments in any
// order, and the committed copy may have been passed as the retry of the other, never
// delivered (at least once; a sink may get it twice).
func (b *backlog) observe(obj *qrv1alpha1.WeChatScanLedger, r Routes) {
	s := b.segs[obj.Name]
	if s == nil {
		s = &seg{name: obj.Name, committed: obj.Status, targets: map[string]bool{}}
		for id := range obj.Status.Sinks {
			s.targets[id] = true
		}
		b.segs[obj.Name] = s
	}
	for pos, st := range ledger.Entries(obj.Spec.Batches[min(s.batches, len(obj.Spec.Batches)):], s.size) {
		s.size = pos + 1
		if st.Err != nil || !st.HasEvent() {
			continue
		}
		e := st.LedgerEntry
		k := event{e.Code, e.Key}
		first, dup := b.seen[k]
		switch {
		case !dup:
			b.seen[k] = place{s, pos}
			s.events = append(s.events, k)
			if pos >= s.committed.Delivered {
				b.route(&item{seg: s, pos: pos, entry: e}, r)
			}
		case pos >= s.committed.Delivered && first.passed():
			b.route(&item{seg: s, pos: pos, entry: e, first: &first}, r)
		}
	}
	s.batches = max(s.batches, len(obj.Spec.Batches))
}

// route queues it for each of its sinks that does not have it yet, or keeps it unrouted while a
// sink of its does not resolve.
func (b *backlog) route(it *item, r Routes) bool {
	rt := routeOf(r, it.entry)
	switch {
	case !rt.wait.IsZero():
		it.expires = rt.wait
		b.unrouted = append(b.unrouted, it)
		return false
	case len(rt.targets) == 0:
		b.outcome(resultNoSink, 1)
		return true
	}
	for _, t := range rt.targets {
		id := t.id()
		it.seg.targets[id] = true
		if (place{it.seg, it.pos}).done(id) || it.first != nil && !it.first.done(id) {
			continue
		}
		q := b.queues[id]
		if q == nil {
			q = &queue{target: t.Target, keys: map[int64]int{}, sinkStats: b.statsOf(id)}
			b.queues[id] = q
		}
		q.items = append(q.items, &item{seg: it.seg, target: id, pos: it.pos, entry: it.entry, expires: t.expires})
	}
	return true
}

// forget drops a deleted segment: its events are no longer anyone's to deliver.
func (b *backlog) forget(name string) {
	s := b.segs[name]
	if s == nil {
		return
	}
	s.gone = true
	delete(b.segs, name)
	for _, k := range s.events {
		if b.seen[k].seg == s {
			delete(b.seen, k)
		}
	}
	for _, q := range b.queues {
		for _, it := range q.items {
			if it.seg == s {
				it.done = true
			}
		}
	}
	b.unrouted = slices.DeleteFunc(b.unrouted, func(it *item) bool { return it.seg == s })
}

// tidy runs every tick: it routes the events whose sink has resolved since, expires what waited
// past its sink's retention, then the oldest beyond the limit, and drops what is done.
func (b *backlog) tidy(now time.Time, r Routes) {
	b.unrouted = slices.DeleteFunc(b.unrouted, func(it *item) bool {
		if b.route(it, r) {
			return true
		}
		if now.After(it.expires) {
			b.outcome(resultExpired, 1)
			return true
		}
		return false
	})
	var waiting []*item
	for _, q := range b.queues {
		for _, it := range q.items {
			if !it.done && !it.inFlight && now.After(it.expires) {
				q.expire(it, now)
				b.outcome(resultExpired, 1)
			}
			if !it.done {
				waiting = append(waiting, it)
			}
		}
	}
	if over := len(waiting) + len(b.unrouted) - b.limit; over > 0 {
		slices.SortStableFunc(waiting, func(a, c *item) int { return cmp.Compare(a.entry.At, c.entry.At) })
		for _, it := range waiting {
			if over == 0 {
				break
			}
			if !it.inFlight {
				b.queues[it.target].expire(it, now)
				over--
				b.outcome(resultExpired, 1)
			}
		}
	}
	for id, q := range b.queues {
		q.items = slices.DeleteFunc(q.items, func(it *item) bool { return it.done })
		if len(q.items) == 0 && q.workers == 0 {
			delete(b.queues, id)
		}
	}
}

// expire is done with it without sending it.
func (q *queue) expire(it *item, now time.Time) {
	it.done = true
	q.count(it, func(o *ownerStats) {
		o.expired++
		o.lastExpired = now
	})
}

// take marks up to n of q's events in flight, oldest first, and returns them: none while the sink
// is backing off, and none whose scanner has an event in flight.
func (q *queue) take(now time.Time, n int) []*item {
	if now.Before(q.retryAt) {
		return nil
	}
	var out []*item
	for _, it := range q.items {
		if len(out) == n {
			break
		}
		if it.done || it.inFlight || q.keys[it.entry.Scanner] > 0 {
			continue
		}
		it.inFlight = true
		q.keys[it.entry.Scanner]++
		out = append(out, it)
	}
	if len(out) > 0 && lingers(q.target, len(out), n, time.UnixMilli(out[0].entry.At), now) {
		q.release(out)
		return nil
	}
	return out
}

// release marks items no longer in flight.
func (q *queue) release(items []*item) {
	for _, it := range items {
		it.inFlight = false
		if q.keys[it.entry.Scanner]--; q.keys[it.entry.Scanner] <= 0 {
			delete(q.keys, it.entry.Scanner)
		}
	}
}

// TaggingLinger is how long the events for the tagging endpoint wait to fill a request. The
// endpoint holds a request until every scanner in it is tagged, up to --tag-batch-wait later, so
// a request sent with each ledger write's few events would hold a worker for that long: the
// workers all held by a few hundred scanners, the tags' calls would go out part full.
const TaggingLinger = time.Second

// lingers is whether a request of count events (n at most), the oldest scanned at oldest, waits
// for more: only the tagging endpoint's, until full or TaggingLinger after its oldest scan.
func lingers(t Target, count, n int, oldest, now time.Time) bool {
	return t.Tagging && count < n && now.Sub(oldest) < TaggingLinger
}

// settle records the outcome of a try of items: "" to try again after the sink's backoff.
func (q *queue) settle(now time.Time, items []*item, result, cause string) {
	q.release(items)
	if result != "" {
		for _, it := range items {
			it.done = true
		}
	}
	switch result {
	case "":
		// The tries in flight together fail together: one failure of the sink, not one each,
		// or a sink down for a second with 32 tries out would be left alone for the longest
		// backoff at once. A try that fails during the backoff started before it.
		if !now.Before(q.retryAt) {
			q.backoff = min(max(2*q.backoff, minBackoff), maxBackoff)
			q.retryAt = now.Add(q.backoff)
		}
		if q.lastErr == "" {
			q.failingSince = now
		}
		q.lastErr = cause
	case resultOK:
		q.backoff, q.retryAt, q.lastErr, q.failingSince = 0, time.Time{}, "", time.Time{}
		for _, it := range items {
			q.count(it, func(o *ownerStats) {
				o.delivered++
				o.lastDelivered = now
			})
		}
	}
}

// pending is how many of q's events wait, and since when the oldest has.
func (q *queue) pending() (n int, oldest int64) {
	for _, it := range q.items {
		if it.done {
			continue
		}
		if n == 0 || it.entry.At < oldest {
			oldest = it.entry.At
		}
		n++
	}
	return n, oldest
}

// offsets is each segment's progress as it should be committed: per sink, the position of its
// first event not done with (the segment's size when none), never past an unrouted event (its
// sink may turn out to be any); overall, the least of them.
func (b *backlog) offsets() map[string]qrv1alpha1.WeChatScanLedgerStatus {
	floor := map[*seg]int64{}
	for _, it := range b.unrouted {
		if f, ok := floor[it.seg]; !ok || it.pos < f {
			floor[it.seg] = it.pos
		}
	}
	type segTarget struct {
		s  *seg
		id string
	}
	first := map[segTarget]int64{}
	for id, q := range b.queues {
		for _, it := range q.items {
			k := segTarget{it.seg, id}
			if f, ok := first[k]; !it.done && (!ok || it.pos < f) {
				first[k] = it.pos
			}
		}
	}
	out := make(map[string]qrv1alpha1.WeChatScanLedgerStatus, len(b.segs))
	for name, s := range b.segs {
		top := s.size
		if f, ok := floor[s]; ok {
			top = f
		}
		st := qrv1alpha1.WeChatScanLedgerStatus{Delivered: top}
		if len(s.targets) > 0 {
			st.Sinks = make(map[string]int64, len(s.targets))
		}
		for id := range s.targets {
			off := top
			if f, ok := first[segTarget{s, id}]; ok {
				off = min(off, f)
			}
			// What a previous deliverer committed stands: an event below it is done with.
			off = max(off, s.committed.Sinks[id])
			st.Sinks[id] = off
			st.Delivered = min(st.Delivered, off)
		}
		st.Delivered = max(st.Delivered, s.committed.Delivered)
		out[name] = st
	}
	return out
}
