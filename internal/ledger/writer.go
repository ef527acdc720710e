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

package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/clocked"
)

// Segment bounds. An entry is one line of about 150 bytes (a 60-character code name), so a full
// segment is about 75 KiB. An append costs the API server in proportion to the whole segment,
// not to what it appends: it decodes the stored object, applies the patch, prunes, validates and
// re-encodes it, etcd stores it whole and the watch cache decodes it again. Which is why a write's
// scans are one string rather than an object each: the API server's cost per item (an
// unstructured map per entry, allocated, pruned, validated and compared by validation ratcheting
// field by field) dominated. test/ledgercost, 20,000 entries in writes of 250 into segments of
// 500, kube-apiserver CPU per 1,000 entries (median of 5, shared 2-core machine): 205 ms as
// objects of six fields, 54 ms as one string per entry, 42 ms as one string per write; the bounds
// a schema can state (maxItems, maxLength, list-type atomic) changed nothing measurable. Short
// segments keep the cost of a scan near the cost of writing it; the price is one create per 500
// scans.
const (
	MaxSegmentEntries = 500
	// MaxSegmentAge also bounds how long a segment can still grow: the folder deletes a segment
	// only when its last entry is older than the dedupe window plus this.
	MaxSegmentAge = 30 * time.Second
)

// Writer makes scans durable: it appends the scans of each commit window to the current
// segment this replica owns, with one write (a JSON patch that appends; nobody else writes the
// segment, so there is nothing to conflict with). Whether a scan was already counted is the
// folder's business: appending a retry again is harmless.
type Writer struct {
	clock     clock.WithDelayedExecution
	writer    client.Writer
	namespace string
	identity  string
	window    time.Duration
	// incarnation keeps the segment names of a restarted replica apart from its previous life's.
	incarnation int64
	seen        *seenSet

	mu       sync.Mutex
	queued   []*pending
	inFlight map[string]*outcome
	running  bool

	// The current segment, owned by the commit loop: "" when a new one must be created.
	segment    string
	seq        int
	segEntries int
	segStart   time.Time
}

type pending struct {
	entry    qrv1alpha1.LedgerEntry
	deadline time.Time
	out      *outcome
}

type outcome struct {
	done chan struct{}
	err  error
}

// New appends to segments named after identity in namespace, the scans of each window with one
// write.
func New(clk clock.WithDelayedExecution, writer client.Writer, namespace, identity string, window time.Duration) *Writer {
	return &Writer{
		clock: clk, writer: writer, namespace: namespace, identity: identity, window: window,
		incarnation: clk.Now().UnixMilli(),
		seen:        newSeenSet(clk, time.Minute, 1<<16),
		inFlight:    map[string]*outcome{},
	}
}

