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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// KindCode is the kind of a Declaration of a code's spec.sink.
const KindCode = "WeChatQRCode"

// owner is whose events an item counts among: the account it was pushed to (by AppID), and the
// code scanned (by namespace/name). Each reports its own events only, so that the accounts and
// codes that share a sink are written to when their own events move, not whenever the sink's do.
type owner struct {
	account bool
	id      string
}

func (d Declaration) owner() owner {
	if d.Kind == KindCode {
		return owner{id: d.Namespace + "/" + d.Name}
	}
	return owner{account: true, id: d.AppID}
}

// key names the resource d reports into.
func (d Declaration) key() string { return d.Kind + "/" + d.Namespace + "/" + d.Name }

// ownerStats is what happened this term to one owner's events at one sink.
type ownerStats struct {
	delivered     int64
	lastDelivered time.Time
	expired       int64
	lastExpired   time.Time
}

// sinkStats is what one sink did this term: it outlives its queue, which goes when it empties.
type sinkStats struct {
	// lastErr is why the last try failed, "" once one succeeds; failingSince is when the first
	// of the failures in a row was.
	lastErr      string
	failingSince time.Time
	owners       map[owner]*ownerStats
}

func (b *backlog) statsOf(id string) *sinkStats {
	s := b.stats[id]
	if s == nil {
		s = &sinkStats{owners: map[owner]*ownerStats{}}
		b.stats[id] = s
	}
	return s
}

// count applies f to the stats of both owners of it.
func (s *sinkStats) count(it *item, f func(*ownerStats)) {
	for _, o := range []owner{{account: true, id: it.entry.Event.AppID}, {id: it.entry.Code}} {
		st := s.owners[o]
		if st == nil {
			st = &ownerStats{}
			s.owners[o] = st
		}
		f(st)
	}
}

// waiting is how many of an owner's events wait for a sink, and the scan time (Unix ms) of the
// oldest.
type waiting struct {
	n      int64
	oldest int64
}

func (w *waiting) add(at int64) {
	if w.n == 0 || at < w.oldest {
		w.oldest = at
	}
	w.n++
}

// sinkView is what the deliverer knows now of one declaration's events at its sink.
type sinkView struct {
	stats   ownerStats
	waiting waiting
	lastErr string
	// failingSince and retryAt are the sink's while lastErr is set.
	failingSince, retryAt time.Time
}

// views are what the backlog knows of each declaration's events, in the order of decls (the
// zero view for one whose sink does not resolve).
func (b *backlog) views(decls []Declaration) []sinkView {
	wait := map[string]map[owner]*waiting{}
	for id, q := range b.queues {
		byOwner := map[owner]*waiting{}
		for _, it := range q.items {
			if it.done {
				continue
			}
			for _, o := range []owner{{account: true, id: it.entry.Event.AppID}, {id: it.entry.Code}} {
				w := byOwner[o]
				if w == nil {
					w = &waiting{}
					byOwner[o] = w
				}
				w.add(it.entry.At)
			}
		}
		wait[id] = byOwner
	}
	out := make([]sinkView, len(decls))
	for i, d := range decls {
		if d.Sink.Target.URI == "" {
			continue
		}
		id, o := d.Sink.Target.id(), d.owner()
		v := &out[i]
		if w := wait[id][o]; w != nil {
			v.waiting = *w
		}
		if s := b.stats[id]; s != nil {
			if st := s.owners[o]; st != nil {
				v.stats = *st
			}
			v.lastErr, v.failingSince = s.lastErr, s.failingSince
		}
		if q := b.queues[id]; q != nil {
			v.retryAt = q.retryAt
		}
	}
	return out
}

// shownReport is what a resource shows of its delivery since this term last wrote it.
type shownReport struct {
	status qrv1alpha1.SinkDeliveryStatus
	// base is the expired count of earlier terms, as the resource showed it at this term's
	// first write: this term's expired events add to it.
	base    int64
	written time.Time
	// delivered is this term's count of the owner's events delivered at that write.
	delivered int64
}

// When a report is written again with nothing changed but figures: a sink that delivers is
// reported every refreshEvents events but at most every refreshAge, or every quietRefresh when
// it has fewer events; a failing or lagging sink's report is written again at least every
// heartbeat, so that the manager can tell a silent deliverer (SinkDeliveryStaleAfter) from a
// sink still failing.
const (
	refreshEvents = 50
	refreshAge    = time.Minute
	quietRefresh  = time.Hour
	heartbeat     = qrv1alpha1.SinkDeliveryStaleAfter / 2
)

