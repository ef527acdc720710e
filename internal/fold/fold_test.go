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
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// dyingWriter is a folder's writer that dies after allowed writes: every later write fails, as
// if the process had been killed between two writes.
type dyingWriter struct {
	client.Writer
	allowed atomic.Int32
	// noPatch kills it at its first patch: after the tally, before the annotations.
	noPatch bool
}

var errKilled = errors.New("killed")

func (w *dyingWriter) live() bool { return w.allowed.Add(-1) >= 0 }

func (w *dyingWriter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if !w.live() {
		return errKilled
	}
	return w.Writer.Create(ctx, obj, opts...)
}

func (w *dyingWriter) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	if !w.live() {
		return errKilled
	}
	return w.Writer.Update(ctx, obj, opts...)
}

func (w *dyingWriter) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	if w.noPatch || !w.live() {
		return errKilled
	}
	return w.Writer.Patch(ctx, obj, patch, opts...)
}

// scanCodes appends, through a replica's ledger, scans of codes: code i gets i+1 scans keyed
// round/j, the first of each round a subscribe.
func (f *fixture) scanCodes(codes []*qrv1alpha1.WeChatQRCode, round int) {
	f.T.Helper()
	l := ledger.New(clock.RealClock{}, f.C, f.NS, "direct", 0)
	var wg sync.WaitGroup
	for i, code := range codes {
		for j := range i + 1 {
			e := qrv1alpha1.LedgerEntry{Key: fmt.Sprintf("k%d/%d", round, j), Code: client.ObjectKeyFromObject(code).String(), UID: code.UID, Subscribe: j == 0, At: f.clock.Now().UnixMilli()}
			wg.Go(func() {
				if _, err := l.Count(f.Ctx, e, time.Now().Add(time.Minute)); err != nil {
					f.T.Error(err)
				}
			})
		}
	}
	wg.Wait()
}

// TestFoldIdempotent kills the folder after each of its writes in turn (between two tally shard
// writes, between two annotation patches), restarting it each time, then between the tally and
// the annotations: the totals come out exact.
func TestFoldIdempotent(t *testing.T) {
	f := newFixture(t)
	codes := f.Codes(12)
	shardsTouched := map[int]bool{}
	for _, c := range codes {
		shardsTouched[shardOf(client.ObjectKeyFromObject(c).String())] = true
	}
	if len(shardsTouched) < 2 {
		t.Fatal("the codes fall in one shard: the test would not kill between two shard writes")
	}
	f.scanCodes(codes, 0)
	kills := 0
	for {
		w := &dyingWriter{Writer: f.C}
		w.allowed.Store(1)
		err := f.folder(w).Fold(f.Ctx)
		if err == nil {
			break
		}
		if !errors.Is(err, errKilled) {
			t.Fatal(err)
		}
		kills++
	}
	// One kill after each shard write (the last one: between the tally and the annotations), then
	// after each annotation patch but the last.
	if want := len(shardsTouched) + len(codes) - 1; kills != want {
		t.Errorf("%d kills, want %d", kills, want)
	}
	for i, c := range codes {
		f.wantCounts(c, strconv.Itoa(i+1), "1")
	}

	f.scanCodes(codes, 1)
	tallyOnly := &dyingWriter{Writer: f.C, noPatch: true}
	tallyOnly.allowed.Store(1 << 20)
	if err := f.folder(tallyOnly).Fold(f.Ctx); !errors.Is(err, errKilled) {
		t.Fatalf("fold: %v, want killed before the annotations", err)
	}
	if s, _ := f.Counts(codes[1]); s != "2" {
		t.Fatalf("scans %q: the view moved before the kill", s)
	}
	f.folds = nil
	for i, c := range codes {
		f.wantCounts(c, strconv.Itoa(2*(i+1)), "2")
	}
}

// TestReplaceRestores: `kubectl replace -f code.yaml` (an update of the code without the
// annotations) wipes the view; the next fold restores it from the tally. So does an apply that
// carries stale counts.
func TestReplaceRestores(t *testing.T) {
	f := newFixture(t)
	codes := f.Codes(3)
	f.scanCodes(codes, 0)
	code := codes[2]
	f.wantCounts(code, "3", "1")
	for _, ann := range []map[string]string{nil, {qrv1alpha1.AnnotationScans: "1", qrv1alpha1.AnnotationSubscribes: "0"}} {
		var got qrv1alpha1.WeChatQRCode
		if err := f.C.Get(f.Ctx, types.NamespacedName{Namespace: f.NS, Name: code.Name}, &got); err != nil {
			t.Fatal(err)
		}
		got.Annotations = ann
		if err := f.C.Update(f.Ctx, &got); err != nil {
			t.Fatal(err)
		}
		if s, _ := f.Counts(code); s == "3" {
			t.Fatal("the replace kept the counts: the test replaces nothing")
		}
		f.wantCounts(code, "3", "1")
	}
}

