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
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/demoapp"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// gatewayConfig is the push gateway's benchmark (spec.forward and spec.sink of an account):
//
//   - forwarding: the pushes the operator does not answer itself (text messages, and scans of
//     codes without spec.reply, which it counts and forwards) sent straight to the account's
//     application and through one callback replica whose account forwards to it, alternating, in
//     the same run; every reply is opened as WeChat opens it and must be the application's;
//   - sinks: the callback stage's hot load on a replica without a sink, on one whose account has
//     a sink in binary mode and on one with a sink in batched mode, each with the counts checked,
//     the events the sink received beside the scans counted, and the replica's own CPU per scan;
//   - steady: scans offered open loop at a rate a healthy sink keeps up with, for the delivery
//     lag (a scan's arrival to the sink's acknowledgement) and the API server's writes per scan.
//
// The application is internal/dev/demoapp served in this process on loopback: both paths end at the
// same handler in the same runtime, so its cost is the same on both and the difference is the
// gateway's. A process of its own would take a binary that exists only for this stage.
type gatewayConfig struct {
	Pushes, Rounds, Senders int
	ScanShare               float64
	// hot is the sink part's load: the callback stage's hot load, sized for this stage.
	hot callbackConfig
	// SteadyRate scans a second are offered for SteadyTime in the steady part.
	SteadyRate int
	SteadyTime time.Duration
	// ProfileDir, when set, receives a CPU profile of the replica over the steady load.
	ProfileDir string
}

func (c gatewayConfig) String() string {
	return fmt.Sprintf("forwarding: %d safe-mode pushes per path per round, %.0f%% scans of %d codes without spec.reply and the rest text messages, "+
		"%d rounds alternating the paths after a warm-up round of a tenth, %d concurrent senders, 1 try; the application (internal/dev/demoapp) in this process; "+
		"sinks: the hot load (%d senders retrying like WeChat, at most %d events, at most %s of sending, after a warm-up of a tenth) on a replica without a sink, on one with an account sink in binary mode and on one with it in batched mode (maxEvents %d; a CloudEvents receiver in this process), %d passes, the order reversed every other pass; "+
		"steady: %d scans/s offered open loop for %s to a replica with an account sink in binary mode",
		c.Pushes, c.ScanShare*100, gatewayScanCodes, c.Rounds, c.Senders, c.hot.Senders, c.hot.Events, c.hot.LoadTime, sinkBatchEvents, sinkPasses, c.SteadyRate, c.SteadyTime)
}

// gatewayScanCodes are the codes the forwarding load's scans spread over.
const gatewayScanCodes = 16

// addedGoal is the goal for what forwarding adds to a push at the median.
const addedGoal = 2 * time.Millisecond

// sinkRatioGoal is how much of the no-sink rate the push path must keep with a sink: 1 is the
// goal, 0.9 what the noise of loads of a few seconds each on the shared machine allows.
const sinkRatioGoal = 0.9

func (c gatewayConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "gateway", -1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	// The first code is the sink part's hot code; the others take the forwarding load's scans.
	codes, err := issuedCodes(ctx, s, 1+gatewayScanCodes)
	if err != nil {
		return nil, err
	}
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		return nil, err
	}
	figs, err := c.forwarding(ctx, r, s, pusher, codes[1:])
	if err != nil {
		return nil, err
	}
	sinks, err := c.sinks(ctx, r, s, pusher, codes[:1])
	if err != nil {
		return nil, err
	}
	steady, err := c.steady(ctx, r, s, pusher, codes[:1])
	return append(append(figs, sinks...), steady...), err
}

// gatewayPush is one push of the forwarding load, who sent it, and what the application's reply
// to it says straight and through the gateway.
type gatewayPush struct {
	push            *harness.Push
	openID          string
	code            *qrv1alpha1.WeChatQRCode // the code a scan is of; nil for a text message
	direct, through string
}

