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
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// The API server starts on first use, so that the unit tests run without one.
var env testenv.Lazy

func TestMain(m *testing.M) { scantest.Main(m, &env, &scantest.Logs{}) }

// countingClient counts the writes the ledger sends to the API server.
type countingClient struct {
	client.Client
	writes atomic.Int32
}

func (c *countingClient) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.writes.Add(1)
	return c.Client.Create(ctx, obj, opts...)
}

func (c *countingClient) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	c.writes.Add(1)
	return c.Client.Patch(ctx, obj, patch, opts...)
}

// TestOneWritePerWindow: a window's scans cost one write whatever the number of codes they are
// for (the old per-code commit cost one per code), and the ledger segment holds them in order.
func TestOneWritePerWindow(t *testing.T) {
	f := scantest.NewNamespace(t, env.Get(t))
	api := &countingClient{Client: f.C}
	clk := clocktesting.NewFakeClock(time.Now())
	const window = 25 * time.Millisecond
	l := New(clk, api, f.NS, "solo", window)
	for round, codes := range []int{300, 50} {
		var wg sync.WaitGroup
		for i := range codes {
			wg.Go(func() {
				e := qrv1alpha1.LedgerEntry{Key: fmt.Sprintf("e-%d-%d", round, i), Code: fmt.Sprintf("%s/code-%d", f.NS, i), UID: "u", At: clk.Now().UnixMilli()}
				if _, err := l.Count(f.Ctx, e, clk.Now().Add(time.Minute)); err != nil {
					t.Error(err)
				}
			})
		}
		scantest.WaitFor(t, "every scan to be queued", func() bool {
			l.mu.Lock()
			defer l.mu.Unlock()
			return len(l.queued) == codes
		})
		clk.Step(window)
		wg.Wait()
		if got := api.writes.Load(); got != int32(round+1) {
			t.Fatalf("after window %d: %d writes, want %d", round+1, got, round+1)
		}
	}
	var segs qrv1alpha1.WeChatScanLedgerList
	if err := f.C.List(f.Ctx, &segs, client.InNamespace(f.NS)); err != nil {
		t.Fatal(err)
	}
	if len(segs.Items) != 1 || len(segs.Items[0].Spec.Batches) != 2 {
		t.Fatalf("%d segments, want one of 2 batches", len(segs.Items))
	}
	// One batch per window, in order, each holding that window's scans.
	for round, want := range []int{300, 50} {
		lines := qrv1alpha1.LedgerBatchLines(segs.Items[0].Spec.Batches[round])
		if len(lines) != want {
			t.Fatalf("batch %d: %d entries, want %d", round, len(lines), want)
		}
		for _, line := range lines {
			e, err := qrv1alpha1.ParseLedgerEntry(line)
			if err != nil || !strings.HasPrefix(e.Key, fmt.Sprintf("e-%d-", round)) {
				t.Fatalf("batch %d holds %q (%v), not a scan of window %d", round, line, err, round)
			}
		}
	}
}

// TestBacklogSplitIntoSegments: a backlog larger than a segment (the API server was away) is
// written a segment's worth at a time, never as one oversized object.
func TestBacklogSplitIntoSegments(t *testing.T) {
	f := scantest.NewNamespace(t, env.Get(t))
	api := &countingClient{Client: f.C}
	clk := clocktesting.NewFakeClock(time.Now())
	const window = 25 * time.Millisecond
	l := New(clk, api, f.NS, "backlog", window)
	// A window's full segments go at once, maxAppendsPerWindow of them; the rest, and what is
	// left short of a segment, wait for the next window.
	const scans = (maxAppendsPerWindow+1)*MaxSegmentEntries + 100
	var wg sync.WaitGroup
	for i := range scans {
		wg.Go(func() {
			e := qrv1alpha1.LedgerEntry{Key: fmt.Sprintf("e-%d", i), Code: fmt.Sprintf("%s/code-%d", f.NS, i%7), UID: "u", At: clk.Now().UnixMilli()}
			if _, err := l.Count(f.Ctx, e, clk.Now().Add(time.Minute)); err != nil {
				t.Error(err)
			}
		})
	}
	scantest.WaitFor(t, "every scan to be queued", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return len(l.queued) == scans
	})
	for w, want := range []int32{maxAppendsPerWindow, maxAppendsPerWindow + 1, maxAppendsPerWindow + 2} {
		clk.Step(window)
		scantest.WaitFor(t, fmt.Sprintf("%d writes after window %d", want, w+1), func() bool { return api.writes.Load() == want })
		if !clk.HasWaiters() {
			t.Fatalf("window %d: the commit loop wrote without waiting for the next window", w+1)
		}
		if got := api.writes.Load(); got != want {
			t.Fatalf("%d writes after window %d, want %d", got, w+1, want)
		}
	}
	wg.Wait()
	var segs qrv1alpha1.WeChatScanLedgerList
	if err := f.C.List(f.Ctx, &segs, client.InNamespace(f.NS)); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, seg := range segs.Items {
		n := 0
		for _, b := range seg.Spec.Batches {
			for _, line := range qrv1alpha1.LedgerBatchLines(b) {
				e, err := qrv1alpha1.ParseLedgerEntry(line)
				if err != nil {
					t.Fatal(err)
				}
				seen[e.Key] = true
				n++
			}
		}
		if n > MaxSegmentEntries {
			t.Errorf("segment %s holds %d entries, over the bound of %d", seg.Name, n, MaxSegmentEntries)
		}
	}
	if want := maxAppendsPerWindow + 2; len(seen) != scans || len(segs.Items) != want {
		t.Errorf("%d distinct scans in %d segments, want %d in %d", len(seen), len(segs.Items), scans, want)
	}
}

func TestAppendNow(t *testing.T) {
	for _, tc := range []struct {
		written, queued int
		want            bool
	}{
		{written: 0, queued: 10 * MaxSegmentEntries, want: false}, // a window's first append waits for it
		{written: 1, queued: MaxSegmentEntries, want: true},
		{written: 1, queued: MaxSegmentEntries - 1, want: false}, // short of a segment: the window bounds the wait
		{written: maxAppendsPerWindow - 1, queued: MaxSegmentEntries, want: true},
		{written: maxAppendsPerWindow, queued: 10 * MaxSegmentEntries, want: false},
	} {
		if got := appendNow(tc.written, tc.queued); got != tc.want {
			t.Errorf("appendNow(%d, %d) = %v, want %v", tc.written, tc.queued, got, tc.want)
		}
	}
}

func TestSeenSet(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	s := newSeenSet(clk, time.Hour, 2)
	s.add("a")
	s.add("b")
	if !s.has("a") || !s.has("b") || s.has("y") {
		t.Fatal("membership wrong")
	}
	s.add("c") // rotates: a and b move to the old generation
	s.add("d")
	s.add("e") // rotates again: a and b are forgotten
	if s.has("a") || !s.has("c") || !s.has("e") {
		t.Fatal("bounded generations wrong")
	}
	// Each ttl, the older generation goes.
	clk.Step(time.Hour + time.Second)
	if !s.has("e") {
		t.Fatal("forgotten after one ttl, want kept one to two ttl")
	}
	clk.Step(time.Hour + time.Second)
	if s.has("e") {
		t.Fatal("remembered after two ttl")
	}
}
