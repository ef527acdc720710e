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
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// The single folder's capacity (`make bench-folder`): skipped unless -folder-rates names the
// rates to measure.
var (
	folderRates    = flag.String("folder-rates", "", "distinct scans a second to fold, comma-separated (e.g. 1000,3000,10000); empty skips TestFolderCapacity")
	folderCodes    = flag.Int("folder-codes", 1000, "codes the scans are spread over, evenly")
	folderReplicas = flag.Int("folder-replicas", 2, "callback replicas writing the ledger, each to its own segments (at least 2: a retry goes to another replica)")
	folderRounds   = flag.Int("folder-rounds", 5, "rounds measured per rate, after the dedupe window is full")
	folderOut      = flag.String("folder-out", "", "write the results as markdown to this file")
)

// capacityWindow is the ledger writers' commit window here: the batches are sized as a 50 ms
// window would make them at the rate measured, and fed one at a time, so a shorter window only
// shortens the wait between them.
const capacityWindow = 5 * time.Millisecond

// TestFolderCapacity measures what one folder sustains: for each rate, distinct scans over
// -folder-codes codes (a new scanner each, a quarter of them sent again in the next round to the
// other replica, as WeChat retries an answer lost) are made durable by real ledger writers in
// the batches a 50 ms commit window holds at that rate, then the real folder folds them on a fake
// clock stepped by the fold interval, against a real API server, with an informer cache of the
// codes for the view, as the callback server runs it. Once the dedupe window is full (its 2 m
// plus a segment's 30 s: the memory and the segments retained as in a steady load), it measures
// rounds: their duration split by what they wait for, the CPU of the folder (this process), the
// kube-apiserver and etcd, and etcd's write-ahead log bytes, for the ledger writes and for the
// fold apart. The folder keeps up while a round takes less than the fold interval; the limit
// comes from the line through the rates' round durations.
func TestFolderCapacity(t *testing.T) {
	if *folderRates == "" {
		t.Skip("the folder's capacity is measured by `make bench-folder` (-folder-rates)")
	}
	var rates []int
	for s := range strings.SplitSeq(*folderRates, ",") {
		r, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || r <= 0 {
			t.Fatalf("-folder-rates: %q is not a positive number of scans a second", s)
		}
		rates = append(rates, r)
	}
	if *folderReplicas < 2 {
		t.Fatal("-folder-replicas must be at least 2: a retry goes to another replica than its original")
	}
	machine := harness.Machine()
	started := time.Now()
	e := env.Get(t)
	etcd, err := etcdMetricsURL()
	if err != nil {
		t.Fatal(err)
	}
	var results []capacityResult
	for _, rate := range rates {
		t.Run(fmt.Sprintf("%d-scans-a-second", rate), func(t *testing.T) {
			r := measureFolder(t, e, etcd, rate)
			t.Log(r.summary())
			results = append(results, r)
		})
	}
	if t.Failed() {
		return
	}
	report := capacityReport(results, machine, started)
	t.Log("\n" + report)
	if *folderOut != "" {
		if err := os.WriteFile(*folderOut, []byte(report), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// etcdMetricsURL is the /metrics of the control plane's etcd, found in its kube-apiserver's
// command line: envtest keeps both processes' handles to itself.
func etcdMetricsURL() (string, error) {
	pids, err := proc.Children()
	if err != nil {
		return "", err
	}
	for _, pid := range pids {
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		for arg := range strings.SplitSeq(string(cmdline), "\x00") {
			if servers, ok := strings.CutPrefix(arg, "--etcd-servers="); ok {
				first, _, _ := strings.Cut(servers, ",")
				return strings.TrimSuffix(first, "/") + "/metrics", nil
			}
		}
	}
	return "", fmt.Errorf("no child process of this one has --etcd-servers")
}

// cost is what the control plane and this process spent over a stretch of a round.
type cost struct {
	wall                     time.Duration
	self, apiserver, etcdCPU float64 // CPU seconds
	walBytes                 float64 // etcd_disk_wal_write_bytes_total
}

// meter reads the counters a cost is the difference of.
type meter struct {
	etcd  string
	start time.Time
	cpu   map[string]float64
	wal   float64
}

func startMeter(t *testing.T, etcd string) meter {
	t.Helper()
	wal, err := harness.Metric(etcd, "etcd_disk_wal_write_bytes_total")
	if err != nil {
		t.Fatal(err)
	}
	return meter{etcd: etcd, start: time.Now(), cpu: harness.CPUByName(), wal: wal}
}

func (m meter) stop(t *testing.T) cost {
	t.Helper()
	wall := time.Since(m.start)
	cpu := harness.CPUByName()
	wal, err := harness.Metric(m.etcd, "etcd_disk_wal_write_bytes_total")
	if err != nil {
		t.Fatal(err)
	}
	return cost{
		wall: wall, self: cpu["self"] - m.cpu["self"], apiserver: cpu["kube-apiserver"] - m.cpu["kube-apiserver"],
		etcdCPU: cpu["etcd"] - m.cpu["etcd"], walBytes: wal - m.wal,
	}
}

func (c *cost) add(o cost) {
	c.wall += o.wall
	c.self += o.self
	c.apiserver += o.apiserver
	c.etcdCPU += o.etcdCPU
	c.walBytes += o.walBytes
}

// capacityResult is one rate's measured rounds, summed.
type capacityResult struct {
	rate, batch, rounds int
	entries             int // ledger entries written in the measured rounds
	ledgerWrites        float64
	foldWrites          float64 // the API server's writes during the fold rounds
	write, fold         cost
	phases              map[string]time.Duration // the fold rounds' wall time by what they did
	maxRound            time.Duration
	remembered          int
	heap                uint64 // bytes in use after a collection, at the end
	shardBytes          int
}

func (r capacityResult) roundMean() time.Duration { return r.fold.wall / time.Duration(r.rounds) }

func (r capacityResult) summary() string {
	return fmt.Sprintf("%d scans/s: round %v (max %v), folder CPU %.0f ms a round, API server %.0f ms, etcd %.0f ms; ledger writes of %d: %.0f µs API-server CPU and %.0f etcd WAL bytes a scan",
		r.rate, r.roundMean().Round(time.Millisecond), r.maxRound.Round(time.Millisecond),
		1000*r.fold.self/float64(r.rounds), 1000*r.fold.apiserver/float64(r.rounds), 1000*r.fold.etcdCPU/float64(r.rounds),
		r.batch, 1e6*r.write.apiserver/float64(r.entries), r.write.walBytes/float64(r.entries))
}

// measureFolder folds rate distinct scans a second until the dedupe window is full, then
// measures -folder-rounds rounds.
func measureFolder(t *testing.T, e *testenv.Env, etcd string, rate int) capacityResult {
	ns := scantest.NewNamespace(t, e)
	codes := ns.Codes(*folderCodes)
	ctx, cancel := context.WithCancel(ns.Ctx)
	t.Cleanup(cancel)
	codeCache, err := cache.New(e.Config, cache.Options{Scheme: e.Scheme, DefaultTransform: cache.TransformStripManagedFields()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codeCache.GetInformer(ctx, &qrv1alpha1.WeChatQRCode{}); err != nil {
		t.Fatal(err)
	}
	go func() { _ = codeCache.Start(ctx) }()
	if !codeCache.WaitForCacheSync(ctx) {
		t.Fatal("the codes' cache did not sync")
	}

	opts := DefaultOptions()
	opts.Namespace = ns.NS
	clk := clocktesting.NewFakeClock(time.Now())
	calls := &callLog{}
	folder := New(clk, timed{Reader: ns.C, log: calls}, timed{Reader: codeCache, log: calls, cached: true}, timed{Writer: ns.C, log: calls}, nil, opts, ctrl.Log)

	// What one replica's 50 ms commit window holds at this rate.
	batch := min(ledger.MaxSegmentEntries, max(1, rate/20/(*folderReplicas)))
	gen := &scanGen{codes: codes, replicas: make([]*ledger.Writer, *folderReplicas), interval: opts.Interval}
	for i := range gen.replicas {
		gen.replicas[i] = ledger.New(clock.RealClock{}, ns.C, ns.NS, fmt.Sprintf("replica-%d", i), capacityWindow)
	}
	cp := &harness.ControlPlane{Env: e}
	warmup := int((opts.DedupeWindow+ledger.MaxSegmentAge)/opts.Interval) + 1
	res := capacityResult{rate: rate, batch: batch, rounds: *folderRounds, phases: map[string]time.Duration{}}
	for round := range warmup + *folderRounds {
		measured := round >= warmup
		before, err := cp.Requests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m := startMeter(t, etcd)
		entries := gen.round(t, ctx, clk.Now(), rate*int(opts.Interval/time.Second), batch)
		write := m.stop(t)
		after, err := cp.Requests(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// The writers' garbage is theirs: collected before the fold's CPU is measured.
		runtime.GC()
		clk.Step(opts.Interval)
		writesBefore, err := cp.Writes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		calls.reset()
		m = startMeter(t, etcd)
		if err := folder.Fold(ctx); err != nil {
			t.Fatal(err)
		}
		fold := m.stop(t)
		folded, err := cp.Writes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d/%d: %d entries written in %v, fold %v", round+1, warmup+*folderRounds, entries, write.wall.Round(time.Millisecond), fold.wall.Round(time.Millisecond))
		if !measured {
			continue
		}
		res.entries += entries
		for _, verb := range []string{"POST", "PATCH"} {
			k := harness.RequestKind{Verb: verb, Resource: "wechatscanledgers"}
			res.ledgerWrites += after[k] - before[k]
		}
		for resource, n := range folded {
			res.foldWrites += n - writesBefore[resource]
		}
		res.write.add(write)
		res.fold.add(fold)
		res.maxRound = max(res.maxRound, fold.wall)
		for phase, d := range calls.phases(fold.wall) {
			res.phases[phase] += d
		}
	}
	res.remembered = len(folder.mem.known)
	// What the folder holds: its dedupe memory, the segments it parsed, the codes' cache.
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	res.heap = ms.HeapInuse
	// The folder is what the figure is about: without this, the collection above may free it.
	runtime.KeepAlive(folder)
	res.shardBytes = checkTally(t, ns, gen.distinct)
	// The next rate starts from an empty ledger; the API server keeps the namespaces.
	for _, obj := range []client.Object{&qrv1alpha1.WeChatScanLedger{}, &qrv1alpha1.WeChatScanTally{}} {
		if err := ns.C.DeleteAllOf(ns.Ctx, obj, client.InNamespace(ns.NS)); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

// checkTally fails unless the shards count every distinct event written exactly once, and
// returns their size in JSON: what each round writes when every code is scanned.
func checkTally(t *testing.T, ns *scantest.Namespace, distinct int) int {
	t.Helper()
	var shards qrv1alpha1.WeChatScanTallyList
	if err := ns.C.List(ns.Ctx, &shards, client.InNamespace(ns.NS)); err != nil {
		t.Fatal(err)
	}
	var scans int64
	size := 0
	for _, sh := range shards.Items {
		for _, c := range sh.Spec.Codes {
			scans += c.Scans
		}
		b, err := json.Marshal(sh)
		if err != nil {
			t.Fatal(err)
		}
		size += len(b)
	}
	if scans != int64(distinct) {
		t.Fatalf("the tally counts %d scans for %d distinct events written", scans, distinct)
	}
	return size
}

// scanGen makes each round's scans durable through the replicas' ledger writers.
type scanGen struct {
	codes    []*qrv1alpha1.WeChatQRCode
	replicas []*ledger.Writer
	interval time.Duration // a round's
	distinct int
	// retries are the events of the last round whose answer was lost: sent again this round.
	retries []retry
}

// retry is an event sent again, and the replica that wrote its original.
type retry struct {
	qrv1alpha1.LedgerEntry
	replica int
}

// round writes n new events received over the interval from start, and last round's retries,
// each replica batch after batch; it returns the entries written.
func (g *scanGen) round(t *testing.T, ctx context.Context, start time.Time, n, batch int) (entries int) {
	t.Helper()
	work := make([][]qrv1alpha1.LedgerEntry, len(g.replicas))
	for _, r := range g.retries {
		// A retry reaches another replica than its original's, whose seen set would answer it.
		to := (r.replica + 1) % len(work)
		work[to] = append(work[to], r.LedgerEntry)
	}
	g.retries = nil
	for i := range n {
		id := uint64(g.distinct + i)
		var key [9]byte
		binary.BigEndian.PutUint64(key[1:], id)
		c := g.codes[int(id)%len(g.codes)]
		e := qrv1alpha1.LedgerEntry{
			Key: base64.RawURLEncoding.EncodeToString(key[:]), Code: c.Namespace + "/" + c.Name, UID: c.UID,
			Subscribe: id%2 == 0, At: start.Add(time.Duration(i) * g.interval / time.Duration(n)).UnixMilli(),
			Scanner: ledger.ScannerHash(strconv.FormatUint(id, 10)),
		}
		work[i%len(work)] = append(work[i%len(work)], e)
		if i%4 == 0 {
			// Sent again a round later: WeChat waits 5 s, the fold interval.
			r := retry{e, i % len(work)}
			r.At += g.interval.Milliseconds()
			g.retries = append(g.retries, r)
		}
	}
	g.distinct += n
	var wg sync.WaitGroup
	errs := make(chan error, len(work))
	for r, w := range work {
		entries += len(w)
		wg.Go(func() {
			for chunk := range slices.Chunk(w, batch) {
				if err := countAll(ctx, g.replicas[r], chunk); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return entries
}

// countAll makes chunk durable through w at once, as concurrent pushes do: one ledger write.
func countAll(ctx context.Context, w *ledger.Writer, chunk []qrv1alpha1.LedgerEntry) error {
	var wg sync.WaitGroup
	errs := make([]error, len(chunk))
	for i, e := range chunk {
		wg.Go(func() { _, errs[i] = w.Count(ctx, e, time.Now().Add(30*time.Second)) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// callLog is the folder's requests in one round, each with what it was and when.
type callLog struct {
	mu    sync.Mutex
	start time.Time
	calls []call
}

type call struct {
	what       string // "list segments", "get segment", "get shard", "write shard", "delete segment", "get code (cache)", "patch code"
	start, end time.Time
}

func (l *callLog) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.start, l.calls = time.Now(), nil
}

func (l *callLog) record(what string, start time.Time) {
	end := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.calls = append(l.calls, call{what, start, end})
}

// phases splits a round of wall time total, from the requests it made, into what it did, in
// Fold's order: reading the segments (the list, the reads, and the parsing between them), the
// shards, folding in memory (from the last shard read to the first shard write), writing the
// shards, collecting segments, and the view (the codes from the cache and their patches).
func (l *callLog) phases(total time.Duration) map[string]time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	first, last := map[string]time.Time{}, map[string]time.Time{}
	busy := map[string]time.Duration{}
	for _, c := range l.calls {
		if f, ok := first[c.what]; !ok || c.start.Before(f) {
			first[c.what] = c.start
		}
		last[c.what] = later(last[c.what], c.end)
		busy[c.what] += c.end.Sub(c.start)
	}
	end := l.start.Add(total)
	segsRead := later(last["list segments"], last["get segment"])
	shardsRead := last["get shard"]
	viewStart := first["get code (cache)"]
	if viewStart.IsZero() {
		viewStart = end
	}
	out := map[string]time.Duration{
		"segments: list":              busy["list segments"],
		"segments: read":              busy["get segment"],
		"segments: parse":             segsRead.Sub(l.start) - busy["list segments"] - busy["get segment"],
		"shards: read":                shardsRead.Sub(segsRead),
		"fold in memory":              first["write shard"].Sub(shardsRead),
		"shards: write":               last["write shard"].Sub(first["write shard"]),
		"segments: collect":           viewStart.Sub(last["write shard"]),
		"view: codes and patches":     end.Sub(viewStart),
		"view: patches (8 at a time)": busy["patch code"] / viewWorkers,
		"segments: deletes (sum)":     busy["delete segment"],
	}
	if first["write shard"].IsZero() {
		out["fold in memory"], out["shards: write"], out["segments: collect"] = 0, 0, viewStart.Sub(shardsRead)
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// timed is a client whose requests the folder's round is timed by.
type timed struct {
	client.Reader
	client.Writer
	log    *callLog
	cached bool
}

func (c timed) what(verb string, obj k8sruntime.Object) string {
	switch obj.(type) {
	case *qrv1alpha1.WeChatScanLedger:
		return verb + " segment"
	case *metav1.PartialObjectMetadataList:
		return verb + " segments"
	case *qrv1alpha1.WeChatScanTally:
		if verb != "get" {
			return "write shard"
		}
		return "get shard"
	case *qrv1alpha1.WeChatQRCode:
		if c.cached {
			return verb + " code (cache)"
		}
		return verb + " code"
	}
	return verb + " " + fmt.Sprintf("%T", obj)
}

func (c timed) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	defer c.log.record(c.what("get", obj), time.Now())
	return c.Reader.Get(ctx, key, obj, opts...)
}

func (c timed) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	defer c.log.record(c.what("list", list), time.Now())
	return c.Reader.List(ctx, list, opts...)
}

func (c timed) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	defer c.log.record(c.what("create", obj), time.Now())
	return c.Writer.Create(ctx, obj, opts...)
}

func (c timed) Update(ctx context.Context, obj client.Object, opts ...client.UpdateOption) error {
	defer c.log.record(c.what("update", obj), time.Now())
	return c.Writer.Update(ctx, obj, opts...)
}

func (c timed) Patch(ctx context.Context, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
	defer c.log.record(c.what("patch", obj), time.Now())
	return c.Writer.Patch(ctx, obj, patch, opts...)
}

func (c timed) Delete(ctx context.Context, obj client.Object, opts ...client.DeleteOption) error {
	defer c.log.record(c.what("delete", obj), time.Now())
	return c.Writer.Delete(ctx, obj, opts...)
}

// capacityReport is the results as markdown: the machine, each rate's rounds, where a round's
// time went, and the single folder's limit from the line through the rates' round durations.
func capacityReport(results []capacityResult, machine string, started time.Time) string {
	interval := DefaultOptions().Interval
	var b strings.Builder
	fmt.Fprintf(&b, "# The single folder's capacity\n\n")
	fmt.Fprintf(&b, "- date: %s (took %s)\n", started.UTC().Format(time.RFC3339), time.Since(started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s\n", machine)
	fmt.Fprintf(&b, "- settings: `go test ./internal/fold -run TestFolderCapacity` (`make bench-folder`): %d codes, %d replicas writing the ledger (real `ledger.Writer`s, a batch a write as a 50 ms commit window holds at the rate), a new scanner every scan, a quarter of the scans sent again one round later to the other replica; the real folder on a fake clock stepped by its %s interval, default flags (dedupe window %s), against envtest's kube-apiserver and etcd on this machine, the codes from an informer cache; %d rounds measured per rate once the dedupe window is full\n\n",
		*folderCodes, *folderReplicas, interval, DefaultOptions().DedupeWindow, *folderRounds)

	fmt.Fprintf(&b, "## Fold rounds\n\n")
	fmt.Fprintf(&b, "| scans/s | ledger entries a round | round mean (max) | folder CPU a round | per entry folded | kube-apiserver CPU a round | etcd CPU a round | etcd WAL bytes a round | API writes a round | events remembered | heap in use | shards' JSON |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		n := float64(r.rounds)
		fmt.Fprintf(&b, "| %d | %d | %d ms (%d) | %.0f ms | %.1f µs | %.0f ms | %.0f ms | %.1f MB | %.0f | %d | %d MiB | %.1f MB |\n",
			r.rate, r.entries/r.rounds, r.roundMean().Milliseconds(), r.maxRound.Milliseconds(),
			1000*r.fold.self/n, 1e6*r.fold.self/float64(r.entries), 1000*r.fold.apiserver/n, 1000*r.fold.etcdCPU/n,
			r.fold.walBytes/n/1e6, r.foldWrites/n, r.remembered, r.heap>>20, float64(r.shardBytes)/1e6)
	}

	fmt.Fprintf(&b, "\n## Where a round's time goes (mean ms a round)\n\n")
	var names []string
	for name := range results[0].phases {
		names = append(names, name)
	}
	slices.Sort(names)
	fmt.Fprintf(&b, "| phase |")
	for _, r := range results {
		fmt.Fprintf(&b, " %d scans/s |", r.rate)
	}
	fmt.Fprintf(&b, "\n| --- |%s\n", strings.Repeat(" --- |", len(results)))
	for _, name := range names {
		fmt.Fprintf(&b, "| %s |", name)
		for _, r := range results {
			fmt.Fprintf(&b, " %d |", (r.phases[name] / time.Duration(r.rounds)).Milliseconds())
		}
		fmt.Fprintf(&b, "\n")
	}

	fmt.Fprintf(&b, "\n## Ledger writes (the rounds' scans made durable)\n\n")
	fmt.Fprintf(&b, "| scans/s | scans a write | writes a round | kube-apiserver CPU a scan (a write) | etcd CPU a scan | etcd WAL bytes a scan (a write) |\n")
	fmt.Fprintf(&b, "| --- | --- | --- | --- | --- | --- |\n")
	for _, r := range results {
		e, w := float64(r.entries), r.ledgerWrites
		fmt.Fprintf(&b, "| %d | %d | %.0f | %.1f µs (%.2f ms) | %.1f µs | %.0f (%.0f) |\n",
			r.rate, r.batch, w/float64(r.rounds), 1e6*r.write.apiserver/e, 1000*r.write.apiserver/w, 1e6*r.write.etcdCPU/e,
			r.write.walBytes/e, r.write.walBytes/w)
	}

	fmt.Fprintf(&b, "\n## The limit\n\n")
	if len(results) < 2 {
		fmt.Fprintf(&b, "One rate measured: the limit needs two or more.\n")
		return b.String()
	}
	fixed, perScan := fitLine(results, func(r capacityResult) float64 { return r.roundMean().Seconds() })
	cpuFixed, cpuPerScan := fitLine(results, func(r capacityResult) float64 { return r.fold.self / float64(r.rounds) })
	sumFixed, sumPerScan := fitLine(results, func(r capacityResult) float64 {
		return (r.fold.self + r.fold.apiserver + r.fold.etcdCPU) / float64(r.rounds)
	})
	fmt.Fprintf(&b, "On this machine a round takes %.0f ms plus %.1f ms per 1,000 scans a second (least squares through the rates above): it stays under the %s interval up to %s. ",
		1000*fixed, 1e6*perScan, interval, limit(interval, fixed, perScan))
	fmt.Fprintf(&b, "The CPU a round costs the folder, the kube-apiserver and etcd together, %.0f ms plus %.1f ms per 1,000 scans a second, is what a round would take were each request served at once on cores of their own (the folder waits for each of its requests but the view's): under the interval up to %s. ",
		1000*sumFixed, 1e6*sumPerScan, limit(interval, sumFixed, sumPerScan))
	fmt.Fprintf(&b, "The folder's own CPU alone, %.0f ms plus %.1f ms per 1,000 scans a second a round, would fill its core at %s.\n",
		1000*cpuFixed, 1e6*cpuPerScan, limit(interval, cpuFixed, cpuPerScan))
	return b.String()
}

// limit is the rate at which a round of fixed + perScan·rate seconds takes the interval.
func limit(interval time.Duration, fixed, perScan float64) string {
	if perScan <= 0 {
		return "no rate these measurements show (the line does not rise: too few rounds or rates too close for the machine's noise)"
	}
	return fmt.Sprintf("**%.0f scans a second**", (interval.Seconds()-fixed)/perScan)
}

// fitLine is the least-squares line y = a + b·rate through the results.
func fitLine(results []capacityResult, y func(capacityResult) float64) (a, b float64) {
	var sx, sy, sxx, sxy float64
	n := float64(len(results))
	for _, r := range results {
		x := float64(r.rate)
		sx, sy, sxx, sxy = sx+x, sy+y(r), sxx+x*x, sxy+x*y(r)
	}
	b = (n*sxy - sx*sy) / (n*sxx - sx*sx)
	return (sy - b*sx) / n, b
}
