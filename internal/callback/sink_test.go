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

package callback

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
)

// receiver is a sink built with the CloudEvents SDK, as an application would build it.
type receiver struct {
	url string

	mu     sync.Mutex
	events []cloudevents.Event
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClientHTTP(cehttp.WithListener(l))
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + l.Addr().String() + "/"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.StartReceiver(ctx, func(e cloudevents.Event) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, e)
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *receiver) received() []cloudevents.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cloudevents.Event(nil), r.events...)
}

func deliveries(result string) float64 {
	return testutil.ToFloat64(sinkDeliveries.WithLabelValues(result))
}

// TestSinks: each counted scan is one CloudEvent on the account's sink and on its code's own;
// WeChat's retry of a scan makes none; the event's id is the scan's dedupe key, and its data says
// who scanned which code.
func TestSinks(t *testing.T) {
	accountSink, codeSink := newReceiver(t), newReceiver(t)
	plain := newCode("ns", "login-4711", "wxplain", "TICKET-L", 4711, "")
	plain.Status.SinkURI = codeSink.url
	counter := newStubCounter()
	s, _, pushers := unitServer(t, counter, plain)
	keys := *s.keyring.lookup("wxplain")
	keys.account = pushconfig.Account{SinkURI: accountSink.url}
	s.keyring.byAppID.Store(&map[string]*pushKeys{"wxplain": &keys, "wxsafe": s.keyring.lookup("wxsafe")})
	p := pushers[plaintext]
	okBefore := deliveries(deliveryOK)

	subscribe := scanXML("o-login", 1700000600, "subscribe", "qrscene_4711", "TICKET-L")
	for range 2 { // WeChat's retry: the same push again
		mustServe(t, s, p.build(t, subscribe))
	}
	mustServe(t, s, p.build(t, scanXML("o-other", 1700000601, "SCAN", "1", "TICKET-P")))
	mustServe(t, s, p.build(t, textXML("o-other", 1700000602, "not a scan")))
	waitFor(t, "the deliveries", func() bool { return deliveries(deliveryOK) == okBefore+3 && s.sinks.idle() })

	key := eventKey(&pushwire.Message{FromUserName: "o-login", CreateTime: "1700000600", Event: "subscribe", EventKey: "qrscene_4711"})
	want := ScanEvent{Namespace: "ns", Name: "login-4711", Scene: "4711", Ticket: "TICKET-L", OpenID: "o-login", Event: "subscribe"}
	acc, code := accountSink.received(), codeSink.received()
	if len(acc) != 2 || len(code) != 1 {
		t.Fatalf("the account's sink got %d events, the code's %d; want 2 and 1", len(acc), len(code))
	}
	// Workers deliver concurrently: the account's sink may get the two events in either order.
	slices.SortFunc(acc, func(a, b cloudevents.Event) int { return strings.Compare(a.Subject(), b.Subject()) })
	for _, e := range []cloudevents.Event{acc[0], code[0]} {
		var got ScanEvent
		if err := e.DataAs(&got); err != nil {
			t.Fatal(err)
		}
		if e.ID() != key || e.Type() != ScanEventType || e.Source() != "/wechat/wxplain/namespaces/ns/wechatqrcodes/login-4711" ||
			!e.Time().Equal(time.Unix(1700000600, 0)) || got != want {
			t.Errorf("event %s, data %+v; want id %s and %+v", e, got, key, want)
		}
	}
	var other ScanEvent
	if err := acc[1].DataAs(&other); err != nil || other.Name != "plain" || other.Event != "SCAN" || other.OpenID != "o-other" {
		t.Errorf("second event %+v (%v)", other, err)
	}
}

func mustServe(t *testing.T, s *Server, p *push) {
	t.Helper()
	status, body := p.serve(s)
	wantOK(t, status, body, "success")
}

