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
	"net/http"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/fold"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// soakConfig is the soak: a mixed load over many codes, open loop, for minutes, to two callback
// replicas and the manager, with an account sink; each event sent again 5 s late when its answer
// was lost. Every minute it notes what would grow if something accumulated: the fold's rounds,
// the replicas' CPU and memory, the API server's writes per scan, the sink's lag.
type soakConfig struct {
	Rate, Codes, LostAnswers int
	HotShare                 float64
	Time                     time.Duration
}

func (c soakConfig) String() string {
	return fmt.Sprintf("%d distinct scans/s offered open loop (a batch every %s) for %s over %d codes (%.0f%% to the hot one, the rest spread evenly) to 2 callback replicas (default flags) and the manager, with an account sink; each event sent again %s after its first push to the other replica when unacknowledged or its answer was lost (1 in %d)",
		c.Rate, hotFaultTick, c.Time, c.Codes, c.HotShare*100, soakLate, c.LostAnswers)
}

// soakLate is WeChat's first re-send: retries in another replica's segment, rounds after their
// original was folded, are what the fold's kept dedupe memory must recognise.
const soakLate = 5 * time.Second

// soakFlat is the goal: a figure's last minute within this factor of its second (the first holds
// the start: the caches filling, the dedupe window not yet full).
const soakFlat = 1.2

// soakMinute is what a soak measured over one minute.
type soakMinute struct {
	acked float64
	// foldSeconds is the time the folder spent in rounds (callback_fold_duration_seconds), rounds
	// how many; foldCPU the folder's CPU beyond the other replica's, which takes as many pushes.
	foldSeconds, rounds, foldCPU float64
	// folderCPU and otherCPU are the replicas' CPU seconds; their RSS in bytes at the minute's end.
	folderCPU, otherCPU, folderRSS, otherRSS float64
	// folderHeap is the folder's Go heap in use at the minute's end: what of its RSS is live.
	folderHeap float64
	writes     float64
	lag        harness.Histogram
	remembered float64
	// delivers says whether the folder also holds the delivery's Lease: then its CPU and RSS are
	// the deliverer's too.
	delivers bool
}

func (m soakMinute) writesPer1000() float64 { return m.writes * 1000 / m.acked }

// soakSample is the counters a minute is the difference of.
type soakSample struct {
	acked               float64
	foldSeconds, rounds float64
	cpu                 []float64
	rss, heap           []float64
	folder, deliverer   int
	writes              float64
	lag                 harness.Histogram
	remembered          float64
}

func sampleSoak(ctx context.Context, s *stage, replicas []*harness.Callback, acked int64) (soakSample, error) {
	sm := soakSample{acked: float64(acked), folder: -1, deliverer: -1}
	const fold = metricnames.Namespace + "_callback_fold_duration_seconds"
	for i, cb := range replicas {
		leader, _, _, err := cb.Folds()
		if err != nil {
			return sm, err
		}
		cpu, err := harness.Metric(cb.Metrics, "process_cpu_seconds_total")
		if err != nil {
			return sm, err
		}
		rss, err := harness.Metric(cb.Metrics, "process_resident_memory_bytes")
		if err != nil {
			return sm, err
		}
		heap, err := harness.Metric(cb.Metrics, "go_memstats_heap_inuse_bytes")
		if err != nil {
			return sm, err
		}
		sm.cpu, sm.rss, sm.heap = append(sm.cpu, cpu), append(sm.rss, rss), append(sm.heap, heap)
		lag, err := harness.ScrapeHistogram(cb.Metrics, metricnames.Namespace+"_callback_sink_delivery_lag_seconds")
		if err != nil {
			return sm, err
		}
		sm.lag = sm.lag.Plus(lag)
		delivers, err := harness.Metric(cb.Metrics, "leader_election_master_status", `name="`+callback.DeliveryLease+`"`)
		if err != nil {
			return sm, err
		}
		if delivers == 1 {
			sm.deliverer = i
		}
		if !leader {
			continue
		}
		sm.folder = i
		if sm.foldSeconds, err = harness.Metric(cb.Metrics, fold+"_sum"); err != nil {
			return sm, err
		}
		if sm.rounds, err = harness.Metric(cb.Metrics, fold+"_count"); err != nil {
			return sm, err
		}
		if sm.remembered, err = harness.Metric(cb.Metrics, metricnames.Namespace+"_callback_fold_dedupe_memory_events"); err != nil {
			return sm, err
		}
	}
	writes, err := s.cp.Writes(ctx)
	for _, v := range writes {
		sm.writes += v
	}
	return sm, err
}

