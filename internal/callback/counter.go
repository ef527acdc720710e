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

package callback

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// scanCounter persists scans. The server answers WeChat only once count has returned: the HTTP
// tests drive the server with a stand-in, and the counter's own tests run against an API server.
type scanCounter interface {
	// count returns once the scan s, made at at, is persisted in code's annotations (duplicate
	// when it already was), or with an error: then the scan may or may not be persisted, and
	// WeChat's retry will tell. It gives up when ctx ends, and its write at deadline.
	count(ctx context.Context, code types.NamespacedName, s *scan, at, deadline time.Time) (duplicate bool, err error)
}

// errGone is returned for scans of a code deleted before they could be counted: no retry can
// count them, so they are acknowledged.
var errGone = errors.New("the code was deleted")

// counter is the server's scanCounter: it persists scans in the codes' annotations, one commit
// per code per window (group commit), exactly once within the bound of the recent-events ring
// (see the package comment).
type counter struct {
	clock    clock.WithDelayedExecution
	writer   client.Writer
	cache    client.Reader
	api      client.Reader
	window   time.Duration
	ringSize int
	seen     *seenSet

	mu    sync.Mutex
	codes map[types.NamespacedName]*codeState
	// written keeps, after a code's commit loop ends, the object as our last patch returned it,
	// for the next loop of that code to start from. The cache usually lags our own last write, and
	// starting from it would cost a conflict, a live read and a second patch for every scan of a
	// code scanned less than once a window. Bounded by maxWritten; guarded by mu.
	written map[types.NamespacedName]*qrv1alpha1.WeChatQRCode
}

// maxWritten bounds counter.written: about 20 MiB even for codes with full recent-events rings.
const maxWritten = 4096

// codeState is one code's commit loop; it exists while scans of the code keep arriving.
type codeState struct {
	// queued waits for the next commit. Guarded by counter.mu.
	queued []*pending
	// inFlight has the outcome of every event in queued or in the commit under way, so that a retry
	// arriving meanwhile waits for the original instead of racing it. Guarded by counter.mu.
	inFlight map[string]*outcome
	// base is the object as our last successful patch returned it: usually newer than the cache,
	// which has to wait for the watch event. Owned by the loop's goroutine.
	base *qrv1alpha1.WeChatQRCode
}

type pending struct {
	key       string
	subscribe bool
	at        time.Time
	deadline  time.Time
	out       *outcome
}

type outcome struct {
	done      chan struct{}
	duplicate bool
	err       error
}

func newCounter(clk clock.WithDelayedExecution, writer client.Writer, cache, api client.Reader, window time.Duration, ringSize int) *counter {
	return &counter{
		clock: clk, writer: writer, cache: cache, api: api, window: window, ringSize: ringSize,
		seen:    newSeenSet(clk, time.Minute, 1<<16),
		codes:   map[types.NamespacedName]*codeState{},
		written: map[types.NamespacedName]*qrv1alpha1.WeChatQRCode{},
	}
}

// count returns once the scan (made at at) is persisted in code's annotations, or was already,
// or ctx ends (with ctx's cause: the scan may or may not be persisted then, and a retry will
// tell). The commit that carries it gives up at deadline.
func (c *counter) count(ctx context.Context, code types.NamespacedName, s *scan, at, deadline time.Time) (duplicate bool, err error) {
	if c.seen.has(code, s.key) {
		return true, nil
	}
	c.mu.Lock()
	st := c.codes[code]
	if st == nil {
		st = &codeState{inFlight: map[string]*outcome{}, base: c.written[code]}
		delete(c.written, code)
		c.codes[code] = st
		go c.loop(code, st)
	}
	out, joined := st.inFlight[s.key]
	if !joined {
		out = &outcome{done: make(chan struct{})}
		st.inFlight[s.key] = out
		st.queued = append(st.queued, &pending{key: s.key, subscribe: s.kind == kindQRSubscribe, at: at, deadline: deadline, out: out})
	}
	c.mu.Unlock()
	select {
	case <-out.done:
		return out.duplicate || joined, out.err
	case <-ctx.Done():
		return false, context.Cause(ctx)
	}
}