// TestSinkDown: a sink that cannot be reached neither fails nor delays the push; the event is
// tried sinkAttempts times with backoff on the clock, then counted as failed; the scan is counted.
func TestSinkDown(t *testing.T) {
	down := unreachableURL(t)
	counter := newStubCounter()
	s, clk, pushers := unitServer(t, counter)
	keys := *s.keyring.lookup("wxplain")
	keys.account = pushconfig.Account{SinkURI: down}
	s.keyring.byAppID.Store(&map[string]*pushKeys{"wxplain": &keys})
	failed, retries := deliveries(deliveryFailed), testutil.ToFloat64(sinkRetries)

	mustServe(t, s, pushers[plaintext].build(t, scanXML("o-down", 1700000700, "SCAN", "1", "TICKET-P")))
	if counter.scansOf("plain") != 1 {
		t.Fatal("the scan was not counted")
	}
	waitFor(t, "the event to be given up", func() bool {
		if clk.HasWaiters() {
			clk.Step(time.Minute)
		}
		return deliveries(deliveryFailed) == failed+1
	})
	if got := testutil.ToFloat64(sinkRetries) - retries; got != sinkAttempts-1 {
		t.Errorf("%v retries, want %d", got, sinkAttempts-1)
	}
}

// testSinks are sinks with the default sizes, on clk.
func testSinks(clk clock.WithDelayedExecution) *sinks {
	o := DefaultOptions()
	return newSinks(clk, o.SinkWorkers, o.SinkQueueSize, ctrl.Log)
}

// TestSinkQueueBounded: a sink's queue holds its queue size of events; more are dropped and
// counted, and other sinks are unaffected.
func TestSinkQueueBounded(t *testing.T) {
	block := make(chan struct{})
	stuck := newReceiverBlocking(t, block)
	other := newReceiver(t)
	s := testSinks(clocktesting.NewFakeClock(time.Now()))
	code := newCode("ns", "c", "wxplain", "T", 1, "")
	dropped, okBefore := deliveries("dropped"), deliveries(deliveryOK)
	// The workers take one event each off the queue before it fills.
	for i := range s.queueSize + s.workers + 10 {
		e, err := scanEvent("wxplain", code, &scan{kind: kindQRScan, scene: "1", key: strconv.Itoa(i)}, &pushwire.Message{CreateTime: "1700000800"})
		if err != nil {
			t.Fatal(err)
		}
		s.publish(e, sinkTarget{uri: stuck})
	}
	waitFor(t, "the overflow to be dropped", func() bool { return deliveries("dropped") >= dropped+10 })
	e, _ := scanEvent("wxplain", code, &scan{kind: kindQRScan, scene: "1", key: "other"}, &pushwire.Message{CreateTime: "1700000800"})
	s.publish(e, sinkTarget{uri: other.url})
	waitFor(t, "the other sink's event", func() bool { return len(other.received()) == 1 })
	close(block)
	waitFor(t, "the stuck sink to drain", func() bool { return s.idle() })
	if got := deliveries(deliveryOK) - okBefore; got+deliveries("dropped")-dropped != float64(s.queueSize+s.workers+10+1) {
		t.Errorf("%v delivered and %v dropped of %d", got, deliveries("dropped")-dropped, s.queueSize+s.workers+11)
	}
}

// newReceiverBlocking is a sink that answers nothing until block is closed.
func newReceiverBlocking(t *testing.T, block chan struct{}) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-block
		w.WriteHeader(http.StatusAccepted)
	}), ReadHeaderTimeout: time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String() + "/"
}

// heldSink is a sink that holds every request until release is closed or the client gives up.
func heldSink(t *testing.T, release chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Only once the body is read does the server notice that the client gave up.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-release:
			w.WriteHeader(http.StatusAccepted)
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// stopping publishes n events to uri on fresh sinks whose sink holds them, waits until every
// worker is delivering, then stops the sinks as the manager does; done closes when Start returns.
func stopping(t *testing.T, uri string, n int) (s *sinks, clk *clocktesting.FakeClock, done chan struct{}) {
	t.Helper()
	clk = clocktesting.NewFakeClock(time.Now())
	s = testSinks(clk)
	code := newCode("ns", "c", "wxplain", "T", 1, "")
	for i := range n {
		e, err := scanEvent("wxplain", code, &scan{kind: kindQRScan, scene: "1", key: "drain-" + strconv.Itoa(i)}, &pushwire.Message{CreateTime: "1700000900"})
		if err != nil {
			t.Fatal(err)
		}
		s.publish(e, sinkTarget{uri: uri})
	}
	// Each delivering worker waits on its try's deadline.
	waitFor(t, "the workers to deliver", func() bool { return clk.Waiters() == s.workers })
	ctx, cancel := context.WithCancel(context.Background())
	done = make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Start(ctx); err != nil {
			t.Error(err)
		}
	}()
	cancel()
	return s, clk, done
}

