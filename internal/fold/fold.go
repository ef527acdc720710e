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
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/axiomhq/hyperloglog"
	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// tallyShards spreads the codes' totals over this many WeChatScanTally objects. A code's totals
// take about 150 bytes plus its unique-scanner sketch: a few bytes a scanner while sparse, 16 KiB
// once dense. 16 shards under 1.5 MiB each hold about 100,000 codes scanned by few people, but
// only about 1,400 codes with thousands of distinct scanners each.
const tallyShards = 16

// viewWorkers patch the codes' annotations in parallel: one round's patches are then bounded by
// the API server, not by one request's latency.
const viewWorkers = 8

// Folder folds the ledger segments into the tally shards, then the tally into the codes'
// annotations. One replica folds at a time (leader election); a folder that dies at any point is
// replaced by one that double counts nothing, because each shard stores, in the same write as its
// totals, how far it has folded each segment, and the new folder builds its dedupe memory from the
// entries below those marks (segments are kept for the dedupe window).
type Folder struct {
	clock     clock.Clock
	api       client.Reader // uncached: segments and shards are never cached
	cache     client.Reader // the codes, for the view
	writer    client.Writer
	namespace string
	window    time.Duration
	interval  time.Duration
	log       logr.Logger

	// mem is the dedupe memory, kept from round to round while this replica holds the Lease;
	// nil when it must be built again, for the reason in rebuild.
	mem     *memory
	rebuild string
	// segments holds the entries of the segments read so far, by name, with the resourceVersion
	// they were read at: a segment is read and parsed again only when it changed. Bounded by what
	// the segments retained for the dedupe window hold.
	segments map[string]*segment
	// reporter reports after each round what needs the Lease besides (nil: nothing).
	reporter Reporter
	// patchedAt is, per code, the resourceVersion the cache showed when the view was last
	// patched: while the cache still shows it, it lags our patch, and patching again would be a
	// wasted write.
	patchedAt map[string]string
	// budget paces the view's patches (--view-patch-rate, a burst of one interval's worth): were
	// every changed code patched every round, the API server's writes would grow with the number
	// of distinct codes scanned, whatever the scan rate. Only the view waits; the tally and the
	// per-code metrics are exact every round.
	budget *rate.Limiter
	// staleSince is, per code whose annotations differ from its totals, the time a round first
	// found them so; the budget goes to the longest stale first, so none starves behind a hot
	// code. Each round keeps only the codes it finds stale: a code deleted, shown or patched is
	// forgotten.
	staleSince map[string]time.Time
}

// Reporter is what the elected replica does after each round besides folding: the callback
// server's writes the accounts' status.callback from the push records (package pushrecord).
type Reporter interface {
	Report(ctx context.Context) error
}

// New folds opts.Namespace's ledger every opts.Interval, which must be positive. api reads the
// segments and shards (uncached), cache the codes; writer writes the shards and the codes'
// annotations and deletes the segments; reporter (or nil) reports after each round.
func New(clk clock.Clock, api, cache client.Reader, writer client.Writer, reporter Reporter, opts Options, log logr.Logger) *Folder {
	burst := max(1, int(math.Ceil(opts.ViewPatchRate*opts.Interval.Seconds())))
	return &Folder{
		clock: clk, api: api, cache: cache, writer: writer, namespace: opts.Namespace, window: opts.DedupeWindow, interval: opts.Interval,
		log: log.WithName("fold"), segments: map[string]*segment{}, patchedAt: map[string]string{},
		reporter: reporter, budget: rate.NewLimiter(rate.Limit(opts.ViewPatchRate), burst),
		staleSince: map[string]time.Time{}, rebuild: rebuildLease,
	}
}

// Start folds every interval until ctx ends; only the elected replica runs it, once per term. A
// term starts with a dedupe memory built from the API server: another folder may have written
// the shards since this one last held the Lease.
func (f *Folder) Start(ctx context.Context) error {
	f.mem, f.rebuild = nil, rebuildLease
	for {
		if err := f.Fold(ctx); err != nil && ctx.Err() == nil {
			folds.WithLabelValues("error").Inc()
			f.log.Error(err, "fold failed; retrying next interval")
		}
		if f.reporter != nil {
			if err := f.reporter.Report(ctx); err != nil && ctx.Err() == nil {
				f.log.Error(err, "reporting the accounts' pushes failed; retrying next interval")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.clock.After(f.interval):
		}
	}
}

func shardOf(code string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(code))
	return int(h.Sum32() % tallyShards)
}

