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

package fold

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// seg is a parsed segment of the given entries (keys of code "c"), positions from 0.
func seg(name, uid string, keys ...string) *segment {
	s := &segment{WeChatScanLedger: &qrv1alpha1.WeChatScanLedger{ObjectMeta: metav1.ObjectMeta{Name: name, UID: types.UID(uid)}}}
	for i, k := range keys {
		s.entries = append(s.entries, entry{qrv1alpha1.LedgerEntry{Code: "ns/c", Key: k}, int64(i)})
	}
	s.size = int64(len(keys))
	return s
}

func emptyShards() []*qrv1alpha1.WeChatScanTally {
	shards := make([]*qrv1alpha1.WeChatScanTally, tallyShards)
	for i := range shards {
		shards[i] = &qrv1alpha1.WeChatScanTally{ObjectMeta: metav1.ObjectMeta{ResourceVersion: fmt.Sprint(i + 1)}}
	}
	return shards
}

func TestMemoryStale(t *testing.T) {
	agreed := []*segment{seg("a", "ua", "k1", "k2"), seg("b", "ub", "k3")}
	for _, c := range []struct {
		name  string
		segs  []*segment
		shard string // the resourceVersion shard 3 shows now
		want  string
	}{
		{"nothing changed", agreed, "4", ""},
		{"a segment grew", []*segment{seg("a", "ua", "k1", "k2", "k4"), seg("b", "ub", "k3")}, "4", ""},
		{"a new segment", append(slices.Clone(agreed), seg("c", "uc", "k1")), "4", ""},
		{"a segment deleted", agreed[1:], "4", ""},
		{"a shard written by another", agreed, "40", rebuildShard},
		{"a segment shrank", []*segment{seg("a", "ua", "k1"), seg("b", "ub", "k3")}, "4", rebuildSegment},
		{"a segment re-created", []*segment{seg("a", "ua2", "k1", "k2"), seg("b", "ub", "k3")}, "4", rebuildSegment},
		{"a segment changed below its end", []*segment{seg("a", "ua", "k1", "k9", "k2"), seg("b", "ub", "k3")}, "4", rebuildSegment},
		{"a segment emptied", []*segment{seg("a", "ua"), seg("b", "ub", "k3")}, "4", rebuildSegment},
	} {
		m := newMemory(nil)
		m.agree(agreed, emptyShards())
		shards := emptyShards()
		shards[3].ResourceVersion = c.shard
		if got := m.stale(c.segs, shards); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

func TestMemoryForget(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC))
	const horizon = 150 * time.Second
	ms := func(d time.Duration) int64 { return clk.Now().Add(d).UnixMilli() }
	a, b, c := event{"ns/c", "a"}, event{"ns/c", "b"}, event{"ns/c", "c"}
	m := newMemory(nil)
	m.remember(a, ms(0))
	m.remember(b, ms(-10*time.Second)) // behind a newer one: forgotten late, never early
	clk.Step(20 * time.Second)
	m.remember(c, ms(0))
	m.remember(a, ms(0)) // a retry: remembered from its own entry's time
	m.remember(a, ms(-time.Second))
	for _, step := range []struct {
		after time.Duration
		want  []event
	}{
		{0, []event{a, b, c}},
		{horizon - 20*time.Second, []event{a, b, c}},
		{10 * time.Second, []event{a, c}}, // b, due 10 s ago, waited behind a's first time
		{11 * time.Second, nil},
	} {
		clk.Step(step.after)
		m.forget(clk.Now().Add(-horizon).UnixMilli())
		var got []event
		for _, e := range []event{a, b, c} {
			if m.knows(e) {
				got = append(got, e)
			}
		}
		if !slices.Equal(got, step.want) {
			t.Fatalf("at %s: remembers %v, want %v", clk.Now().Format(time.TimeOnly), got, step.want)
		}
	}
	if len(m.queue) != 0 || len(m.known) != 0 {
		t.Fatalf("%d queued, %d known after everything was forgotten", len(m.queue), len(m.known))
	}
}

func rebuilds(reason string) float64 {
	return testutil.ToFloat64(memoryRebuilds.WithLabelValues(reason))
}

// scanner appends scans as a replica does, to its own segment, at the fixture's clock.
func (f *fixture) scanner(replica string) func(code *qrv1alpha1.WeChatQRCode, key string) {
	l := ledger.New(clock.RealClock{}, f.C, f.NS, replica, 0)
	return func(code *qrv1alpha1.WeChatQRCode, key string) {
		f.T.Helper()
		e := qrv1alpha1.LedgerEntry{Key: key, Code: client.ObjectKeyFromObject(code).String(), UID: code.UID, At: f.clock.Now().UnixMilli()}
		if _, err := l.Count(f.Ctx, e, time.Now().Add(time.Minute)); err != nil {
			f.T.Fatal(err)
		}
	}
}

