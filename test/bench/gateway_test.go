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
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"k8s.io/utils/clock"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/demoapp"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxreply"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

func durations(ms ...int) []time.Duration {
	out := make([]time.Duration, len(ms))
	for i, m := range ms {
		out[i] = time.Duration(m) * time.Millisecond
	}
	return out
}

// TestAdded: the added latency is the difference of the percentiles, not of the sums, and
// leaves the callers' slices as they were.
func TestAdded(t *testing.T) {
	for _, tc := range []struct {
		name            string
		direct, through []time.Duration
		p50, p99        time.Duration
	}{
		{"the same", durations(1, 2, 3), durations(3, 2, 1), 0, 0},
		{"a constant hop", durations(1, 2, 3, 4), durations(3, 4, 5, 6), 2 * time.Millisecond, 2 * time.Millisecond},
		// Nearest rank of 100: p50 is the 50th, p99 the 99th; one slow push moves neither.
		{"one slow push in a hundred", make([]time.Duration, 100), append(make([]time.Duration, 99), time.Second), 0, 0},
		{"two slow pushes in a hundred", make([]time.Duration, 100), append(make([]time.Duration, 98), time.Second, time.Second), 0, time.Second},
		{"faster through", durations(5, 5), durations(3, 3), -2 * time.Millisecond, -2 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			through := append([]time.Duration(nil), tc.through...)
			p50, p99 := added(tc.direct, tc.through)
			if p50 != tc.p50 || p99 != tc.p99 {
				t.Errorf("added = %v, %v; want %v, %v", p50, p99, tc.p50, tc.p99)
			}
			for i := range through {
				if through[i] != tc.through[i] {
					t.Fatalf("added reordered its input: %v", tc.through)
				}
			}
		})
	}
}