func shardName(i int) string { return fmt.Sprintf("tally-%02d", i) }

// Fold runs one round: read the segments and shards, add the new entries, write the shards that
// changed, delete the segments done with, and bring the codes' annotations up to date.
func (f *Folder) Fold(ctx context.Context) error {
	defer func(start time.Time) { foldDuration.Observe(f.clock.Since(start).Seconds()) }(f.clock.Now())
	segs, err := f.readSegments(ctx)
	if err != nil {
		return err
	}
	shards, err := f.readShards(ctx)
	if err != nil {
		return err
	}
	mem := f.mem
	reason := f.rebuild
	if mem != nil {
		reason = mem.stale(segs, shards)
	}
	if reason != "" {
		memoryRebuilds.WithLabelValues(reason).Inc()
		mem = newMemory(segs)
	}
	now := f.clock.Now()
	mem.forget(now.Add(-f.horizon()).UnixMilli())
	// Held back until the shards agree with it: a round that fails on the way leaves the memory
	// holding events that were never written, and the next round builds it again.
	f.mem, f.rebuild = nil, rebuildError
	changed, sk := fold(mem, segs, shards, now.UnixMilli())
	if err := sk.store(shards); err != nil {
		return err
	}
	markFolded(shards, changed, segs)
	for i, sh := range shards {
		if !changed[i] {
			continue
		}
		if err := f.writeShard(ctx, sh); err != nil {
			return err
		}
		folds.WithLabelValues("shard_written").Inc()
	}
	mem.agree(segs, shards)
	f.mem, f.rebuild = mem, ""
	dedupeMemory.Set(float64(len(mem.known)))
	if err := f.collect(ctx, segs, shards); err != nil {
		return err
	}
	folds.WithLabelValues("ok").Inc()
	return f.view(ctx, shards)
}

// horizon is how long the memory keeps an event: the dedupe window, plus the longest a segment
// keeps growing, which is the least a segment outlives its last entry (collect) and so the least
// a memory built from the segments remembers an event. Built or kept, the memory then agrees on
// every retry within the window.
func (f *Folder) horizon() time.Duration { return f.window + ledger.MaxSegmentAge }

// fold adds to the shards' totals the entries of segs that mem has not taken, each event once
// per code across every segment, and says which shards changed. now (Unix ms) caps the time an
// event is remembered from. An entry below its shard's mark is already folded (every entry, when
// the memory is new): it is remembered first, so that its retry in a segment that sorts earlier
// is known.
func fold(mem *memory, segs []*segment, shards []*qrv1alpha1.WeChatScanTally, now int64) ([]bool, sketches) {
	for _, seg := range segs {
		for _, e := range mem.fresh(seg) {
			if e.pos < shards[shardOf(e.Code)].Spec.Folded[seg.Name] {
				mem.remember(event{e.Code, e.Key}, min(e.At, now))
			}
		}
	}
	changed := make([]bool, tallyShards)
	sk := sketches{}
	for _, seg := range segs {
		for _, e := range mem.fresh(seg) {
			i := shardOf(e.Code)
			if e.pos < shards[i].Spec.Folded[seg.Name] {
				continue
			}
			changed[i] = true
			k := event{e.Code, e.Key}
			dup := mem.knows(k)
			// A retry keeps its event remembered as long as its own entry would be.
			mem.remember(k, min(e.At, now))
			if !dup {
				add(shards[i], e.LedgerEntry, sk)
			}
		}
	}
	return changed, sk
}