// forwardingLoad is round's pushes: a share c.ScanShare scans of codes spread evenly among them
// (every other one by a new follower), the rest text messages.
func (c gatewayConfig) forwardingLoad(p *harness.Pusher, codes []*qrv1alpha1.WeChatQRCode, round, n int) ([]gatewayPush, error) {
	load := make([]gatewayPush, n)
	now := time.Now()
	for i := range load {
		g := &load[i]
		k := round*c.Pushes + i
		var msg []byte
		// j scans so far: push i is a scan when it makes the scans reach the next whole share.
		if j := int(float64(i) * c.ScanShare); int(float64(i+1)*c.ScanShare) > j {
			g.code = codes[j%len(codes)]
			ev := harness.Event{OpenID: fmt.Sprintf("o-gw-%d", k), CreateTime: now.Unix(), Subscribe: j%2 == 0,
				Scene: fmt.Sprint(*g.code.Spec.Scene.ID), Ticket: g.code.Status.Ticket}
			g.openID, msg = ev.OpenID, ev.XML()
			g.direct, g.through = scanEcho(ev, nil), scanEcho(ev, g.code)
		} else {
			g.openID, msg = textSender(k), textMessage(k, now)
			g.direct = "you said: " + textContent(k)
			g.through = g.direct
		}
		var err error
		if g.push, err = p.Push(msg, now); err != nil {
			return nil, err
		}
	}
	return load, nil
}

// scanEcho is internal/dev/demoapp's reply to a scan: it names the code when the gateway said which
// (code non-nil), and the scan as new, as it is on its first try.
func scanEcho(ev harness.Event, code *qrv1alpha1.WeChatQRCode) string {
	text := "you scanned scene " + ev.Scene
	if ev.Subscribe {
		text = "welcome! you followed by scanning scene " + ev.Scene
	}
	if code != nil {
		text += fmt.Sprintf(" (code %s/%s, new scan)", code.Namespace, code.Name)
	}
	return text
}

// replyProblem says what is wrong with the answer o to a push from openID, whose reply from the
// application reads want; "" when nothing is.
func replyProblem(p *harness.Pusher, o harness.Outcome, openID, want string) string {
	if o.Status != http.StatusOK {
		return fmt.Sprintf("status %d", o.Status)
	}
	reply, err := p.OpenReply(o.Body)
	switch {
	case err != nil:
		return err.Error()
	case reply.MsgType != "text" || reply.Content != want:
		return fmt.Sprintf("a %s reply saying %q, want %q", reply.MsgType, reply.Content, want)
	case reply.ToUserName != openID || reply.FromUserName != "gh_bench":
		return fmt.Sprintf("a reply from %q to %q, want from gh_bench to %q", reply.FromUserName, reply.ToUserName, openID)
	}
	return ""
}

// pushPath is one way to the application and what the measured rounds saw on it.
type pushPath struct {
	name, url string
	through   bool
	elapsed   time.Duration
	sent      int
	// text and scan are the latencies of the pushes answered with the application's reply.
	text, scan []time.Duration
	wrong      int
	firstWrong string
}

func (pp *pushPath) all() []time.Duration {
	return append(append([]time.Duration(nil), pp.text...), pp.scan...)
}

func (pp *pushPath) rate() float64 { return float64(pp.sent) / pp.elapsed.Seconds() }

// send sends load on the path and checks every answer; measured adds it to the path's figures.
// It returns the outcomes.
func (pp *pushPath) send(ctx context.Context, p *harness.Pusher, load []gatewayPush, senders int, measured bool) []harness.Outcome {
	pushes := make([]*harness.Push, len(load))
	for i := range load {
		pushes[i] = load[i].push
	}
	sender := &harness.Sender{Targets: []string{pp.url}, Workers: senders, Tries: 1, Timeout: 5 * time.Second, Replies: true}
	defer sender.Close()
	start := time.Now()
	outcomes := sender.Send(ctx, pushes)
	elapsed := time.Since(start)
	if !measured {
		return outcomes
	}
	pp.elapsed += elapsed
	for i, o := range outcomes {
		g := load[i]
		if o.Tries == 0 {
			continue
		}
		pp.sent++
		want := g.direct
		if pp.through {
			want = g.through
		}
		if problem := replyProblem(p, o, g.openID, want); problem != "" {
			if pp.wrong == 0 {
				pp.firstWrong = problem
			}
			pp.wrong++
			continue
		}
		if g.code == nil {
			pp.text = append(pp.text, o.Latency)
		} else {
			pp.scan = append(pp.scan, o.Latency)
		}
	}
	return outcomes
}

