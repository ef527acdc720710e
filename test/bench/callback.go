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

package main

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/fold"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

type callbackConfig struct {
	Events, NaiveEvents, Spread, Senders int
	HotShare                             float64
	LoadTime                             time.Duration
}

func (c callbackConfig) String() string {
	return fmt.Sprintf("1 hot code and %d spread codes, safe mode, %d concurrent senders retrying like WeChat (3 tries; WeChat's open-loop fleet keeps rate x latency in flight, ~600 at the goal's 10,000/s and ~60 ms: fewer senders would cap the load, more queue at the server, in the latencies); load \"hot\": every event scans the hot code, load \"mixed\": %.0f%% do, the rest spread evenly, on one callback replica and on two (\"mixed2\", each try to the next replica); each load at most %s of sending, at most %d events to the callback server (default flags), %d to the naive handler",
		c.Spread, c.Senders, c.HotShare*100, c.LoadTime, c.Events, c.NaiveEvents)
}

// load is the outcome of one load on one handler.
type load struct {
	harness.Summary
	elapsed time.Duration
	// counted is what the handler's totals gained (the tally's for the callback server, the
	// annotations' for the naive handler); wrong counts the codes whose gain differs from the
	// events acknowledged for them.
	counted, subscribes int64
	wrong               int
	totals              string
	// scanned is how many codes the load scanned; viewLag is how long after the load's end the
	// annotations came to show the tally, and viewOff how many codes' did not within viewWait.
	scanned int
	viewLag time.Duration
	viewOff int
	// cpu is the CPU time each process used during the load.
	cpu map[string]float64
	// writes are the API server's write requests from the load's start until the annotations
	// showed it (the fold's and the view's catch-up included), by resource.
	writes map[string]float64
}

// writesPer1000 is the API server's writes per 1,000 acknowledged scans.
func (l load) writesPer1000() float64 {
	var sum float64
	for _, v := range l.writes {
		sum += v
	}
	return sum * 1000 / float64(l.Acked)
}

// writesDetail lists the writes by verb and resource, most first.
func (l load) writesDetail() string {
	names := slices.SortedFunc(maps.Keys(l.writes), func(a, b string) int { return int(l.writes[b] - l.writes[a]) })
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if l.writes[n] > 0 {
			parts = append(parts, fmt.Sprintf("%s %.0f", n, l.writes[n]))
		}
	}
	return fmt.Sprintf("apiserver_request_total of the writing verbs for %d scans, from the load's start until the annotations showed them (%s after its end), by verb and resource: %s",
		l.Acked, l.viewLag.Round(100*time.Millisecond), strings.Join(parts, ", "))
}

func (l load) rate() float64 { return float64(l.Acked) / l.elapsed.Seconds() }

// floorWriters is the concurrency of the patch floor: the senders' default before it was raised
// to 1,024, so that the floor stays comparable with earlier results; more writers would only
// queue at the API server, which serves a bounded number of requests at once.
const floorWriters = 512

// fewWriters is the concurrency of the second patch floor: as many as the manager's workers in
// the issuance benchmark, to show what fewer concurrent writes get out of the same API server.
const fewWriters = 16

// handler is a push handler under test: where it listens and how many events it gets per load.
type handler struct {
	name string
	// urls are the replicas; each try of a push goes to the next one.
	urls   []string
	events int
	// commits reads the handler's successful and conflicting annotation patches so far.
	commits func() (ok, conflict float64, err error)
	// ledger: the handler counts into the scan ledger, whose tally holds the totals and the
	// annotations a view of it; else the annotations are the totals.
	ledger bool
}