// TestSinkDrainOnStop: when the replica stops, the queued and in-flight events are delivered
// within the grace period and Start returns only then; the events a dead sink still holds when
// the grace period is over are abandoned and counted so, and Start returns at its end.
func TestSinkDrainOnStop(t *testing.T) {
	n := 3 * DefaultOptions().SinkWorkers
	t.Run("drained", func(t *testing.T) {
		release := make(chan struct{})
		ok := deliveries(deliveryOK)
		s, _, done := stopping(t, heldSink(t, release), n)
		close(release)
		<-done
		// Start returned: everything queued at the stop was delivered first.
		if got := deliveries(deliveryOK) - ok; got != float64(n) || !s.idle() {
			t.Fatalf("%v of %d events delivered when Start returned", got, n)
		}
	})
	t.Run("grace over", func(t *testing.T) {
		abandoned, ok := deliveries(deliveryAbandoned), deliveries(deliveryOK)
		s, clk, done := stopping(t, heldSink(t, make(chan struct{})), n)
		// The drain's timer joins the tries' deadlines.
		waitFor(t, "the drain", func() bool { return clk.Waiters() == s.workers+1 })
		clk.Step(sinkGrace)
		<-done
		waitFor(t, "the workers to give up", s.idle)
		if got := deliveries(deliveryAbandoned) - abandoned; got != float64(n) || deliveries(deliveryOK) != ok {
			t.Fatalf("%v of %d events abandoned, %v delivered", got, n, deliveries(deliveryOK)-ok)
		}
	})
}

// TestSinkKeepsConnections: bursts of as many events as workers, all in flight at once, reuse the
// connections of the first burst: a connection pool smaller than the workers (net/http keeps 2
// idle per host by default) would close some after each burst and open them again for the next.
func TestSinkKeepsConnections(t *testing.T) {
	const workers, bursts = 8, 5
	var mu sync.Mutex
	arrived, open := 0, make(chan struct{})
	var opened atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		// Every request of a burst waits for the others: the burst holds all the workers at once.
		mu.Lock()
		arrived++
		all := open
		if arrived == workers {
			close(open)
			arrived, open = 0, make(chan struct{})
		}
		mu.Unlock()
		<-all
		w.WriteHeader(http.StatusAccepted)
	}))
	srv.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		if state == http.StateNew {
			opened.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	s := newSinks(clocktesting.NewFakeClock(time.Now()), workers, DefaultOptions().SinkQueueSize, ctrl.Log)
	code := newCode("ns", "c", "wxplain", "T", 1, "")
	ok := deliveries(deliveryOK)
	for b := range bursts {
		for i := range workers {
			e, err := scanEvent("wxplain", code, &scan{kind: kindQRScan, scene: "1", key: fmt.Sprintf("burst-%d-%d", b, i)}, &pushwire.Message{CreateTime: "1700001000"})
			if err != nil {
				t.Fatal(err)
			}
			s.publish(e, sinkTarget{uri: srv.URL})
		}
		waitFor(t, "the burst to be delivered", s.idle)
	}
	if got := deliveries(deliveryOK) - ok; got != workers*bursts {
		t.Fatalf("%v of %d events delivered", got, workers*bursts)
	}
	if got := opened.Load(); got != workers {
		t.Errorf("%d connections opened for %d bursts of %d events, want %d", got, bursts, workers, workers)
	}
}