// minus is the minute from earlier to sm, the folder being the one that folded at its end (a
// minute in which the Lease moved compares two processes' fold counters, and says so in its CPU).
func (sm soakSample) minus(earlier soakSample) soakMinute {
	f, o := max(0, sm.folder), 1-max(0, sm.folder)
	m := soakMinute{
		acked: sm.acked - earlier.acked, writes: sm.writes - earlier.writes, lag: sm.lag.Minus(earlier.lag),
		folderCPU: sm.cpu[f] - earlier.cpu[f], otherCPU: sm.cpu[o] - earlier.cpu[o],
		folderRSS: sm.rss[f], otherRSS: sm.rss[o], folderHeap: sm.heap[f], remembered: sm.remembered, delivers: sm.deliverer == f,
	}
	if sm.folder == earlier.folder {
		m.foldSeconds, m.rounds = sm.foldSeconds-earlier.foldSeconds, sm.rounds-earlier.rounds
	}
	m.foldCPU = m.folderCPU - m.otherCPU
	return m
}

func (c soakConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "soak", 20*time.Millisecond)
	if err != nil {
		return nil, err
	}
	defer s.close()
	codes, err := issuedCodes(ctx, s, c.Codes)
	if err != nil {
		return nil, err
	}
	m, err := harness.StartManager(ctx, r.bins, harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{Kubeconfig: s.cp.Kubeconfig, WeChatURL: s.wechat.URL}}, s.dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = m.Stop(10 * time.Second) }()
	rc := startReceiver()
	defer rc.srv.Close()
	if err := harness.SetGateway(ctx, s.admin, s.ns, s.acct, harness.Gateway{SinkURI: rc.srv.URL}); err != nil {
		return nil, err
	}
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		return nil, err
	}
	pair, err := startPair(ctx, r, s, c.Rate)
	defer pair.stop()
	if err != nil {
		return nil, err
	}
	replicas := pair.replicas
	before, err := tallies(ctx, s)
	if err != nil {
		return nil, err
	}

	// The events are built a minute's worth at a time as the stream reaches them (the crypto of
	// 100 pushes every 100 ms is a few ms), so that ten minutes of pushes are never all in memory.
	chunk := c.Rate * 60
	var (
		evs      []harness.Event
		target   []int
		targets  []int
		buildErr error
	)
	st := &harness.Stream{
		Per: pair.per, Tick: hotFaultTick, Late: []time.Duration{soakLate}, Retries: harness.Retries{LostAnswers: c.LostAnswers},
		Senders: pair.senders,
		More: func(i int) *harness.Push {
			if i%chunk == 0 {
				evs, target = events(chunk, c.HotShare, fmt.Sprintf("soak%d", i/chunk), codes)
			}
			targets = append(targets, target[i%chunk])
			p, err := pusher.Push(evs[i%chunk].XML(), time.Now())
			if err != nil && buildErr == nil {
				buildErr = err
			}
			return p
		},
	}
	minutes := max(3, int(c.Time/time.Minute))
	r.logf("soak: %d scans/s for %d minutes over %d codes", c.Rate, minutes, c.Codes)
	last, err := sampleSoak(ctx, s, replicas, 0)
	if err != nil {
		return nil, err
	}
	var perMinute []soakMinute
	st.Start(ctx)
	for start, k := time.Now(), 1; k <= minutes; k++ {
		select {
		case <-ctx.Done():
			st.End()
			return nil, ctx.Err()
		case <-time.After(time.Until(start.Add(time.Duration(k) * time.Minute))):
		}
		sm, err := sampleSoak(ctx, s, replicas, st.Acked())
		if err != nil {
			st.End()
			return nil, err
		}
		mi := sm.minus(last)
		perMinute, last = append(perMinute, mi), sm
		r.logf("soak: minute %d: %s", k, mi)
	}
	outcomes := st.End()
	if buildErr != nil {
		return nil, buildErr
	}
	l := load{Summary: harness.Summary{Sent: len(outcomes), Acked: int(st.Acked()), Failed: harness.Lost(outcomes), Retried: resends(outcomes).events}, elapsed: st.Sending(), totals: "the tally"}
	want := map[types.NamespacedName]int64{}
	for i, waves := range outcomes {
		if slices.ContainsFunc(waves, func(o harness.Outcome) bool { return o.Status == http.StatusOK }) {
			want[harness.Key(codes[targets[i]])]++
		}
	}
	r.logf("soak: waiting for the tally and the sink")
	if err := l.settle(ctx, s, codes, tallies, before, want, true); err != nil {
		return nil, err
	}
	d, err := awaitAllDeliveries(ctx, replicas, l.counted)
	if err != nil {
		return nil, err
	}
	return soakFigures(c, l, perMinute, d, rc), nil
}