// run pushes the same loads to the callback server and then to the naive handler, both as
// processes against the same API server and the same codes.
func (c callbackConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "callback", -1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	codes, err := issuedCodes(ctx, s, c.Spread+1)
	if err != nil {
		return nil, err
	}
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		return nil, err
	}
	type mix struct {
		name     string
		hotShare float64
	}
	mixes := []mix{{"hot", 1}, {"mixed", c.HotShare}}
	results := map[string]load{}
	commits, conflicts := map[string]float64{}, map[string]float64{}
	measure := func(h handler, mixes ...mix) error {
		for _, m := range mixes {
			r.logf("callback: load %s on the %s handler", m.name, h.name)
			var before, conflictsBefore float64
			if h.commits != nil {
				before, conflictsBefore, _ = h.commits()
			}
			l, err := c.load(ctx, s, pusher, codes, m.hotShare, h, h.name+m.name)
			if err != nil {
				return err
			}
			results[h.name+"/"+m.name] = l
			if h.commits != nil {
				after, conflictsAfter, err := h.commits()
				if err != nil {
					return err
				}
				commits[m.name], conflicts[m.name] = after-before, conflictsAfter-conflictsBefore
			}
		}
		return nil
	}

	cb, err := harness.StartCallback(ctx, r.bins, "callback", s.cp.Kubeconfig, s.ns, s.dir, 0)
	if err != nil {
		return nil, err
	}
	err = measure(handler{name: "callback", urls: []string{cb.URL}, events: c.Events, commits: appends(cb), ledger: true}, mixes...)
	_ = cb.Stop(10 * time.Second) // a forced kill after the measurement changes no figure
	if err != nil {
		return nil, err
	}
	// Two replicas, as a Deployment runs them; the one stopped above released the fold's Lease,
	// and one of these takes it at once.
	pair := make([]*harness.Callback, 0, 2)
	stopPair := func() {
		for _, cb := range pair {
			_ = cb.Stop(10 * time.Second) // a forced kill after the measurement changes no figure
		}
	}
	for i := range 2 {
		cb, err := harness.StartCallback(ctx, r.bins, fmt.Sprintf("callback-%d", i), s.cp.Kubeconfig, s.ns, s.dir, 0)
		if err != nil {
			stopPair()
			return nil, err
		}
		pair = append(pair, cb)
	}
	both := func() (ok, conflict float64, err error) {
		for _, cb := range pair {
			o, c, err := appends(cb)()
			if err != nil {
				return 0, 0, err
			}
			ok, conflict = ok+o, conflict+c
		}
		return ok, conflict, nil
	}
	mixed2 := mix{"mixed2", c.HotShare}
	err = measure(handler{name: "callback", urls: []string{pair[0].URL, pair[1].URL}, events: c.Events, commits: both, ledger: true}, mixed2)
	stopPair()
	if err != nil {
		return nil, err
	}
	nv, url, err := startNaive(ctx, s)
	if err != nil {
		return nil, err
	}
	err = measure(handler{name: "naive", urls: []string{url}, events: c.NaiveEvents}, mixes...)
	_ = nv.Stop(10 * time.Second) // a forced kill after the measurement changes no figure
	if err != nil {
		return nil, err
	}
	r.logf("callback: floor: annotation patches straight to the API server")
	patches, err := c.patchFloor(ctx, s, codes[1:], floorWriters)
	if err != nil {
		return nil, err
	}
	fewerPatches, err := c.patchFloor(ctx, s, codes[1:], fewWriters)
	if err != nil {
		return nil, err
	}

	const b = "callback"
	var figs []Figure
	for _, m := range append(mixes, mixed2) {
		// The naive handler is one process serialising each code's writes: two of them would
		// conflict with each other, so the two-replica load stands beside its one-process figure.
		fast, slow := results["callback/"+m.name], results["naive/"+strings.TrimSuffix(m.name, "2")]
		figs = append(figs,
			figure(b, m.name+"_events_per_second", fast.rate(), "events/s",
				fmt.Sprintf("%d events acknowledged (persisted) in %s", fast.Acked, fast.elapsed.Round(time.Millisecond))).goal(">= 10,000", fast.rate() >= 10000),
			figure(b, m.name+"_naive_events_per_second", slow.rate(), "events/s",
				fmt.Sprintf("naive handler: %d events acknowledged in %s", slow.Acked, slow.elapsed.Round(time.Millisecond))),
			figure(b, m.name+"_vs_naive", fast.rate()/slow.rate(), "x", "same load, same run").goal(">= 20", fast.rate()/slow.rate() >= 20),
			figure(b, m.name+"_p50_latency", ms(fast.P50), "ms", fmt.Sprintf("push sent to acknowledged, retries included; naive %.0f ms", ms(slow.P50))),
			figure(b, m.name+"_p99_latency", ms(fast.P99), "ms", fmt.Sprintf("naive %.0f ms", ms(slow.P99))).goal("< 500 ms", fast.P99 < 500*time.Millisecond),
			exactness(b, m.name+"_counted", fast),
			figure(b, m.name+"_naive_counted", float64(slow.counted), "scans", exactnessDetail(slow)),
			figure(b, m.name+"_view_catch_up", fast.viewLag.Seconds(), "s",
				fmt.Sprintf("the annotations of the %d codes scanned showed the tally this long after the load's end (--view-patch-rate %v, --fold-interval %s: about %.0f s for them all once the load stops), %d codes not within %s",
					fast.scanned, viewPatchRate, foldInterval, float64(fast.scanned)/viewPatchRate, fast.viewOff, viewWait(fast.scanned))),
			figure(b, m.name+"_events_per_commit", float64(fast.Acked)/commits[m.name], "events",
				fmt.Sprintf("%.0f ledger writes for %d events (one per replica per commit window, up to 4 when 500 scans wait), %.0f failed", commits[m.name], fast.Acked, conflicts[m.name])),
			figure(b, m.name+"_api_writes_per_1000_scans", fast.writesPer1000(), "writes", fast.writesDetail()).goal("<= 20", fast.writesPer1000() <= 20),
			figure(b, m.name+"_naive_api_writes_per_1000_scans", slow.writesPer1000(), "writes", slow.writesDetail()),
			figure(b, m.name+"_cores_busy", busy(fast), "cores", cpuDetail(fast)),
			figure(b, m.name+"_sender_cpu_per_push", fast.cpu["self"]/float64(fast.Sent)*1e6, "µs",
				"CPU of the bench process (the senders) per push sent, retries included: what the load generator takes from the cores the servers share"),
		)
	}
	figs = append(figs,
		figure(b, "api_patches_per_second", patches, "patches/s",
			fmt.Sprintf("floor: annotation merge patches of the spread codes straight to the API server, %d concurrent", floorWriters)),
		figure(b, "api_patches_per_second_few", fewerPatches, "patches/s",
			fmt.Sprintf("the same, %d concurrent", fewWriters)))
	return figs, nil
}