// forwarding measures the same pushes straight to the application and through a callback
// replica that forwards to it.
func (c gatewayConfig) forwarding(ctx context.Context, r *run, s *stage, p *harness.Pusher, codes []*qrv1alpha1.WeChatQRCode) ([]Figure, error) {
	app, err := demoapp.NewApp(s.acct.Token, s.acct.AppID, s.acct.EncodingAESKey, clock.RealClock{}, quiet{})
	if err != nil {
		return nil, err
	}
	upstream := httptest.NewServer(app)
	defer upstream.Close()
	if err := harness.SetGateway(ctx, s.admin, s.ns, s.acct, harness.Gateway{ForwardURL: upstream.URL + "/wx"}); err != nil {
		return nil, err
	}
	cb, err := harness.StartCallback(ctx, r.bins, "callback-forward", s.cp.Kubeconfig, s.ns, s.dir, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cb.Stop(10 * time.Second) }() // a forced kill after the measurement changes no figure
	before, err := tallies(ctx, s)
	if err != nil {
		return nil, err
	}
	direct := &pushPath{name: "direct", url: upstream.URL}
	through := &pushPath{name: "through the gateway", url: cb.URL, through: true}
	want := map[types.NamespacedName]int64{}
	scansSent := 0
	// Round 0 is a warm-up (connections, the runtime's heap), not measured. The paths take
	// turns at going first, so that neither always runs on a machine the other just warmed.
	for round := range c.Rounds + 1 {
		n := c.Pushes
		if round == 0 {
			n = max(c.Pushes/10, 1)
		}
		load, err := c.forwardingLoad(p, codes, round, n)
		if err != nil {
			return nil, err
		}
		paths := []*pushPath{direct, through}
		if round%2 == 1 {
			paths[0], paths[1] = through, direct
		}
		for _, pp := range paths {
			r.logf("gateway: round %d, %d pushes %s", round, n, pp.name)
			outcomes := pp.send(ctx, p, load, c.Senders, round > 0)
			if !pp.through {
				continue
			}
			for i, o := range outcomes {
				if load[i].code != nil && o.Tries > 0 {
					scansSent++
					if o.Status == http.StatusOK {
						want[harness.Key(load[i].code)]++
					}
				}
			}
		}
	}
	counted, err := awaitGains(ctx, s, codes, tallies, before, want)
	if err != nil {
		return nil, err
	}
	forwarded, err := harness.Metric(cb.Metrics, metricnames.Namespace+"_callback_forwards_total", `result="ok"`)
	if err != nil {
		return nil, err
	}
	return forwardingFigures(direct, through, counted, scansSent, forwarded), nil
}

// quiet is the application's log when nobody reads it.
type quiet struct{}

func (quiet) Printf(string, ...any) {}

// added is how much later the gateway answers than the application alone at the median and at
// the 99th percentile (nearest rank of each, as harness.Summarize), the two measured on the same
// pushes in the same rounds.
func added(direct, through []time.Duration) (p50, p99 time.Duration) {
	d, t := append([]time.Duration(nil), direct...), append([]time.Duration(nil), through...)
	return harness.Percentile(t, 0.5) - harness.Percentile(d, 0.5), harness.Percentile(t, 0.99) - harness.Percentile(d, 0.99)
}