// markFolded sets the fold marks of the changed shards to every segment's end, and drops the
// marks of the segments gone.
func markFolded(shards []*qrv1alpha1.WeChatScanTally, changed []bool, segs []*segment) {
	live := map[string]bool{}
	for _, seg := range segs {
		live[seg.Name] = true
	}
	for i, sh := range shards {
		if !changed[i] {
			continue
		}
		for name := range sh.Spec.Folded {
			if !live[name] {
				delete(sh.Spec.Folded, name)
			}
		}
		for _, seg := range segs {
			sh.Spec.Folded[seg.Name] = seg.size
		}
	}
}

// sketches are the unique-scanner sketches of the codes a round adds to, decoded once a round.
type sketches map[string]*hyperloglog.Sketch

func (s sketches) of(code string, t qrv1alpha1.CodeTally) *hyperloglog.Sketch {
	sk := s[code]
	if sk == nil {
		sk = hyperloglog.New14()
		// An undecodable sketch (edited by hand) restarts rather than blocking the fold.
		if len(t.Scanners) > 0 && sk.UnmarshalBinary(t.Scanners) != nil {
			sk = hyperloglog.New14()
		}
		s[code] = sk
	}
	return sk
}

// store encodes the sketches back into their codes' totals.
func (s sketches) store(shards []*qrv1alpha1.WeChatScanTally) error {
	for code, sk := range s {
		sh := shards[shardOf(code)]
		t := sh.Spec.Codes[code]
		b, err := sk.MarshalBinary()
		if err != nil {
			return err
		}
		t.Scanners, t.UniqueScanners = b, int64(sk.Estimate())
		sh.Spec.Codes[code] = t
	}
	return nil
}

// add counts e into its code's totals in sh. A code deleted and created again under the same
// name has a new UID and starts from zero.
func add(sh *qrv1alpha1.WeChatScanTally, e qrv1alpha1.LedgerEntry, sk sketches) {
	t := sh.Spec.Codes[e.Code]
	if t.UID != e.UID {
		t = qrv1alpha1.CodeTally{UID: e.UID}
		delete(sk, e.Code)
	}
	sk.of(e.Code, t).InsertHash(uint64(e.Scanner))
	t.Scans++
	if e.Subscribe {
		t.Subscribes++
	}
	t.LastScanTime = max(t.LastScanTime, e.At)
	sh.Spec.Codes[e.Code] = t
}

// readSegments lists the segments' metadata and reads those that are new or have new batches
// since the last round, in name order (any fixed order makes every folder pick the same
// original). New batches move a segment's generation; the deliverer's commits of its offsets
// do not (status), and a segment whose status alone moved is not read again here: only collect
// needs the status, and only of a segment it would otherwise delete. Read at every commit, the
// segments cost the folder a whole segment's decoding every second each while delivered.
func (f *Folder) readSegments(ctx context.Context) ([]*segment, error) {
	var list metav1.PartialObjectMetadataList
	list.SetGroupVersionKind(qrv1alpha1.GroupVersion.WithKind("WeChatScanLedgerList"))
	if err := f.api.List(ctx, &list, client.InNamespace(f.namespace)); err != nil {
		return nil, err
	}
	next := make(map[string]*segment, len(list.Items))
	for _, m := range list.Items {
		seg := f.segments[m.Name]
		if seg == nil || seg.UID != m.UID || seg.Generation != m.Generation {
			obj, err := f.readSegment(ctx, m.Name)
			if err != nil {
				return nil, err
			}
			if obj == nil {
				continue
			}
			seg = parseSegment(obj, seg, f.log)
		}
		seg.current = m.ResourceVersion
		next[m.Name] = seg
	}
	f.segments = next
	segs := make([]*segment, 0, len(next))
	for _, seg := range next {
		segs = append(segs, seg)
	}
	slices.SortFunc(segs, func(a, b *segment) int { return strings.Compare(a.Name, b.Name) })
	return segs, nil
}

// readSegment reads the segment name from the API server; nil if it is gone.
func (f *Folder) readSegment(ctx context.Context, name string) (*qrv1alpha1.WeChatScanLedger, error) {
	obj := &qrv1alpha1.WeChatScanLedger{}
	err := f.api.Get(ctx, types.NamespacedName{Namespace: f.namespace, Name: name}, obj)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return obj, err
}