// appends reads a callback replica's ledger writes so far (one or a few per commit window); they never
// conflict, and a failed one counts as the second value.
func appends(cb *harness.Callback) func() (ok, failed float64, err error) {
	return func() (ok, failed float64, err error) {
		const appends = metricnames.Namespace + "_callback_ledger_appends_total"
		if ok, err = harness.Metric(cb.Metrics, appends, `result="ok"`); err == nil {
			failed, err = harness.Metric(cb.Metrics, appends, `result="error"`)
		}
		return ok, failed, err
	}
}

func startNaive(ctx context.Context, s *stage) (*harness.Process, string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, "", err
	}
	nv, err := harness.StartProcess("naive", self, []string{naiveCommand, "--kubeconfig=" + s.cp.Kubeconfig, "--namespace=" + s.ns, "--listen=" + addr}, nil, s.dir)
	if err != nil {
		return nil, "", err
	}
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := nv.WaitReady(readyCtx, "http://"+addr+"/readyz"); err != nil {
		nv.Kill()
		return nil, "", err
	}
	return nv, "http://" + addr, nil
}

// patchFloor is how many annotation patches per second the API server takes from a client with
// workers concurrent requests, for as long as a load lasts: the ceiling of any handler that
// writes once per event.
func (c callbackConfig) patchFloor(ctx context.Context, s *stage, codes []*qrv1alpha1.WeChatQRCode, workers int) (float64, error) {
	deadline := time.Now().Add(c.LoadTime)
	var done atomic.Int64
	start := time.Now()
	// Requests under way at the deadline finish: a cancelled one would only make noise.
	err := harness.Parallel(c.Events, workers, func(i int) error {
		if time.Now().After(deadline) {
			return nil
		}
		patch := fmt.Appendf(nil, `{"metadata":{"annotations":{"bench/floor":"%d"}}}`, i)
		if err := s.admin.Patch(ctx, codes[i%len(codes)].DeepCopy(), client.RawPatch(types.MergePatchType, patch)); err != nil {
			return err
		}
		done.Add(1)
		return nil
	})
	return float64(done.Load()) / time.Since(start).Seconds(), err
}

// exactness: the totals hold every event sent once, and the annotations came to show them.
func exactness(bench, name string, l load) Figure {
	exact := l.Acked == l.Sent && l.counted == int64(l.Acked) && l.wrong == 0 && l.viewOff == 0
	return figure(bench, name, float64(l.counted), "scans", exactnessDetail(l)).goal("= events sent", exact)
}

func exactnessDetail(l load) string {
	return fmt.Sprintf("%s gained %d scans (%d subscribes) for %d events sent, %d acknowledged, %d retried, %d failed; %d codes off, %d codes' annotations not showing the totals",
		l.totals, l.counted, l.subscribes, l.Sent, l.Acked, l.Retried, l.Failed, l.wrong, l.viewOff)
}

// busy is how many cores the load kept busy, all processes together.
func busy(l load) float64 {
	var sum float64
	for _, v := range l.cpu {
		sum += v
	}
	return sum / l.elapsed.Seconds()
}