func forwardingFigures(direct, through *pushPath, counted gains, scansSent int, forwarded float64) []Figure {
	const b = "gateway"
	lat := func(pp *pushPath, q float64) float64 { return ms(harness.Percentile(pp.all(), q)) }
	p50, p99 := added(direct.all(), through.all())
	text50, text99 := added(direct.text, through.text)
	scan50, scan99 := added(direct.scan, through.scan)
	correct := func(pp *pushPath) string {
		d := fmt.Sprintf("%s: %d of %d replies the application's", pp.name, pp.sent-pp.wrong, pp.sent)
		if pp.wrong > 0 {
			d += "; first wrong: " + pp.firstWrong
		}
		return d
	}
	right := direct.wrong == 0 && through.wrong == 0 && direct.sent == through.sent
	exact := counted.scans == int64(scansSent) && counted.wrong == 0
	return []Figure{
		figure(b, "direct_pushes_per_second", direct.rate(), "pushes/s",
			fmt.Sprintf("%d pushes (%d text, %d scans) straight to the application in %s", direct.sent, len(direct.text), len(direct.scan), direct.elapsed.Round(time.Millisecond))),
		figure(b, "forwarded_pushes_per_second", through.rate(), "pushes/s",
			fmt.Sprintf("the same pushes through one callback replica in %s: %.2f of the direct rate, the senders being a closed loop (each waits for its answer), so a scan holds its sender until its count is durable; the replica's forwards_total{result=\"ok\"} %.0f, warm-up included",
				through.elapsed.Round(time.Millisecond), through.rate()/direct.rate(), forwarded)),
		figure(b, "direct_p50_latency", lat(direct, 0.5), "ms", fmt.Sprintf("p99 %.2f ms; every push, sent to answered", lat(direct, 0.99))),
		figure(b, "forwarded_p50_latency", lat(through, 0.5), "ms", fmt.Sprintf("p99 %.2f ms", lat(through, 0.99))),
		figure(b, "added_p50_latency", ms(p50), "ms", fmt.Sprintf("every push: forwarded minus direct; p99 %+.2f ms", ms(p99))),
		figure(b, "text_added_p50_latency", ms(text50), "ms",
			fmt.Sprintf("text messages, forwarded minus direct: p50 %.2f − %.2f ms", ms(harness.Percentile(through.text, 0.5)), ms(harness.Percentile(direct.text, 0.5)))).
			goal(fmt.Sprintf("<= %d ms", addedGoal.Milliseconds()), text50 <= addedGoal),
		figure(b, "text_added_p99_latency", ms(text99), "ms",
			fmt.Sprintf("p99 %.2f − %.2f ms", ms(harness.Percentile(through.text, 0.99)), ms(harness.Percentile(direct.text, 0.99)))),
		figure(b, "scan_added_p50_latency", ms(scan50), "ms",
			fmt.Sprintf("scans, forwarded minus direct: p50 %.2f − %.2f ms, p99 %+.2f ms; a scan is answered once its count is durable (a commit window and a ledger write), forwarded meanwhile",
				ms(harness.Percentile(through.scan, 0.5)), ms(harness.Percentile(direct.scan, 0.5)), ms(scan99))),
		figure(b, "replies_correct", float64(through.sent-through.wrong), "replies",
			correct(through)+"; "+correct(direct)+" (opened as WeChat does: signature, decryption, addressee, text)").goal("= pushes sent, both paths", right),
		figure(b, "forwarded_scans_counted", float64(counted.scans), "scans",
			fmt.Sprintf("annotations gained %d scans (%d subscribes) for %d scans sent through the gateway, warm-up included; %d codes off", counted.scans, counted.subscribes, scansSent, counted.wrong)).
			goal("= scans sent", exact),
	}
}

// deliveries are a callback replica's scan events by outcome (callback_sink_deliveries_total).
type deliveries struct {
	// expired are the events given up after their sink's retention or beyond the backlog limit.
	ok, expired float64
	// other are the events rejected, failed or abandoned.
	other float64
	// requests and requestEvents are the tries and the events they carried
	// (callback_sink_request_events).
	requests, requestEvents float64
}

func (d deliveries) done() float64 { return d.ok + d.expired + d.other }

func (d deliveries) minus(e deliveries) deliveries {
	return d.plus(deliveries{ok: -e.ok, expired: -e.expired, other: -e.other, requests: -e.requests, requestEvents: -e.requestEvents})
}

func (d deliveries) plus(e deliveries) deliveries {
	return deliveries{ok: d.ok + e.ok, expired: d.expired + e.expired, other: d.other + e.other,
		requests: d.requests + e.requests, requestEvents: d.requestEvents + e.requestEvents}
}

func readDeliveries(cb *harness.Callback) (d deliveries, depth float64, err error) {
	name := metricnames.Namespace + "_callback_sink_deliveries_total"
	var all float64
	if d.ok, err = harness.Metric(cb.Metrics, name, `result="ok"`); err != nil {
		return d, 0, err
	}
	if d.expired, err = harness.Metric(cb.Metrics, name, `result="expired"`); err != nil {
		return d, 0, err
	}
	if all, err = harness.Metric(cb.Metrics, name); err != nil {
		return d, 0, err
	}
	d.other = all - d.ok - d.expired
	events := metricnames.Namespace + "_callback_sink_request_events"
	if d.requests, err = harness.Metric(cb.Metrics, events+"_count"); err != nil {
		return d, 0, err
	}
	if d.requestEvents, err = harness.Metric(cb.Metrics, events+"_sum"); err != nil {
		return d, 0, err
	}
	depth, err = harness.Metric(cb.Metrics, metricnames.Namespace+"_callback_sink_backlog_events")
	return d, depth, err
}

// sinkStall bounds the wait for a replica to be done with the events of a load: it waits as long
// as deliveries progress (a sink slower than the scans catches up from the ledger), and gives up
// once none has had an outcome for this long, twice the longest backoff of a failing sink.
const sinkStall = time.Minute