// TestMemoryKeptAcrossRounds: while the folder holds the Lease its memory lasts from round to
// round and remembers what a rebuild could not, yet counts each event once whatever happens
// between the rounds: a new term, another folder's round, a round killed halfway.
func TestMemoryKeptAcrossRounds(t *testing.T) {
	f := newFixture(t)
	codes := f.Codes(13)
	code := codes[0]
	f.folds = f.folder(f.C)
	f.fold()
	reasons := []string{rebuildLease, rebuildError, rebuildShard, rebuildSegment}
	counted := func() []float64 {
		var n []float64
		for _, r := range reasons {
			n = append(n, rebuilds(r))
		}
		return n
	}
	// rebuilt says whether the memory was built again since before, and for which reasons.
	wantRebuilt := func(what string, before []float64, want ...string) {
		t.Helper()
		for i, n := range counted() {
			if w := float64(len(slices.DeleteFunc(slices.Clone(want), func(r string) bool { return r != reasons[i] }))); n-before[i] != w {
				t.Fatalf("%s: memory built again for %q %v times, want %v", what, reasons[i], n-before[i], w)
			}
		}
	}

	before := counted()
	r1, r2 := f.scanner("r1"), f.scanner("r2")
	r1(code, "a")
	r1(code, "b")
	f.wantCounts(code, "2", "0")
	f.clock.Step(5 * time.Second)
	r1(code, "c")
	f.wantCounts(code, "3", "0")
	f.clock.Step(5 * time.Second)
	r2(code, "a")
	r1(code, "b") // in the segment that grew since its original was folded
	f.wantCounts(code, "3", "0")
	wantRebuilt("retries rounds later", before)

	// A segment deleted while its events are in the window: a memory built from the segments
	// would have lost them; the kept one has not.
	f.scanner("r3")(code, "d")
	f.wantCounts(code, "4", "0")
	var segs qrv1alpha1.WeChatScanLedgerList
	if err := f.C.List(f.Ctx, &segs, client.InNamespace(f.NS)); err != nil {
		t.Fatal(err)
	}
	for _, s := range segs.Items {
		if s.Spec.Replica == "r3" {
			if err := f.C.Delete(f.Ctx, &s); err != nil {
				t.Fatal(err)
			}
		}
	}
	r2(code, "d")
	f.wantCounts(code, "4", "0")
	wantRebuilt("a segment deleted", before)

	f.clock.Step(f.folds.horizon() + time.Second)
	f.fold()
	if n := testutil.ToFloat64(dedupeMemory); n != 0 {
		t.Fatalf("%v events remembered past the window", n)
	}
	wantRebuilt("past the window", before)

	// A new term: Start builds the memory from the segments, which know the original.
	r5, r6 := f.scanner("r5"), f.scanner("r6")
	r5(code, "e")
	ctx, cancel := context.WithCancel(f.Ctx)
	f.folds.reporter = reporterFunc(func(context.Context) error { cancel(); return nil })
	if err := f.folds.Start(ctx); err != nil {
		t.Fatal(err)
	}
	f.folds.reporter = nil
	r6(code, "e")
	f.wantCounts(code, "5", "0")
	wantRebuilt("a new term", before, rebuildLease)

	// Another folder (one whose Lease ran out mid-round) wrote the shards meanwhile.
	before = counted()
	r5(code, "f")
	if err := f.folder(f.C).Fold(f.Ctx); err != nil {
		t.Fatal(err)
	}
	r6(code, "f")
	r6(code, "g")
	f.wantCounts(code, "7", "0")
	wantRebuilt("another folder's round (its own first and ours)", before, rebuildLease, rebuildShard)

	// A round killed between two shard writes, every event retried before the next.
	before = counted()
	codes = codes[1:]
	f.scanCodes(codes, 0)
	w := &dyingWriter{Writer: f.C}
	w.allowed.Store(1)
	f.folds.writer = w
	if err := f.folds.Fold(f.Ctx); !errors.Is(err, errKilled) {
		t.Fatalf("fold: %v, want killed", err)
	}
	f.scanCodes(codes, 0)
	w.allowed.Store(1 << 20)
	for i, c := range codes {
		f.wantCounts(c, fmt.Sprint(i+1), "1")
	}
	wantRebuilt("a killed round", before, rebuildError)
}

type reporterFunc func(context.Context) error

func (r reporterFunc) Report(ctx context.Context) error { return r(ctx) }