// readShards reads every shard from the API server; a missing one is empty, to be created.
func (f *Folder) readShards(ctx context.Context) ([]*qrv1alpha1.WeChatScanTally, error) {
	shards := make([]*qrv1alpha1.WeChatScanTally, tallyShards)
	for i := range shards {
		sh := &qrv1alpha1.WeChatScanTally{}
		err := f.api.Get(ctx, types.NamespacedName{Namespace: f.namespace, Name: shardName(i)}, sh)
		if apierrors.IsNotFound(err) {
			sh.Namespace, sh.Name, err = f.namespace, shardName(i), nil
		}
		if err != nil {
			return nil, err
		}
		if sh.Spec.Codes == nil {
			sh.Spec.Codes = map[string]qrv1alpha1.CodeTally{}
		}
		if sh.Spec.Folded == nil {
			sh.Spec.Folded = map[string]int64{}
		}
		shards[i] = sh
	}
	return shards, nil
}

// writeShard creates or updates sh, with its resourceVersion: a conflict means another folder
// wrote meanwhile, and this round ends without counting anything twice.
func (f *Folder) writeShard(ctx context.Context, sh *qrv1alpha1.WeChatScanTally) error {
	if sh.ResourceVersion == "" {
		return f.writer.Create(ctx, sh)
	}
	return f.writer.Update(ctx, sh)
}

// collect deletes the segments whose every entry is folded and whose last entry is older than
// the dedupe window plus the longest a segment keeps growing: no retry of their events can come
// any more, and their writer has moved on to another segment. A segment that holds scan events
// also waits for the deliverer to be past them all (delivered or expired: its status says).
func (f *Folder) collect(ctx context.Context, segs []*segment, shards []*qrv1alpha1.WeChatScanTally) error {
	for _, seg := range segs {
		if seg.size > 0 && f.clock.Since(seg.last) <= f.window+ledger.MaxSegmentAge {
			continue
		}
		if slices.ContainsFunc(seg.entries, func(e entry) bool {
			return shards[shardOf(e.Code)].Spec.Folded[seg.Name] < seg.size
		}) {
			continue
		}
		delivered, err := f.delivered(ctx, seg)
		if err != nil {
			return err
		}
		if !delivered {
			continue
		}
		// On condition of the version listed this round: its batches are those read (same
		// generation), and its offsets only ever grow, so it is as delivered as read.
		err = f.writer.Delete(ctx, ledger.SegmentMetadata(seg.Namespace, seg.Name), client.Preconditions{ResourceVersion: &seg.current})
		switch {
		case apierrors.IsConflict(err):
			// Written since it was read (its writer, or the deliverer's offsets): looked at
			// again next round.
			continue
		case err != nil && !apierrors.IsNotFound(err):
			return err
		}
		segmentsCollected.Inc()
	}
	return nil
}

// delivered is whether the deliverer is past every event of seg (or it has none), by its status
// as read, or read again when that says not and the segment changed since.
func (f *Folder) delivered(ctx context.Context, seg *segment) (bool, error) {
	if seg.events == 0 || seg.Status.Delivered >= seg.size {
		return true, nil
	}
	if seg.current == seg.ResourceVersion {
		return false, nil
	}
	obj, err := f.readSegment(ctx, seg.Name)
	if err != nil || obj == nil || obj.UID != seg.UID || obj.Generation != seg.Generation {
		// Gone, or new batches: the next round reads it whole.
		return false, err
	}
	seg.Status, seg.ResourceVersion, seg.current = obj.Status, obj.ResourceVersion, obj.ResourceVersion
	return seg.Status.Delivered >= seg.size, nil
}

// viewOf is the annotations a code shows for its totals.
func viewOf(t qrv1alpha1.CodeTally) map[string]string {
	v := map[string]string{
		qrv1alpha1.AnnotationScans:             strconv.FormatInt(t.Scans, 10),
		qrv1alpha1.AnnotationSubscribes:        strconv.FormatInt(t.Subscribes, 10),
		qrv1alpha1.AnnotationExistingFollowers: strconv.FormatInt(t.Scans-t.Subscribes, 10),
		qrv1alpha1.AnnotationUniqueScanners:    strconv.FormatInt(t.UniqueScanners, 10),
	}
	if t.LastScanTime != 0 {
		v[qrv1alpha1.AnnotationLastScanTime] = time.UnixMilli(t.LastScanTime).UTC().Format(time.RFC3339)
	}
	return v
}