// awaitAllDeliveries waits until the replicas together have an outcome for each of n events and
// nothing in their backlogs (the deliverer is elected, and may have moved), or until they stall.
func awaitAllDeliveries(ctx context.Context, replicas []*harness.Callback, n int64) (deliveries, error) {
	var last deliveries
	for progress := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		var sum deliveries
		var depth float64
		for _, cb := range replicas {
			d, dp, err := readDeliveries(cb)
			if err != nil {
				return sum, err
			}
			sum, depth = sum.plus(d), depth+dp
		}
		if (sum.done() >= float64(n) && depth == 0) || time.Since(progress) > sinkStall {
			return sum, nil
		}
		if sum.done() > last.done() {
			last, progress = sum, time.Now()
		}
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
	}
}

func (m soakMinute) String() string {
	folder := "folder"
	if m.delivers {
		folder = "folder and deliverer"
	}
	return fmt.Sprintf("%.0f scans/s, fold %.2f s in %.0f rounds (%.0f ms each), %s CPU %.1f s (%.1f s beyond the other replica's %.1f s), RSS %s %.0f MiB (heap in use %.0f) / other %.0f MiB, %.1f API writes per 1,000 scans, sink lag p50 %.0f ms p99 %.0f ms, %.0f events remembered",
		m.acked/60, m.foldSeconds, m.rounds, 1000*m.foldSeconds/max(1, m.rounds), folder, m.folderCPU, m.foldCPU, m.otherCPU, folder,
		m.folderRSS/(1<<20), m.folderHeap/(1<<20), m.otherRSS/(1<<20), m.writesPer1000(), 1000*m.lag.Quantile(0.5), 1000*m.lag.Quantile(0.99), m.remembered)
}

func soakFigures(c soakConfig, l load, minutes []soakMinute, d deliveries, rc *receiver) []Figure {
	const b = "soak"
	received, distinct := rc.counts()
	var figs []Figure
	for k, m := range minutes {
		figs = append(figs, figure(b, fmt.Sprintf("minute_%02d", k+1), m.acked/60, "scans/s", m.String()))
	}
	second, lastM := minutes[1], minutes[len(minutes)-1]
	// full is the index of the first minute that starts with the dedupe memory full (the window
	// plus a segment's 30 s): before it, what the folder holds still grows by design.
	full := int((fold.DefaultOptions().DedupeWindow + ledger.MaxSegmentAge + time.Minute - 1) / time.Minute)
	flat := func(name, unit string, of func(soakMinute) float64, what string) Figure {
		var all []string
		for _, m := range minutes {
			all = append(all, fmt.Sprintf("%.1f", of(m)))
		}
		ratio := of(lastM) / of(second)
		detail := fmt.Sprintf("%s, last minute / second; by minute (%s): %s", what, unit, strings.Join(all, ", "))
		if full < len(minutes)-1 {
			detail += fmt.Sprintf("; last / minute %d, the first with the dedupe window full: %.2f", full+1, of(lastM)/of(minutes[full]))
		}
		return figure(b, name, ratio, "x", detail).goal(fmt.Sprintf("<= %.1f", soakFlat), ratio <= soakFlat)
	}
	return append(figs,
		figure(b, "scans_per_second", l.rate(), "scans/s",
			fmt.Sprintf("%d distinct scans acknowledged of %d offered at %d/s over %s", l.Acked, l.Sent, c.Rate, l.elapsed.Round(time.Second))),
		figure(b, "lost", float64(l.Failed), "events", "events none of whose pushes was acknowledged").goal("0", l.Failed == 0),
		exactness(b, "counted", l),
		figure(b, "sink_events_received", float64(distinct), "events",
			fmt.Sprintf("%d distinct ids in %d events received for %d scans counted; sink_deliveries_total: ok %.0f, expired %.0f, rejected or failed %.0f",
				distinct, received, l.counted, d.ok, d.expired, d.other)).goal("= scans counted, none expired: 0 lost", sinkExact(l.counted, d, distinct)),
		flat("fold_round_flat", "ms", func(m soakMinute) float64 { return 1000 * m.foldSeconds / max(1, m.rounds) }, "the fold's mean round (callback_fold_duration_seconds)"),
		flat("fold_cpu_flat", "s", func(m soakMinute) float64 { return m.folderCPU }, "the folder replica's CPU (process_cpu_seconds_total; the other replica's in the minutes' details)"),
		flat("folder_rss_flat", "MiB", func(m soakMinute) float64 { return m.folderRSS / (1 << 20) }, "the folder replica's RSS at the minute's end (process_resident_memory_bytes)"),
		flat("callback_rss_flat", "MiB", func(m soakMinute) float64 { return m.otherRSS / (1 << 20) }, "the other replica's RSS at the minute's end"),
		flat("writes_flat", "writes", soakMinute.writesPer1000, "the API server's writes per 1,000 scans acknowledged (apiserver_request_total, writing verbs)"),
		flat("sink_lag_p99_flat", "ms", func(m soakMinute) float64 { return 1000 * m.lag.Quantile(0.99) }, "the sink's lag p99 (callback_sink_delivery_lag_seconds, both replicas)"),
	)
}
