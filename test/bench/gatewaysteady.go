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
	"path/filepath"
	"time"

	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// lagGoal is the delivery lag for a healthy sink at 1,000 scans a second, at the p99: the
// fold's interval is not the delivery latency.
const lagGoal = time.Second

// writesGoal is the API server's writes per 1,000 scans with a sink the issue allows: the ledger
// is the outbox, so delivery may add its offsets, not a write per event.
const writesGoal = 25

// steady offers c.SteadyRate scans a second, open loop as WeChat's fleet sends them, for
// c.SteadyTime to a replica whose account sink (binary mode) answers at once, after a warm-up. The lag is the
// replica's sink_delivery_lag_seconds (a scan's arrival to its event's acknowledgement); the
// writes are the API server's from the load's start until every event was delivered and the
// tally showed every scan.
func (c gatewayConfig) steady(ctx context.Context, r *run, s *stage, p *harness.Pusher, hot []*qrv1alpha1.WeChatQRCode) ([]Figure, error) {
	rc := startReceiver()
	defer rc.srv.Close()
	if err := harness.SetGateway(ctx, s.admin, s.ns, s.acct, harness.Gateway{SinkURI: rc.srv.URL}); err != nil {
		return nil, err
	}
	cb, err := harness.StartCallback(ctx, r.bins, "callback-steady", s.cp.Kubeconfig, s.ns, s.dir, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cb.Stop(10 * time.Second) }() // a forced kill after the measurement changes no figure

	// A warm-up of a tenth first, delivered before the measurement: a fresh deliverer starts by
	// reading every segment the earlier loads left (hundreds of thousands of entries kept for the
	// dedupe window), which is a takeover's cost, not a healthy sink's lag.
	n := int(float64(c.SteadyRate) * c.SteadyTime.Seconds())
	warm := max(n/10, 1)
	evs, _ := events(warm+n, 1, "gw-steady", hot)
	pushes, err := signedPushes(p, evs)
	if err != nil {
		return nil, err
	}
	per := max(1, int(float64(c.SteadyRate)*hotFaultTick.Seconds()))
	sender := &harness.Sender{Targets: []string{cb.URL}, Workers: per, Tries: 1, Timeout: 5 * time.Second}
	defer sender.Close()
	// The tally is read before the warm-up: its scans are folded during the measured load.
	before, err := tallies(ctx, s)
	if err != nil {
		return nil, err
	}
	r.logf("gateway: steady, warm-up of %d scans", warm)
	warmUp := &harness.Stream{Per: per, Tick: hotFaultTick, Pushes: pushes[:warm], Senders: []*harness.Sender{sender}}
	warmUp.Start(ctx)
	warmUp.End()
	if _, err := awaitDeliveries(ctx, cb, warmUp.Acked()); err != nil {
		return nil, err
	}
	base, _, err := readDeliveries(cb)
	if err != nil {
		return nil, err
	}
	rc.reset()
	pushes = pushes[warm:]
	lagName := metricnames.Namespace + "_callback_sink_delivery_lag_seconds"
	lagBefore, err := harness.ScrapeHistogram(cb.Metrics, lagName)
	if err != nil {
		return nil, err
	}
	writes, err := s.cp.Writes(ctx)
	if err != nil {
		return nil, err
	}
	r.logf("gateway: steady, %d scans at %d/s", n, c.SteadyRate)
	start := time.Now()
	st := &harness.Stream{Per: per, Tick: hotFaultTick, Pushes: pushes, Senders: []*harness.Sender{sender}}
	profiled := make(chan error, 1)
	go func() {
		if c.ProfileDir == "" {
			profiled <- nil
			return
		}
		profiled <- cb.CPUProfile(ctx, c.SteadyTime, filepath.Join(c.ProfileDir, "callback-steady.cpu.pprof"))
	}()
	st.Start(ctx)
	outcomes := st.End()
	if err := <-profiled; err != nil {
		return nil, err
	}
	// One try each: the outcomes are the first wave's, with the pushes' latencies.
	l := load{Summary: harness.Summarize(harness.Wave(outcomes, 0)), elapsed: st.Sending(), totals: "the tally"}
	d, err := awaitDeliveries(ctx, cb, warmUp.Acked()+st.Acked())
	if err != nil {
		return nil, err
	}
	d = d.minus(base)
	if err := l.settle(ctx, s, hot, tallies, before, map[types.NamespacedName]int64{harness.Key(hot[0]): warmUp.Acked() + int64(l.Acked)}, true); err != nil {
		return nil, err
	}
	l.counted -= warmUp.Acked()
	l.viewLag = time.Since(start) - l.elapsed
	if l.writes, err = s.cp.Writes(ctx); err != nil {
		return nil, err
	}
	for res, v := range writes {
		l.writes[res] -= v
	}
	collected := ownDeletes(l.writes)
	lagAfter, err := harness.ScrapeHistogram(cb.Metrics, lagName)
	if err != nil {
		return nil, err
	}
	return steadyFigures(c, l, d, lagAfter.Minus(lagBefore), rc, collected), nil
}