// ScannerHash is the 64-bit hash of an OpenID that the ledger keeps instead of the OpenID.
func ScannerHash(openID string) int64 {
	h := sha256.Sum256([]byte(openID))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// Count returns once e is durable (duplicate when this replica knows it already was), or with
// an error: then e may or may not be durable, and WeChat's retry will tell. It gives up when ctx
// ends, and its write at deadline.
func (l *Writer) Count(ctx context.Context, e qrv1alpha1.LedgerEntry, deadline time.Time) (duplicate bool, err error) {
	k := seenKey(e.Code, e.Key)
	if l.seen.has(k) {
		return true, nil
	}
	l.mu.Lock()
	out, joined := l.inFlight[k]
	if !joined {
		out = &outcome{done: make(chan struct{})}
		l.inFlight[k] = out
		l.queued = append(l.queued, &pending{entry: e, deadline: deadline, out: out})
		if !l.running {
			l.running = true
			go l.loop()
		}
	}
	l.mu.Unlock()
	select {
	case <-out.done:
		return joined, out.err
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

// Known is whether Count would now answer duplicate for the event key of code (namespace/name)
// without waiting.
func (l *Writer) Known(code, key string) bool { return l.seen.has(seenKey(code, key)) }

// loop appends what arrived once per window, and ends when a window passes without a scan. A
// full segment's worth waiting goes at once (appendNow), so that the window bounds how long a
// scan waits, not how many a replica takes: one write of MaxSegmentEntries a window capped a
// replica at 10,000 scans a second at 50 ms (the bench's hot load sat at 9,600 with a core idle).
func (l *Writer) loop() {
	window := l.clock.After(l.window)
	written := 0 // appends since the window started
	for {
		l.mu.Lock()
		queued := len(l.queued)
		l.mu.Unlock()
		if !appendNow(written, queued) {
			<-window
			// The next window starts with this append, not after it.
			window = l.clock.After(l.window)
			written = 0
		}
		l.mu.Lock()
		// At most one segment's worth a write: a backlog (the API server away for a while) must
		// not become one object over the API server's request limit. The rest goes in the same
		// window's next appends, then in the next windows, oldest first.
		n := min(len(l.queued), MaxSegmentEntries)
		batch := l.queued[:n:n]
		l.queued = l.queued[n:]
		if len(l.queued) == 0 {
			l.queued = nil
		}
		if len(batch) == 0 {
			l.running = false
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		written++

		err := l.append(batch)
		if err == nil {
			// Before the events leave inFlight, so that a retry finds them in one or the other.
			for _, p := range batch {
				l.seen.add(seenKey(p.entry.Code, p.entry.Key))
			}
		}
		l.mu.Lock()
		for _, p := range batch {
			delete(l.inFlight, seenKey(p.entry.Code, p.entry.Key))
		}
		l.mu.Unlock()
		for _, p := range batch {
			p.out.err = err
			close(p.out.done)
		}
	}
}

// maxAppendsPerWindow bounds a replica's ledger writes in one commit window: 4 full segments a
// 50 ms window is 40,000 scans a second, and a backlog after an outage drains at that pace
// rather than all at once.
const maxAppendsPerWindow = 4

// appendNow is whether the commit loop appends again without waiting for the window to end,
// having made written appends in it with queued scans waiting: only a full segment's worth, and
// within maxAppendsPerWindow.
func appendNow(written, queued int) bool {
	return written > 0 && written < maxAppendsPerWindow && queued >= MaxSegmentEntries
}

// append makes batch durable in the current segment, or in a new one when there is none or the
// current one is full or old.
func (l *Writer) append(batch []*pending) error {
	// The earliest deadline: the first in the batch waits longest.
	ctx, cancel := clocked.WithDeadline(context.Background(), l.clock, batch[0].deadline)
	defer cancel()
	batchSize.Observe(float64(len(batch)))
	entries := make([]qrv1alpha1.LedgerEntry, len(batch))
	for i, p := range batch {
		entries[i] = p.entry
	}
	stored := qrv1alpha1.FormatLedgerBatch(entries)
	var err error
	if l.segment == "" || l.segEntries+len(entries) > MaxSegmentEntries || l.clock.Since(l.segStart) >= MaxSegmentAge {
		err = l.create(ctx, stored)
	} else {
		err = l.writer.Patch(ctx, SegmentMetadata(l.namespace, l.segment), client.RawPatch(types.JSONPatchType, appendPatch(stored)))
	}
	if err != nil {
		// Whether the write happened is unknown: never append to that segment again, so the
		// entry count stays a bound. Entries that did land are deduplicated by the fold.
		appends.WithLabelValues("error").Inc()
		l.segment = ""
		return err
	}
	appends.WithLabelValues("ok").Inc()
	l.segEntries += len(entries)
	return nil
}

// SegmentMetadata is the segment namespace/name as metadata alone, for the writes that need no
// answer but success: the API server answers a write of a typed object with the whole segment,
// up to 150 KB that it encodes and the writer decodes for nothing, and of this with its
// metadata (kube-apiserver's metadata-only responses, as the metadata client asks for them).
func SegmentMetadata(namespace, name string) *metav1.PartialObjectMetadata {
	m := &metav1.PartialObjectMetadata{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	m.SetGroupVersionKind(qrv1alpha1.GroupVersion.WithKind("WeChatScanLedger"))
	return m
}

// create starts a new segment holding batch.
func (l *Writer) create(ctx context.Context, batch string) error {
	l.seq++
	l.segment, l.segEntries, l.segStart = fmt.Sprintf("%s-%d-%d", l.identity, l.incarnation, l.seq), 0, l.clock.Now()
	seg := &qrv1alpha1.WeChatScanLedger{ObjectMeta: metav1.ObjectMeta{Namespace: l.namespace, Name: l.segment}}
	seg.Spec = qrv1alpha1.WeChatScanLedgerSpec{Replica: l.identity, Batches: []string{batch}}
	return l.writer.Create(ctx, seg)
}

// appendPatch is the JSON patch that appends batch to a segment's batches.
func appendPatch(batch string) []byte {
	b, err := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/batches/-", "value": batch}})
	if err != nil {
		panic(err) // strings always marshal
	}
	return b
}

// seenSet remembers the events this replica made durable in the last one to two ttl, at most
// about 2*max of them, so that a retry is answered without a write. It is only a shortcut: the
// fold is what counts each event once.
type seenSet struct {
	clock clock.PassiveClock
	ttl   time.Duration
	max   int

	mu       sync.Mutex
	cur, old map[string]struct{}
	rotated  time.Time
}

func newSeenSet(clk clock.PassiveClock, ttl time.Duration, max int) *seenSet {
	return &seenSet{clock: clk, ttl: ttl, max: max, cur: map[string]struct{}{}, old: map[string]struct{}{}, rotated: clk.Now()}
}

// seenKey is an event of a code (namespace/name): the scope of an event key.
func seenKey(code, key string) string { return code + "\x00" + key }

// rotate drops the older generation; called with mu held.
func (s *seenSet) rotate() {
	if s.clock.Since(s.rotated) > s.ttl || len(s.cur) >= s.max {
		s.old, s.cur, s.rotated = s.cur, make(map[string]struct{}, len(s.cur)), s.clock.Now()
	}
}

func (s *seenSet) add(k string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	s.cur[k] = struct{}{}
}

func (s *seenSet) has(k string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	_, inCur := s.cur[k]
	_, inOld := s.old[k]
	return inCur || inOld
}