// awaitDeliveries waits until cb has an outcome for each of the events of n counted scans and
// nothing in its backlog, or until its deliveries stall.
func awaitDeliveries(ctx context.Context, cb *harness.Callback, n int64) (deliveries, error) {
	var last float64
	for progress := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		d, depth, err := readDeliveries(cb)
		if err != nil || (d.done() >= float64(n) && depth == 0) || time.Since(progress) > sinkStall {
			return d, err
		}
		if d.done() > last {
			last, progress = d.done(), time.Now()
		}
		if ctx.Err() != nil {
			return d, ctx.Err()
		}
	}
}

// receiver is a scan sink (internal/dev/demoapp's, which reads each request on its own and so
// hangs on no sender that gives up): it notes each event's id and when the first and the last
// arrived.
type receiver struct {
	srv *httptest.Server

	mu          sync.Mutex
	ids         map[string]int
	received    int
	first, last time.Time
}

func startReceiver() *receiver {
	rc := &receiver{ids: map[string]int{}}
	rc.srv = httptest.NewServer(demoapp.ScanReceiver(rc.note))
	return rc
}

func (rc *receiver) note(e cloudevents.Event, _ delivery.ScanEvent) {
	now := time.Now()
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.received == 0 {
		rc.first = now
	}
	rc.received++
	rc.ids[e.ID()]++
	rc.last = now
}

// rate is the events received per second from the first to the last.
func (rc *receiver) rate() float64 {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.received < 2 {
		return 0
	}
	return float64(rc.received-1) / rc.last.Sub(rc.first).Seconds()
}

// reset forgets what was received so far.
func (rc *receiver) reset() {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.ids, rc.received, rc.first, rc.last = map[string]int{}, 0, time.Time{}, time.Time{}
}

func (rc *receiver) counts() (received, distinct int) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return rc.received, len(rc.ids)
}

// sunk is a hot load on a replica, and what the replica's sink, if any, got of it.
type sunk struct {
	load
	d                  deliveries
	received, distinct int
	// delivered is the events the sink received per second, first to last; catchUp how long
	// after the load's end (and its tally) the last of its events had an outcome.
	delivered float64
	catchUp   time.Duration
	// cpu is the callback replica's CPU seconds from the measured load's start until it was
	// done with the load's events: its own cost, wherever the receiver runs.
	cpu float64
}

// sinkMode is a replica's account sink in the sink part.
type sinkMode int

const (
	noSink sinkMode = iota
	binarySink
	batchedSink
	sinkModes
)

// sinkBatchEvents is the batched pass's spec.sink.batch.maxEvents. Batches grow only with the
// queue, so the size matters once the sink falls behind: 100 events (about 50 KB of JSON) make the
// per-request cost a hundredth of the per-event one at saturation, while a request stays small
// for the receiver to hold and decode and a failed one resends at most 100 events.
const sinkBatchEvents = 100

// sinkPasses are how many times the loads run, the order reversed every other pass: in the same
// order every time, the second came out 1.5 to 1.7 times faster whichever it was (the machine
// and the API server warmed by the first).
const sinkPasses = 2

// passOrder is the modes in the order pass runs them: in order on even passes, reversed on odd
// ones, so that over two passes every mode has the same mean position.
func passOrder(pass int) []sinkMode {
	order := make([]sinkMode, sinkModes)
	for i := range order {
		order[i] = sinkMode(i)
		if pass%2 == 1 {
			order[i] = sinkModes - 1 - sinkMode(i)
		}
	}
	return order
}

// callbackCPU is the CPU seconds the callback replica has used (one runs at a time).
func callbackCPU() float64 { return harness.CPUByName()["callback"] }