// TestSinkExact: one event per counted scan, each id once, and nothing lost on the way.
func TestSinkExact(t *testing.T) {
	for _, tc := range []struct {
		name     string
		counted  int64
		d        deliveries
		distinct int
		want     bool
	}{
		{"all delivered", 500, deliveries{ok: 500}, 500, true},
		{"nothing counted, nothing sent", 0, deliveries{}, 0, true},
		{"expired, even if the rest arrived", 500, deliveries{ok: 400, expired: 100}, 400, false},
		{"failed", 500, deliveries{ok: 499, other: 1}, 499, false},
		{"an id twice", 500, deliveries{ok: 500}, 499, false},
		{"more events than scans", 500, deliveries{ok: 501}, 501, false},
		{"delivered, not received", 500, deliveries{ok: 500}, 300, false},
	} {
		if got := sinkExact(tc.counted, tc.d, tc.distinct); got != tc.want {
			t.Errorf("%s: sinkExact = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// sealed is a reply as an application in safe mode sends it: text to openID from gh_bench,
// encrypted with key for appID and signed with token.
func sealed(t *testing.T, token, key, appID, openID, text string) []byte {
	t.Helper()
	c, err := wxcrypto.NewCipher(key, appID)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := wxreply.MarshalText(openID, "gh_bench", text, time.Now().Unix())
	if err != nil {
		t.Fatal(err)
	}
	enc, err := c.Encrypt(plain)
	if err != nil {
		t.Fatal(err)
	}
	ts, nonce := strconv.FormatInt(time.Now().Unix(), 10), "1234567890"
	env, err := wxreply.MarshalEnvelope(enc, wxcrypto.Signature(token, ts, nonce, enc), ts, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// TestReplyProblem: a reply counts as the application's only if WeChat would show it to the
// follower: encrypted for the account, signed with its token, addressed to the sender, saying
// what the application says.
func TestReplyProblem(t *testing.T) {
	acct, other := harness.NewAccount(), harness.NewAccount()
	p, err := harness.NewPusher(acct)
	if err != nil {
		t.Fatal(err)
	}
	const openID, want = "o-user", "you said: hello"
	ok := func(body []byte) harness.Outcome { return harness.Outcome{Status: http.StatusOK, Body: body} }
	for _, tc := range []struct {
		name    string
		o       harness.Outcome
		problem string // a part of the problem; "" for none
	}{
		{"the application's reply", ok(sealed(t, acct.Token, acct.EncodingAESKey, acct.AppID, openID, want)), ""},
		{"another text", ok(sealed(t, acct.Token, acct.EncodingAESKey, acct.AppID, openID, "you said: hell")), `want "you said: hello"`},
		{"to someone else", ok(sealed(t, acct.Token, acct.EncodingAESKey, acct.AppID, "o-other", want)), "want from gh_bench"},
		{"signed with another token", ok(sealed(t, other.Token, acct.EncodingAESKey, acct.AppID, openID, want)), "MsgSignature"},
		{"encrypted with another key", ok(sealed(t, acct.Token, other.EncodingAESKey, acct.AppID, openID, want)), "does not decrypt"},
		{"for another AppID", ok(sealed(t, acct.Token, acct.EncodingAESKey, other.AppID, openID, want)), "does not decrypt"},
		{"success", ok([]byte("success")), "not an encrypted reply"},
		{"plaintext in safe mode", ok([]byte("<xml><ToUserName><![CDATA[o-user]]></ToUserName><Content><![CDATA[you said: hello]]></Content></xml>")), "not an encrypted reply"},
		{"an error status", harness.Outcome{Status: http.StatusServiceUnavailable}, "status 503"},
		{"no answer", harness.Outcome{}, "status 0"},
	} {
		got := replyProblem(p, tc.o, openID, want)
		if (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
			t.Errorf("%s: problem %q, want one with %q", tc.name, got, tc.problem)
		}
	}
}

// TestForwardingLoadMatchesTheApplication: the replies the benchmark expects are the ones the
// demo application gives, straight and behind the gateway's headers, so that a change of the
// application fails here rather than as wrong replies in a benchmark run.
func TestForwardingLoadMatchesTheApplication(t *testing.T) {
	acct := harness.NewAccount()
	p, err := harness.NewPusher(acct)
	if err != nil {
		t.Fatal(err)
	}
	app, err := demoapp.NewApp(acct.Token, acct.AppID, acct.EncodingAESKey, clock.RealClock{}, quiet{})
	if err != nil {
		t.Fatal(err)
	}
	direct := httptest.NewServer(app)
	defer direct.Close()
	var codes []*qrv1alpha1.WeChatQRCode
	for i := range 3 {
		c := harness.Temporary("shop", harness.CodeName(i), int64(i+1), time.Hour, 0)
		c.Status = qrv1alpha1.WeChatQRCodeStatus{Ticket: "T" + strconv.Itoa(i)}
		codes = append(codes, c)
	}
	c := gatewayConfig{Pushes: 8, ScanShare: 0.5}
	load, err := c.forwardingLoad(p, codes, 1, c.Pushes)
	if err != nil {
		t.Fatal(err)
	}
	var scans int
	for _, g := range load {
		if g.code != nil {
			scans++
		}
	}
	if scans != 4 {
		t.Fatalf("%d scans in 8 pushes, want 4", scans)
	}
	for i, g := range load {
		// What the gateway tells the application of a scan, as internal/callback does.
		header := http.Header{}
		if g.code != nil {
			header = http.Header{forward.HeaderCodeNamespace: {g.code.Namespace}, forward.HeaderCodeName: {g.code.Name}, forward.HeaderScan: {"new"}}
		}
		through := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for k, v := range header {
				r.Header[http.CanonicalHeaderKey(k)] = v
			}
			app.ServeHTTP(w, r)
		}))
		for _, path := range []struct {
			url, want string
		}{{direct.URL, g.direct}, {through.URL, g.through}} {
			sender := &harness.Sender{Targets: []string{path.url}, Workers: 1, Tries: 1, Timeout: 5 * time.Second, Replies: true}
			o := sender.Send(context.Background(), []*harness.Push{g.push})[0]
			if problem := replyProblem(p, o, g.openID, path.want); problem != "" {
				t.Errorf("push %d to %s: %s", i, path.url, problem)
			}
		}
		through.Close()
	}
}

// TestReceiver: the sink counts scan events as the SDK sends them, a retry's id once among the
// distinct ones, and refuses other events without counting them.
func TestReceiver(t *testing.T) {
	rc := startReceiver()
	defer rc.srv.Close()
	c, err := cloudevents.NewClientHTTP()
	if err != nil {
		t.Fatal(err)
	}
	ctx := cloudevents.ContextWithTarget(context.Background(), rc.srv.URL)
	e := cloudevents.NewEvent()
	e.SetID("uMNcS1bz2qWL")
	e.SetType(delivery.EventType)
	e.SetSource("/wechat/wxbench/namespaces/shop/wechatqrcodes/code-0")
	if err := e.SetData(cloudevents.ApplicationJSON, delivery.ScanEvent{Namespace: "shop", Name: "code-0", Scene: "1", OpenID: "o-bench", Event: "SCAN"}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if res := c.Send(ctx, e); !cloudevents.IsACK(res) {
			t.Fatalf("scan event: %v", res)
		}
	}
	other := e.Clone()
	other.SetType("io.example.other")
	if res := c.Send(ctx, other); cloudevents.IsACK(res) {
		t.Fatal("another type of event was acknowledged")
	}
	if received, distinct := rc.counts(); received != 2 || distinct != 1 {
		t.Errorf("received %d events, %d distinct; want 2, 1", received, distinct)
	}
}

// TestPooled: loads pooled are their events and times added up, so the pooled rate weighs each
// load by its time; the latencies are the slowest load's.
func TestPooled(t *testing.T) {
	a := load{Summary: harness.Summary{Sent: 100, Acked: 100, P50: 2 * time.Millisecond, P99: 9 * time.Millisecond}, elapsed: time.Second, counted: 100}
	b := load{Summary: harness.Summary{Sent: 300, Acked: 290, Failed: 10, P50: 3 * time.Millisecond, P99: 5 * time.Millisecond}, elapsed: 3 * time.Second, counted: 290, wrong: 1}
	p := pooled([]load{a, b})
	if p.Sent != 400 || p.Acked != 390 || p.Failed != 10 || p.counted != 390 || p.wrong != 1 || p.elapsed != 4*time.Second ||
		p.P50 != 3*time.Millisecond || p.P99 != 9*time.Millisecond {
		t.Errorf("pooled %+v", p)
	}
	if got := p.rate(); got != 97.5 {
		t.Errorf("pooled rate %v, want 390 events in 4 s", got)
	}
}

// TestPassOrder: every mode runs once a pass, and over two passes each has the same mean position.
func TestPassOrder(t *testing.T) {
	for _, tc := range []struct {
		pass int
		want []sinkMode
	}{
		{0, []sinkMode{noSink, binarySink, batchedSink}},
		{1, []sinkMode{batchedSink, binarySink, noSink}},
		{2, []sinkMode{noSink, binarySink, batchedSink}},
	} {
		if got := passOrder(tc.pass); !slices.Equal(got, tc.want) {
			t.Errorf("pass %d: %v, want %v", tc.pass, got, tc.want)
		}
	}
}

// TestCPUPerScan: the replica's CPU over all its loads per scan acknowledged over all of them.
func TestCPUPerScan(t *testing.T) {
	run := func(cpu float64, acked int) sunk {
		return sunk{load: load{Summary: harness.Summary{Acked: acked}}, cpu: cpu}
	}
	for _, tc := range []struct {
		name string
		runs []sunk
		want float64
	}{
		{"one load", []sunk{run(2, 20000)}, 100},
		{"pooled, not averaged", []sunk{run(1, 20000), run(3, 20000)}, 100},
		{"uneven loads weigh by scans", []sunk{run(1, 10000), run(1, 30000)}, 50},
		{"nothing acknowledged", []sunk{run(1, 0)}, 0},
	} {
		if got := cpuPerScan(tc.runs); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: %v µs, want %v", tc.name, got, tc.want)
		}
	}
}

// TestDeliveriesArithmetic: a pass's deliveries are the replica's after minus before its
// warm-up, and the passes add up, the requests with the events.
func TestDeliveriesArithmetic(t *testing.T) {
	before := deliveries{ok: 100, expired: 1, other: 2, requests: 10, requestEvents: 103}
	after := deliveries{ok: 1100, expired: 1, other: 3, requests: 30, requestEvents: 1104}
	pass := after.minus(before)
	if want := (deliveries{ok: 1000, other: 1, requests: 20, requestEvents: 1001}); pass != want {
		t.Errorf("minus: %+v, want %+v", pass, want)
	}
	if got, want := pass.plus(pass), (deliveries{ok: 2000, other: 2, requests: 40, requestEvents: 2002}); got != want {
		t.Errorf("plus: %+v, want %+v", got, want)
	}
}

// TestSinkFigures: the three modes' figures, each sink mode's ratio against the no-sink loads of
// the same passes and its own exactness goal.
func TestSinkFigures(t *testing.T) {
	run := func(acked int, secs float64, d deliveries, distinct int) sunk {
		return sunk{load: load{Summary: harness.Summary{Sent: acked, Acked: acked}, elapsed: time.Duration(secs * float64(time.Second)), counted: int64(acked)},
			d: d, received: distinct, distinct: distinct, delivered: 1000, cpu: float64(acked) * 50e-6}
	}
	var runs [sinkModes][]sunk
	runs[noSink] = []sunk{run(8000, 1, deliveries{}, 0), run(8000, 1, deliveries{}, 0)}
	runs[binarySink] = []sunk{run(6000, 1, deliveries{ok: 5000, expired: 1000, requests: 5000, requestEvents: 5000}, 5000), run(6000, 1, deliveries{ok: 6000, requests: 6000, requestEvents: 6000}, 6000)}
	runs[batchedSink] = []sunk{run(7600, 1, deliveries{ok: 7600, requests: 76, requestEvents: 7600}, 7600), run(7600, 1, deliveries{ok: 7600, requests: 76, requestEvents: 7600}, 7600)}
	byName := map[string]Figure{}
	for _, f := range sinkFigures(runs) {
		byName[f.Name] = f
	}
	for _, tc := range []struct {
		name  string
		value float64
		met   string // "", "met", "missed"
	}{
		{"hot_events_per_second_no_sink", 8000, ""},
		{"sink_vs_no_sink", 0.75, "missed"},
		{"sink_events_received", 11000, "missed"},
		{"sink_batch_events_per_second", 7600, ""},
		{"sink_batch_vs_no_sink", 0.95, "met"},
		{"sink_batch_events_received", 15200, "met"},
		{"hot_sink_batch_counted", 15200, "met"},
		{"callback_cpu_per_scan_sink_batch", 50, ""},
	} {
		f, ok := byName[tc.name]
		if !ok {
			t.Errorf("no figure %s", tc.name)
			continue
		}
		met := ""
		if f.Met != nil {
			met = map[bool]string{true: "met", false: "missed"}[*f.Met]
		}
		if math.Abs(f.Value-tc.value) > 1e-6 || met != tc.met {
			t.Errorf("%s = %v (%s), want %v (%s)", tc.name, f.Value, met, tc.value, tc.met)
		}
	}
	if d := byName["sink_batch_events_received"].Detail; !strings.Contains(d, "152 requests, 100.0 events a request") {
		t.Errorf("batched detail %q does not give the events per request", d)
	}
}

// TestOwnDeletes: the steady load is charged one DELETE per segment it created, not the earlier
// loads' segments the folder happened to collect during it.
func TestOwnDeletes(t *testing.T) {
	writes := map[string]float64{"POST wechatscanledgers": 40, "DELETE wechatscanledgers": 247, "PATCH wechatscanledgers": 254}
	if got := ownDeletes(writes); got != 247 {
		t.Errorf("measured deletes %v, want 247", got)
	}
	want := map[string]float64{"POST wechatscanledgers": 40, "DELETE wechatscanledgers": 40, "PATCH wechatscanledgers": 254}
	for k, v := range want {
		if writes[k] != v {
			t.Errorf("%s: %v, want %v", k, writes[k], v)
		}
	}
}