func TestOldestFirst(t *testing.T) {
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	t1 := t0.Add(time.Second)
	for _, c := range []struct {
		name  string
		stale []staleCode
		n     int
		want  []string
	}{
		{"nothing stale", nil, 3, nil},
		{"no budget", []staleCode{{"a", t0}}, 0, nil},
		{"budget overdrawn", []staleCode{{"a", t0}}, -1, nil},
		{"budget beyond the stale", []staleCode{{"b", t1}, {"a", t0}}, 5, []string{"a", "b"}},
		{"longest stale first", []staleCode{{"a", t1}, {"z", t0}, {"m", t1}}, 2, []string{"z", "a"}},
		{"ties by name", []staleCode{{"c", t0}, {"a", t0}, {"b", t0}}, 2, []string{"a", "b"}},
		{"a hot code waits behind older ones", []staleCode{{"hot", t1}, {"x", t0}, {"y", t0}}, 2, []string{"x", "y"}},
	} {
		var got []string
		for _, s := range oldestFirst(c.stale, c.n) {
			got = append(got, s.name)
		}
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// patchLog is a folder's writer that records which codes it patched.
type patchLog struct {
	client.Writer
	mu      sync.Mutex
	patched []string
}

func (w *patchLog) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	w.mu.Lock()
	w.patched = append(w.patched, client.ObjectKeyFromObject(obj).String())
	w.mu.Unlock()
	return w.Writer.Patch(ctx, obj, patch, opts...)
}

// TestViewBudget: 50 codes scanned at once, a budget of 10 annotation patches a second, a fold a
// second. Each round patches 10 codes, the longest stale first (ties by name); the tally and the
// per-code metrics are exact from the first round; a code scanned again after its patch waits
// behind the codes stale before it; a code deleted while waiting is forgotten; in the end every
// code shows exactly its tally.
func TestViewBudget(t *testing.T) {
	f := newFixture(t)
	codes := f.Codes(50)
	f.scanCodes(codes, 0)
	byKey := map[string]*qrv1alpha1.WeChatQRCode{}
	for _, c := range codes {
		byKey[client.ObjectKeyFromObject(c).String()] = c
	}
	keys := slices.Sorted(maps.Keys(byKey))
	w := &patchLog{Writer: f.C}
	fo := f.folderWith(w, 10)
	round := func(backlog int, want ...string) {
		t.Helper()
		w.patched = nil
		if err := fo.Fold(f.Ctx); err != nil {
			t.Fatal(err)
		}
		if got := slices.Sorted(slices.Values(w.patched)); !slices.Equal(got, slices.Sorted(slices.Values(want))) {
			t.Fatalf("patched %v, want %v", got, want)
		}
		if got := testutil.ToFloat64(viewBacklog); got != float64(backlog) {
			t.Fatalf("backlog %v, want %d", got, backlog)
		}
	}
	scans := func(c *qrv1alpha1.WeChatQRCode) float64 {
		return testutil.ToFloat64(codeScans.WithLabelValues(c.Namespace, c.Name))
	}

	round(40, keys[:10]...)
	for i, c := range codes {
		if scans(c) != float64(i+1) {
			t.Fatalf("%s: metric %v scans, want %d: the metrics must not wait for the view", c.Name, scans(c), i+1)
		}
	}
	// The budget refills with time only.
	round(40)

	f.clock.Step(time.Second)
	hot := codes[0]
	f.scanCodes(codes[:1], 1)
	gone := byKey[keys[10]]
	if err := f.C.Delete(f.Ctx, gone); err != nil {
		t.Fatal(err)
	}
	round(30, keys[11:21]...)
	if scans(hot) != 2 {
		t.Fatalf("%s: metric %v scans, want 2", hot.Name, scans(hot))
	}
	if _, ok := fo.staleSince[keys[10]]; ok {
		t.Fatal("a deleted code is still remembered as stale")
	}
	f.clock.Step(time.Second)
	round(20, keys[21:31]...)
	f.clock.Step(time.Second)
	round(10, keys[31:41]...)
	f.clock.Step(time.Second)
	round(0, append(keys[41:], client.ObjectKeyFromObject(hot).String())...)
	f.clock.Step(time.Second)
	round(0)

	for i, c := range codes {
		if c == gone {
			continue
		}
		want := strconv.Itoa(i + 1)
		if c == hot {
			want = "2"
		}
		if s, _ := f.Counts(c); s != want {
			t.Errorf("%s: scans %q, want %q", c.Name, s, want)
		}
	}
}

// TestCollectWaitsForDelivery: a segment of scan events outlives the dedupe window until the
// deliverer's offsets say every event is past; the offsets' commit moves its status alone (not
// its generation), and the folder, which reads a segment again only for new batches, reads its
// status again to collect it.
func TestCollectWaitsForDelivery(t *testing.T) {
	f := newFixture(t)
	code := f.Codes(1)[0]
	l := ledger.New(clock.RealClock{}, f.C, f.NS, "direct", 0)
	e := qrv1alpha1.LedgerEntry{Key: "k", Code: client.ObjectKeyFromObject(code).String(), UID: code.UID, At: f.clock.Now().UnixMilli(),
		Event: qrv1alpha1.LedgerEvent{AppID: "wx1", CreateTime: f.clock.Now().Unix(), OpenID: "o", Scene: "1"}}
	if _, err := l.Count(f.Ctx, e, time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	segments := func() []qrv1alpha1.WeChatScanLedger {
		var list qrv1alpha1.WeChatScanLedgerList
		if err := f.C.List(f.Ctx, &list, client.InNamespace(f.NS)); err != nil {
			t.Fatal(err)
		}
		return list.Items
	}
	f.wantCounts(code, "1", "0")
	f.clock.Step(3 * time.Minute)
	f.fold()
	segs := segments()
	if len(segs) != 1 {
		t.Fatalf("%d segments, want the undelivered one kept", len(segs))
	}
	seg := segs[0]
	if err := f.C.Status().Patch(f.Ctx, &seg, client.RawPatch(types.MergePatchType, []byte(`{"status":{"delivered":1}}`))); err != nil {
		t.Fatal(err)
	}
	if seg.Generation != segs[0].Generation {
		t.Fatalf("the offsets' commit moved the generation from %d to %d", segs[0].Generation, seg.Generation)
	}
	f.fold()
	if n := len(segments()); n != 0 {
		t.Fatalf("%d segments left once delivered and past the window, want none", n)
	}
}