// sinks runs the hot load on a replica whose account has no sink, one with a sink in binary mode
// and one with a sink in batched mode, sinkPasses times, in passOrder.
func (c gatewayConfig) sinks(ctx context.Context, r *run, s *stage, p *harness.Pusher, hot []*qrv1alpha1.WeChatQRCode) ([]Figure, error) {
	rc := startReceiver()
	defer rc.srv.Close()
	// measure starts a replica serving g and measures the hot load on it after a warm-up of a
	// tenth (connections, the runtime's heap, the code's first ledger segment), whose events are
	// delivered and forgotten before the measured load; then it waits for the measured load's
	// events.
	measure := func(name string, g harness.Gateway) (sunk, error) {
		if err := harness.SetGateway(ctx, s.admin, s.ns, s.acct, g); err != nil {
			return sunk{}, err
		}
		cb, err := harness.StartCallback(ctx, r.bins, "callback-"+name, s.cp.Kubeconfig, s.ns, s.dir, 0)
		if err != nil {
			return sunk{}, err
		}
		// A forced kill of a replica after its measurement changes no figure.
		defer func() { _ = cb.Stop(10 * time.Second) }()
		h := handler{name: name, urls: []string{cb.URL}, events: max(c.hot.Events/10, 1), ledger: true}
		r.logf("gateway: hot load, %s: warm-up", name)
		warm, err := c.hot.load(ctx, s, p, hot, 1, h, "gw-"+name+"-warm")
		if err != nil {
			return sunk{}, err
		}
		var base deliveries
		if g.SinkURI != "" {
			if base, err = awaitDeliveries(ctx, cb, warm.counted); err != nil {
				return sunk{}, err
			}
			rc.reset()
		}
		r.logf("gateway: hot load, %s", name)
		h.events = c.hot.Events
		cpu := callbackCPU()
		l, err := c.hot.load(ctx, s, p, hot, 1, h, "gw-"+name)
		if err != nil || g.SinkURI == "" {
			return sunk{load: l, cpu: callbackCPU() - cpu}, err
		}
		loaded := time.Now()
		d, err := awaitDeliveries(ctx, cb, warm.counted+l.counted)
		if err != nil {
			return sunk{}, err
		}
		cpu = callbackCPU() - cpu
		received, distinct := rc.counts()
		return sunk{load: l, d: d.minus(base), received: received, distinct: distinct, delivered: rc.rate(), catchUp: time.Since(loaded), cpu: cpu}, nil
	}
	gateways := [sinkModes]harness.Gateway{noSink: {}, binarySink: {SinkURI: rc.srv.URL}, batchedSink: {SinkURI: rc.srv.URL, SinkMaxEvents: sinkBatchEvents}}
	names := [sinkModes]string{noSink: "no-sink", binarySink: "sink", batchedSink: "sink-batch"}
	var runs [sinkModes][]sunk
	for pass := range sinkPasses {
		for _, m := range passOrder(pass) {
			l, err := measure(fmt.Sprint(names[m], "-", pass), gateways[m])
			if err != nil {
				return nil, err
			}
			runs[m] = append(runs[m], l)
		}
	}
	return sinkFigures(runs), nil
}

// sinkExact is whether the sink got one event per counted scan, each id once: nothing expired,
// rejected or failed, and as many distinct ids as scans counted.
func sinkExact(counted int64, d deliveries, distinct int) bool {
	return d.expired == 0 && d.other == 0 && d.ok == float64(counted) && distinct == int(counted)
}

// pooled is the loads as one: their events and times added up, their latencies those of the
// slowest.
func pooled(loads []load) load {
	var all load
	for _, l := range loads {
		all.Sent += l.Sent
		all.Acked += l.Acked
		all.Retried += l.Retried
		all.Failed += l.Failed
		all.counted += l.counted
		all.subscribes += l.subscribes
		all.wrong += l.wrong
		all.viewOff += l.viewOff
		all.elapsed += l.elapsed
		all.P50, all.P99 = max(all.P50, l.P50), max(all.P99, l.P99)
		all.totals = l.totals
	}
	return all
}

// cpuPerScan is the callback replica's CPU per acknowledged scan over runs, in µs.
func cpuPerScan(runs []sunk) float64 {
	var cpu float64
	var acked int
	for _, r := range runs {
		cpu += r.cpu
		acked += r.Acked
	}
	if acked == 0 {
		return 0
	}
	return perEvent(cpu, acked)
}