func cpuDetail(l load) string {
	names := slices.Sorted(maps.Keys(l.cpu))
	parts := make([]string, 0, len(names))
	for _, n := range names {
		if v := l.cpu[n]; v >= 0.05 {
			parts = append(parts, fmt.Sprintf("%s %.1f", n, v/l.elapsed.Seconds()))
		}
	}
	return "cores busy by process (self: the senders): " + strings.Join(parts, ", ")
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// issuedCodes creates n codes (the first is the hot one) with tickets, as if the manager had
// issued them.
func issuedCodes(ctx context.Context, s *stage, n int) ([]*qrv1alpha1.WeChatQRCode, error) {
	codes := harness.TemporaryCodes(s.ns, n, 720*time.Hour, 0)
	return codes, harness.CreateIssued(ctx, s.admin, s.acct.AppID, codes, createWorkers)
}

// events is n distinct scans: a share hotShare of the hot code (codes[0]), the rest spread evenly
// over the others, half of them subscribes; tag keeps the users of two loads apart.
func events(n int, hotShare float64, tag string, codes []*qrv1alpha1.WeChatQRCode) ([]harness.Event, []int) {
	evs := make([]harness.Event, n)
	target := make([]int, n)
	now := time.Now().Unix()
	spread := 0 // the spread events so far: they go round every spread code in turn
	for i := range evs {
		t := 0
		if float64(i%100) >= hotShare*100 {
			t = 1 + spread%(len(codes)-1)
			spread++
		}
		target[i] = t
		code := codes[t]
		evs[i] = harness.Event{
			OpenID: fmt.Sprintf("o-%s-%d", tag, i), CreateTime: now, Subscribe: i%2 == 0,
			Scene: fmt.Sprint(*code.Spec.Scene.ID), Ticket: code.Status.Ticket,
		}
	}
	return evs, target
}

// load sends at most h.events events for at most c.LoadTime to the handler, and reads what its
// totals gained; then, for a handler with a ledger, waits for the annotations to show the tally.
func (c callbackConfig) load(ctx context.Context, s *stage, p *harness.Pusher, codes []*qrv1alpha1.WeChatQRCode, hotShare float64, h handler, tag string) (load, error) {
	evs, target := events(h.events, hotShare, tag, codes)
	pushes := make([]*harness.Push, len(evs))
	for i, ev := range evs {
		var err error
		if pushes[i], err = p.Push(ev.XML(), time.Now()); err != nil {
			return load{}, err
		}
	}
	totals, source := counts, "annotations"
	if h.ledger {
		totals, source = tallies, "the tally"
	}
	before, err := totals(ctx, s)
	if err != nil {
		return load{}, err
	}
	writes, err := s.cp.Writes(ctx)
	if err != nil {
		return load{}, err
	}
	sender := &harness.Sender{Targets: h.urls, Workers: c.Senders, Tries: 3, Timeout: 5 * time.Second}
	defer sender.Close()
	sendCtx, cancel := context.WithTimeout(ctx, c.LoadTime)
	defer cancel()
	cpu := harness.CPUByName()
	start := time.Now()
	outcomes := sender.Send(sendCtx, pushes)
	l := load{Summary: harness.Summarize(outcomes), elapsed: time.Since(start), cpu: harness.CPUByName(), totals: source}
	for name, v := range cpu {
		l.cpu[name] -= v
	}
	want := map[types.NamespacedName]int64{}
	for i, o := range outcomes {
		if o.Status == http.StatusOK {
			want[harness.Key(codes[target[i]])]++
		}
	}
	if err := l.settle(ctx, s, codes, totals, before, want, h.ledger); err != nil {
		return load{}, err
	}
	l.viewLag = time.Since(start) - l.elapsed
	if l.writes, err = s.cp.Writes(ctx); err != nil {
		return load{}, err
	}
	for res, v := range writes {
		l.writes[res] -= v
	}
	return l, nil
}

// settle waits, a bounded time, until totals show want (scans acknowledged by code) on top of
// before and, for a handler with a ledger, the annotations the tally, and notes what they gained.
func (l *load) settle(ctx context.Context, s *stage, codes []*qrv1alpha1.WeChatQRCode, totals totalsFunc, before map[types.NamespacedName]count, want map[types.NamespacedName]int64, ledger bool) error {
	l.scanned = len(want)
	g, err := awaitGains(ctx, s, codes, totals, before, want)
	if err != nil {
		return err
	}
	l.counted, l.subscribes, l.wrong = g.scans, g.subscribes, g.wrong
	if !ledger {
		return nil
	}
	// The annotations follow at --view-patch-rate: every code scanned needs a patch.
	return poll(ctx, viewWait(l.scanned), func() (bool, error) {
		var err error
		l.viewOff, err = viewOff(ctx, s, codes)
		return err == nil && l.viewOff == 0, err
	})
}

// poll calls done every 250 ms until it reports true, fails, or wait has passed.
func poll(ctx context.Context, wait time.Duration, done func() (bool, error)) error {
	for deadline := time.Now().Add(wait); ; time.Sleep(250 * time.Millisecond) {
		ok, err := done()
		if ok || err != nil || time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
	}
}

type count struct{ scans, subscribes int64 }

// The callback servers run with their default flags.
var (
	foldInterval  = fold.DefaultOptions().Interval
	viewPatchRate = fold.DefaultOptions().ViewPatchRate
)

// gains is what the totals of some codes gained; wrong counts the codes whose gain differs from
// the scans acknowledged for them.
type gains struct {
	scans, subscribes int64
	wrong             int
}

// totalsFunc reads the totals of every code: the tally (the source of truth the fold writes) or
// the annotations.
type totalsFunc func(context.Context, *stage) (map[types.NamespacedName]count, error)

// awaitGains waits, a bounded time, until totals show want (scans acknowledged by code) on top of
// before, and says what they gained.
func awaitGains(ctx context.Context, s *stage, codes []*qrv1alpha1.WeChatQRCode, totals totalsFunc, before map[types.NamespacedName]count, want map[types.NamespacedName]int64) (gains, error) {
	var after map[types.NamespacedName]count
	err := poll(ctx, foldWait, func() (bool, error) {
		var err error
		after, err = totals(ctx, s)
		return err == nil && gainedAll(codes, before, after, want), err
	})
	if err != nil {
		return gains{}, err
	}
	var g gains
	for _, code := range codes {
		k := harness.Key(code)
		gained := after[k].scans - before[k].scans
		g.scans += gained
		g.subscribes += after[k].subscribes - before[k].subscribes
		if gained != want[k] {
			g.wrong++
		}
	}
	return g, nil
}

// foldWait bounds the wait for the fold (every --fold-interval, 5 s by default) to show a load's
// scans in the tally, or in the naive handler's annotations.
const foldWait = 30 * time.Second

// viewWait bounds the wait for the annotations of scanned codes to show the tally: a fold, then
// at most --view-patch-rate codes a second, with room for a loaded machine.
func viewWait(scanned int) time.Duration {
	return foldWait + time.Duration(float64(scanned)/viewPatchRate*float64(time.Second))
}

func gainedAll(codes []*qrv1alpha1.WeChatQRCode, before, after map[types.NamespacedName]count, want map[types.NamespacedName]int64) bool {
	for _, code := range codes {
		k := harness.Key(code)
		if after[k].scans-before[k].scans != want[k] {
			return false
		}
	}
	return true
}

// viewOff is how many codes' annotations differ from their totals in the tally.
func viewOff(ctx context.Context, s *stage, codes []*qrv1alpha1.WeChatQRCode) (int, error) {
	shown, err := counts(ctx, s)
	if err != nil {
		return 0, err
	}
	truth, err := tallies(ctx, s)
	if err != nil {
		return 0, err
	}
	off := 0
	for _, code := range codes {
		if k := harness.Key(code); shown[k] != truth[k] {
			off++
		}
	}
	return off, nil
}

// tallies reads the codes' totals from the tally shards, the source of truth of the counts.
func tallies(ctx context.Context, s *stage) (map[types.NamespacedName]count, error) {
	var list qrv1alpha1.WeChatScanTallyList
	if err := s.admin.List(ctx, &list, client.InNamespace(s.ns)); err != nil {
		return nil, err
	}
	out := map[types.NamespacedName]count{}
	for _, sh := range list.Items {
		for code, t := range sh.Spec.Codes {
			ns, name, _ := strings.Cut(code, "/")
			out[types.NamespacedName{Namespace: ns, Name: name}] = count{t.Scans, t.Subscribes}
		}
	}
	return out, nil
}

func counts(ctx context.Context, s *stage) (map[types.NamespacedName]count, error) {
	var list qrv1alpha1.WeChatQRCodeList
	if err := s.admin.List(ctx, &list); err != nil {
		return nil, err
	}
	out := map[types.NamespacedName]count{}
	for i := range list.Items {
		scans, subscribes := harness.Scans(&list.Items[i])
		out[harness.Key(&list.Items[i])] = count{scans, subscribes}
	}
	return out, nil
}