// reportOf is the report of v at now, given what the resource shows (nil: not written yet this
// term). Times are whole seconds, as the API server stores them.
func reportOf(prev *shownReport, v sinkView, now time.Time) qrv1alpha1.SinkDeliveryStatus {
	r := qrv1alpha1.SinkDeliveryStatus{ObservedTime: *stamp(now)}
	if prev != nil {
		r.LastDeliveryTime, r.LastExpiredTime = prev.status.LastDeliveryTime, prev.status.LastExpiredTime
		r.Expired = prev.base + v.stats.expired
	}
	if !v.stats.lastDelivered.IsZero() {
		r.LastDeliveryTime = stamp(v.stats.lastDelivered)
	}
	if !v.stats.lastExpired.IsZero() {
		r.LastExpiredTime = stamp(v.stats.lastExpired)
	}
	if v.waiting.n > 0 {
		r.Backlog, r.OldestUndeliveredTime = v.waiting.n, stamp(time.UnixMilli(v.waiting.oldest))
		// The sink's failure is this resource's only while it has events waiting for the sink.
		if v.lastErr != "" {
			r.LastError, r.LastErrorTime = v.lastErr, stamp(v.failingSince)
			if v.retryAt.After(now) {
				r.RetryTime = stamp(v.retryAt)
			}
		}
	}
	return r
}

// reportDue is whether cur is to be written, checked every --sink-status-interval: at once
// when there is nothing shown yet, when an error appears, changes or clears, when events
// expire, and when the oldest event starts or stops waiting too long; then, while the sink
// fails or lags, whenever its figures change and every heartbeat; while it delivers, at its
// first delivery and then every refreshEvents events (at most every refreshAge), or every
// quietRefresh. Counts that move within those bounds are not written: the budget is a few
// writes per thousand scans, whatever the number of resources.
func reportDue(prev *shownReport, cur qrv1alpha1.SinkDeliveryStatus, delivered int64, now time.Time) bool {
	if prev == nil {
		return true
	}
	was, since := &prev.status, now.Sub(prev.written)
	switch {
	case cur.LastError != was.LastError, cur.Expired != was.Expired, cur.Lagging() != was.Lagging():
		return true
	case cur.Trouble():
		return since >= heartbeat || cur.Backlog != was.Backlog || !cur.OldestUndeliveredTime.Equal(was.OldestUndeliveredTime)
	case cur.LastDeliveryTime.Equal(was.LastDeliveryTime):
		return false
	}
	return was.LastDeliveryTime == nil || since >= quietRefresh ||
		(delivered-prev.delivered >= refreshEvents && since >= refreshAge)
}

// maxReportWrites bounds the status writes of one round, so that a deliverer taking over
// thousands of codes with a sink neither floods the API server nor holds up its loop: at the
// default interval, 10 writes a second.
const maxReportWrites = 100

// dueReport is a report reportDue says is due.
type dueReport struct {
	decl      Declaration
	prev      *shownReport
	cur       qrv1alpha1.SinkDeliveryStatus
	delivered int64
}

// writeOrder is what of due to write this round, at most n: the changes to reports already
// written before the first reports of a term, so that a sink failing is shown at the next round
// even while a new deliverer is still writing its first reports; the rest is due again next
// round.
func writeOrder(due []dueReport, n int) []dueReport {
	first := func(d dueReport) int {
		if d.prev == nil {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(due, func(a, b dueReport) int { return cmp.Compare(first(a), first(b)) })
	return due[:min(len(due), n)]
}

// patchOf is the merge patch of status.sinkDelivery that writes r: a field r lacks is removed.
// The first write of a term leaves alone what only the resource knows (the expired count of
// earlier terms, and the last delivery and expiry when this term has none yet).
func patchOf(r qrv1alpha1.SinkDeliveryStatus, first bool) map[string]any {
	p := map[string]any{
		"backlog":               orNil(r.Backlog),
		"oldestUndeliveredTime": r.OldestUndeliveredTime,
		"lastError":             orNil(r.LastError),
		"lastErrorTime":         r.LastErrorTime,
		"retryTime":             r.RetryTime,
		"observedTime":          r.ObservedTime,
		"expired":               orNil(r.Expired),
		"lastDeliveryTime":      r.LastDeliveryTime,
		"lastExpiredTime":       r.LastExpiredTime,
	}
	if first {
		delete(p, "expired")
		for _, f := range []string{"lastDeliveryTime", "lastExpiredTime"} {
			if p[f] == (*metav1.Time)(nil) {
				delete(p, f)
			}
		}
	}
	return p
}

// orNil is v, or nil (a merge patch's removal) for its zero value.
func orNil[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

func stamp(t time.Time) *metav1.Time { return &metav1.Time{Time: t.Truncate(time.Second)} }