// sinkPart is the figures of one sink mode's runs beside the no-sink runs plains: the hot rate,
// its ratio to the no-sink rate (pass by pass too), the counts, the sink's delivery rate and
// what it received. prefix and what name and describe the mode.
func sinkPart(prefix sinkNames, what string, plains, runs []sunk) []Figure {
	const b = "gateway"
	var loads []load
	var d deliveries
	var received, distinct int
	var rates, passes, catchUps []string
	for i, l := range runs {
		catchUps = append(catchUps, l.catchUp.Round(100*time.Millisecond).String())
		loads = append(loads, l.load)
		d = d.plus(l.d)
		received += l.received
		distinct += l.distinct
		rates = append(rates, fmt.Sprintf("%.0f", l.delivered))
		passes = append(passes, fmt.Sprintf("%.2f", l.rate()/plains[i].rate()))
	}
	plain, sunk := pooled(loadsOf(plains)), pooled(loads)
	ratio := sunk.rate() / plain.rate()
	perRequest := ""
	if d.requests > 0 {
		perRequest = fmt.Sprintf("; %.0f requests, %.1f events a request", d.requests, d.requestEvents/d.requests)
	}
	return []Figure{
		figure(b, prefix.events, sunk.rate(), "events/s",
			fmt.Sprintf("%d events acknowledged in %s over %d loads with %s; p50 %.0f ms, p99 %.0f ms", sunk.Acked, sunk.elapsed.Round(time.Millisecond), len(runs), what, ms(sunk.P50), ms(sunk.P99))),
		figure(b, prefix.ratio, ratio, "x",
			fmt.Sprintf("hot events per second with %s over without, same load, same run, %d passes in alternating order: %s by pass",
				what, len(runs), strings.Join(passes, ", "))).
			goal(fmt.Sprintf(">= %.1f (1, less the noise of short loads)", sinkRatioGoal), ratio >= sinkRatioGoal),
		exactness(b, prefix.counted, sunk),
		figure(b, prefix.delivered, runs[0].delivered, "events/s", "events the sink received per second, first to last, first pass; by pass: "+strings.Join(rates, ", ")+
			"; the last event's outcome this long after the load's end and its tally, by pass: "+strings.Join(catchUps, ", ")),
		figure(b, prefix.received, float64(distinct), "events",
			fmt.Sprintf("%d distinct ids in %d events received for %d scans counted; the replicas' sink_deliveries_total: ok %.0f, expired %.0f, rejected or failed %.0f%s",
				distinct, received, sunk.counted, d.ok, d.expired, d.other, perRequest)).goal("= scans counted, none expired", sinkExact(sunk.counted, d, distinct)),
	}
}

// sinkNames are the figure names of a sink mode.
type sinkNames struct{ events, ratio, counted, delivered, received string }

func loadsOf(runs []sunk) []load {
	out := make([]load, len(runs))
	for i, r := range runs {
		out[i] = r.load
	}
	return out
}

func sinkFigures(runs [sinkModes][]sunk) []Figure {
	const b = "gateway"
	plain := pooled(loadsOf(runs[noSink]))
	figs := []Figure{
		figure(b, "hot_events_per_second_no_sink", plain.rate(), "events/s",
			fmt.Sprintf("%d events acknowledged (persisted) in %s over %d loads; p50 %.0f ms, p99 %.0f ms (the slowest load's)", plain.Acked, plain.elapsed.Round(time.Millisecond), len(runs[noSink]), ms(plain.P50), ms(plain.P99))),
		exactness(b, "hot_no_sink_counted", plain),
	}
	figs = append(figs, sinkPart(sinkNames{"hot_events_per_second_sink", "sink_vs_no_sink", "hot_sink_counted", "sink_deliveries_per_second", "sink_events_received"},
		"an account sink (binary mode)", runs[noSink], runs[binarySink])...)
	figs = append(figs, sinkPart(sinkNames{"sink_batch_events_per_second", "sink_batch_vs_no_sink", "hot_sink_batch_counted", "sink_batch_deliveries_per_second", "sink_batch_events_received"},
		fmt.Sprintf("an account sink in batched mode (maxEvents %d)", sinkBatchEvents), runs[noSink], runs[batchedSink])...)
	for _, m := range []struct {
		name, what string
		mode       sinkMode
	}{{"callback_cpu_per_scan_no_sink", "no sink", noSink}, {"callback_cpu_per_scan_sink", "an account sink in binary mode", binarySink}, {"callback_cpu_per_scan_sink_batch", "an account sink in batched mode", batchedSink}} {
		var cpu float64
		for _, r := range runs[m.mode] {
			cpu += r.cpu
		}
		figs = append(figs, figure(b, m.name, cpuPerScan(runs[m.mode]), "µs",
			fmt.Sprintf("the callback replica's own CPU per acknowledged scan with %s: %.2f s over %d loads, from each measured load's start until its events were delivered", m.what, cpu, len(runs[m.mode]))))
	}
	return figs
}