// view patches the annotations of the codes whose cached annotations differ from their totals
// (the codes scanned since they were last patched, and the codes whose annotations someone
// overwrote), as many as the budget allows, the longest stale first.
func (f *Folder) view(ctx context.Context, shards []*qrv1alpha1.WeChatScanTally) error {
	type job struct {
		obj  *qrv1alpha1.WeChatQRCode
		want map[string]string
	}
	now := f.clock.Now()
	jobs := map[string]job{}
	stale := map[string]time.Time{}
	var waiting []staleCode
	for _, sh := range shards {
		for name, t := range sh.Spec.Codes {
			ns, n, _ := strings.Cut(name, "/")
			obj := &qrv1alpha1.WeChatQRCode{}
			if err := f.cache.Get(ctx, types.NamespacedName{Namespace: ns, Name: n}, obj); err != nil {
				if apierrors.IsNotFound(err) {
					forgetCode(ns, n)
					delete(f.patchedAt, name)
					continue
				}
				return err
			}
			observeCode(ns, n, t)
			want := viewOf(t)
			if obj.UID != t.UID || f.patchedAt[name] == obj.ResourceVersion || shows(obj, want) {
				continue
			}
			since, ok := f.staleSince[name]
			if !ok {
				since = now
			}
			stale[name], jobs[name] = since, job{obj, want}
			waiting = append(waiting, staleCode{name, since})
		}
	}
	due := oldestFirst(waiting, int(f.budget.TokensAt(now)))
	f.budget.AllowN(now, len(due))
	for _, c := range due {
		delete(stale, c.name)
		f.patchedAt[c.name] = jobs[c.name].obj.ResourceVersion
	}
	f.staleSince = stale
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		next = make(chan staleCode)
	)
	for range viewWorkers {
		wg.Go(func() {
			for c := range next {
				j := jobs[c.name]
				err := f.patchView(ctx, j.obj, j.want)
				if err == nil {
					continue
				}
				mu.Lock()
				// Patched again, as stale as it was, once the budget allows.
				delete(f.patchedAt, c.name)
				f.staleSince[c.name] = c.since
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	for _, c := range due {
		next <- c
	}
	close(next)
	wg.Wait()
	viewBacklog.Set(float64(len(f.staleSince)))
	return errors.Join(errs...)
}

// staleCode is a code whose annotations differ from its totals, since a round first found so.
type staleCode struct {
	name  string
	since time.Time
}

// oldestFirst is the at most n codes of stale to patch: the longest stale first, ties by name.
func oldestFirst(stale []staleCode, n int) []staleCode {
	sorted := slices.SortedFunc(slices.Values(stale), func(a, b staleCode) int {
		return cmp.Or(a.since.Compare(b.since), strings.Compare(a.name, b.name))
	})
	return sorted[:max(0, min(n, len(sorted)))]
}

func shows(obj *qrv1alpha1.WeChatQRCode, want map[string]string) bool {
	for k, v := range want {
		if obj.Annotations[k] != v {
			return false
		}
	}
	return true
}

// patchView merges want into obj's annotations, on condition of its UID: a code deleted and
// created again meanwhile must not show the old code's totals.
func (f *Folder) patchView(ctx context.Context, obj *qrv1alpha1.WeChatQRCode, want map[string]string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{"uid": obj.UID, "annotations": want}})
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	err = f.writer.Patch(ctx, obj.DeepCopy(), client.RawPatch(types.MergePatchType, patch))
	switch {
	case err == nil:
		viewPatches.WithLabelValues("ok").Inc()
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		viewPatches.WithLabelValues("gone").Inc()
		return nil
	default:
		viewPatches.WithLabelValues("error").Inc()
		return err
	}
	return nil
}