// loop commits what arrived for code at most once per window, and ends when a window passes
// without a scan.
func (c *counter) loop(code types.NamespacedName, st *codeState) {
	window := c.clock.After(c.window)
	for {
		<-window
		c.mu.Lock()
		batch := st.queued
		st.queued = nil
		if len(batch) == 0 {
			delete(c.codes, code)
			c.keepWritten(code, st.base)
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		// The next window starts with this commit, not after it.
		window = c.clock.After(c.window)

		err := c.commit(code, st, batch)
		if err == nil {
			// Before the events leave inFlight, so that a retry finds them in one or the other.
			for _, p := range batch {
				c.seen.add(code, p.key)
			}
		}
		c.mu.Lock()
		for _, p := range batch {
			delete(st.inFlight, p.key)
		}
		c.mu.Unlock()
		for _, p := range batch {
			p.out.err = err
			close(p.out.done)
		}
	}
}

// keepWritten stashes base for code's next commit loop; called with mu held. When full it drops
// an arbitrary entry: a code that loses its entry only pays the conflict it would have anyway.
func (c *counter) keepWritten(code types.NamespacedName, base *qrv1alpha1.WeChatQRCode) {
	if base == nil {
		return
	}
	if len(c.written) >= maxWritten {
		for k := range c.written {
			delete(c.written, k)
			break
		}
	}
	c.written[code] = base
}

// commit writes batch into code's annotations and marks the events already counted.
func (c *counter) commit(code types.NamespacedName, st *codeState, batch []*pending) error {
	// The earliest deadline: the first in the batch waits longest. Later waiters may still have
	// time after a failure, but WeChat retries them anyway.
	ctx, cancel := withDeadline(context.Background(), c.clock, batch[0].deadline)
	defer cancel()
	batchSize.Observe(float64(len(batch)))

	obj, reader := st.base, c.cache
	for {
		if obj == nil {
			obj = &qrv1alpha1.WeChatQRCode{}
			if err := reader.Get(ctx, code, obj); err != nil {
				return c.failed(st, err)
			}
		}
		patch := c.merge(obj, batch)
		if patch == nil {
			commits.WithLabelValues("unchanged").Inc()
			st.base = obj
			return nil
		}
		err := c.writer.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
		if err == nil {
			commits.WithLabelValues("ok").Inc()
			st.base = obj
			return nil
		}
		if !apierrors.IsConflict(err) {
			return c.failed(st, err)
		}
		// Someone else (another replica, or a user) wrote since obj was read, or the cache lags:
		// read the object as it is now. Never the cache here, or a lagging cache would loop.
		commits.WithLabelValues("conflict").Inc()
		obj, reader = nil, c.api
	}
}

// failed forgets the base, whose state is unknown after a failed write, and classifies err.
func (c *counter) failed(st *codeState, err error) error {
	st.base = nil
	if apierrors.IsNotFound(err) {
		commits.WithLabelValues("gone").Inc()
		return errGone
	}
	commits.WithLabelValues("error").Inc()
	return err
}

// merge returns the merge patch that adds batch's new events to obj's annotations, or nil when
// every event is already counted. The patch carries obj's resourceVersion, so it applies only to
// the very state the counts were computed from.
func (c *counter) merge(obj *qrv1alpha1.WeChatQRCode, batch []*pending) []byte {
	ann := obj.GetAnnotations()
	ring := strings.Fields(ann[qrv1alpha1.AnnotationRecentEvents])
	known := make(map[string]bool, len(ring)+len(batch))
	for _, k := range ring {
		known[k] = true
	}
	// An unparseable count (edited by hand) restarts from 0 rather than blocking every scan.
	scans, _ := strconv.ParseInt(ann[qrv1alpha1.AnnotationScans], 10, 64)
	subscribes, _ := strconv.ParseInt(ann[qrv1alpha1.AnnotationSubscribes], 10, 64)
	last, _ := time.Parse(time.RFC3339, ann[qrv1alpha1.AnnotationLastScanTime])
	added := false
	for _, p := range batch {
		p.out.duplicate = known[p.key]
		if p.out.duplicate {
			continue
		}
		added, known[p.key] = true, true
		ring = append(ring, p.key)
		scans++
		if p.subscribe {
			subscribes++
		}
		// Replicas' clocks differ a little: the time only moves forward.
		if p.at.After(last) {
			last = p.at
		}
	}
	if !added {
		return nil
	}
	if len(ring) > c.ringSize {
		ring = ring[len(ring)-c.ringSize:]
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"resourceVersion": obj.ResourceVersion,
		"annotations": map[string]string{
			qrv1alpha1.AnnotationScans:        strconv.FormatInt(scans, 10),
			qrv1alpha1.AnnotationSubscribes:   strconv.FormatInt(subscribes, 10),
			qrv1alpha1.AnnotationLastScanTime: last.UTC().Format(time.RFC3339),
			qrv1alpha1.AnnotationRecentEvents: strings.Join(ring, " "),
		},
	}})
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return patch
}

// seenSet remembers the events this replica committed in the last one to two ttl, at most about
// 2*max of them, so that a retry is answered without a write. It is only a shortcut: the ring in
// the annotation is what makes counting exactly once.
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

func seenKey(code types.NamespacedName, key string) string { return code.String() + "\x00" + key }

// rotate drops the older generation; called with mu held.
func (s *seenSet) rotate() {
	if s.clock.Since(s.rotated) > s.ttl || len(s.cur) >= s.max {
		s.old, s.cur, s.rotated = s.cur, make(map[string]struct{}, len(s.cur)), s.clock.Now()
	}
}

func (s *seenSet) add(code types.NamespacedName, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	s.cur[seenKey(code, key)] = struct{}{}
}

func (s *seenSet) has(code types.NamespacedName, key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rotate()
	k := seenKey(code, key)
	_, inCur := s.cur[k]
	_, inOld := s.old[k]
	return inCur || inOld
}

// withDeadline is context.WithDeadline on clk, so that a test steps a deadline instead of waiting
// for it. The context ends with cause context.DeadlineExceeded. It does not report the deadline
// through Deadline(): a dialer or a client would compare that with the real time.
func withDeadline(parent context.Context, clk clock.WithDelayedExecution, deadline time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	left := deadline.Sub(clk.Now())
	if left <= 0 {
		cancel(context.DeadlineExceeded)
		return ctx, func() {}
	}
	t := clk.AfterFunc(left, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}