func steadyFigures(c gatewayConfig, l load, d deliveries, lag harness.Histogram, rc *receiver, collected float64) []Figure {
	const b = "gateway"
	received, distinct := rc.counts()
	p50, p99 := lag.Quantile(0.5), lag.Quantile(0.99)
	return []Figure{
		figure(b, "steady_scans_per_second", l.rate(), "scans/s",
			fmt.Sprintf("%d scans acknowledged of %d offered at %d/s open loop over %s; p50 %.0f ms, p99 %.0f ms to the answer", l.Acked, l.Sent, c.SteadyRate, l.elapsed.Round(time.Millisecond), ms(l.P50), ms(l.P99))),
		figure(b, "sink_lag_p50", p50*1000, "ms",
			fmt.Sprintf("a scan's arrival at the callback server to its event's acknowledgement by the sink (sink_delivery_lag_seconds, interpolated in its bucket), %.0f events", lag.Count)),
		figure(b, "sink_lag_p99", p99*1000, "ms",
			fmt.Sprintf("%.2f%% of the events within 1 s", 100*lag.Within(lagGoal.Seconds()))).
			goal(fmt.Sprintf("<= %s at %d scans/s", lagGoal, c.SteadyRate), p99 <= lagGoal.Seconds()),
		figure(b, "steady_sink_events_received", float64(distinct), "events",
			fmt.Sprintf("%d distinct ids in %d events received for %d scans counted; sink_deliveries_total: ok %.0f, expired %.0f, rejected or failed %.0f",
				distinct, received, l.counted, d.ok, d.expired, d.other)).goal("= scans counted, none expired", sinkExact(l.counted, d, distinct)),
		figure(b, "steady_api_writes_per_1000_scans", l.writesPer1000(), "writes",
			fmt.Sprintf("%s; the ledger's DELETEs are this load's segments, one each (the POSTs): the folder deletes a segment 2.5 min after its last entry (--dedupe-window and 30 s), past this window, in which it deleted %.0f segments of the earlier loads instead, theirs and not counted",
				l.writesDetail(), collected)).goal(fmt.Sprintf("<= %d with a sink", writesGoal), l.writesPer1000() <= writesGoal),
	}
}

// ownDeletes puts in writes, in place of the ledger's DELETEs measured, one for each segment the
// load created, and returns the DELETEs measured. Every segment is deleted once, when the folder
// collects it 2.5 minutes after its last entry: a load of 20 s sees none of its own deleted, and
// instead the earlier loads' (the hot loads' hundreds of segments), which are their cost, not its.
func ownDeletes(writes map[string]float64) (measured float64) {
	const created, deleted = "POST wechatscanledgers", "DELETE wechatscanledgers"
	measured = writes[deleted]
	writes[deleted] = writes[created]
	return measured
}
