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
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
)

// batchReceiver is a sink that reads batches with the CloudEvents SDK, as an application would,
// and answers each request with the next of statuses (the last one once they run out). Before
// answering it waits for hold, when set, to be closed.
type batchReceiver struct {
	url      string
	hold     chan struct{}
	statuses []int

	mu       sync.Mutex
	requests [][]string // the ids of each request's events, in order
}

func newBatchReceiver(t *testing.T, hold chan struct{}, statuses ...int) *batchReceiver {
	t.Helper()
	r := &batchReceiver{hold: hold, statuses: statuses}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if !cehttp.IsHTTPBatch(req.Header) {
			http.Error(w, "not a batch: "+req.Header.Get("Content-Type"), http.StatusUnsupportedMediaType)
			return
		}
		events, err := cehttp.NewEventsFromHTTPRequest(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var ids []string
		for _, e := range events {
			if e.Type() != ScanEventType {
				http.Error(w, "not a scan event", http.StatusBadRequest)
				return
			}
			ids = append(ids, e.ID())
		}
		r.mu.Lock()
		r.requests = append(r.requests, ids)
		status := r.statuses[min(len(r.requests), len(r.statuses))-1]
		r.mu.Unlock()
		if r.hold != nil {
			<-r.hold
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(srv.Close)
	r.url = srv.URL + "/"
	return r
}

func (r *batchReceiver) got() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.requests)
}

// requestEvents is the count and sum of the events-per-request histogram.
func requestEvents(t *testing.T) (requests uint64, events float64) {
	t.Helper()
	var m dto.Metric
	if err := sinkRequestEvents.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestSinkBatchedScans: an account sink with spec.sink.batch gets, in batched content mode, exactly
// the counted scans, each once (WeChat's retry makes no second event), their ids the scans' dedupe
// keys, no request over maxEvents; each event counts in the deliveries metric and each request in
// the events-per-request histogram.
func TestSinkBatchedScans(t *testing.T) {
	const maxEvents, scans = 3, 12
	sink := newBatchReceiver(t, nil, http.StatusAccepted)
	counter := newStubCounter()
	s, _, pushers := unitServer(t, counter)
	keys := *s.keyring.lookup("wxplain")
	keys.account = pushconfig.Account{SinkURI: sink.url, SinkMaxEvents: maxEvents}
	s.keyring.byAppID.Store(&map[string]*pushKeys{"wxplain": &keys})
	ok := deliveries(deliveryOK)
	requestsBefore, eventsBefore := requestEvents(t)

	var want []string
	for i := range scans {
		m := &pushwire.Message{FromUserName: fmt.Sprint("o-batch-", i), CreateTime: fmt.Sprint(1700002000 + i), Event: "SCAN", EventKey: "1"}
		want = append(want, eventKey(m))
		push := pushers[plaintext].build(t, scanXML(m.FromUserName, int64(1700002000+i), "SCAN", "1", "TICKET-P"))
		mustServe(t, s, push)
		if i == 0 {
			mustServe(t, s, push) // WeChat's retry
		}
	}
	waitFor(t, "the deliveries", func() bool { return deliveries(deliveryOK) == ok+scans && s.sinks.idle() })

	if got := counter.scansOf("plain"); got != scans {
		t.Fatalf("%d scans counted, want %d", got, scans)
	}
	var got []string
	for _, ids := range sink.got() {
		if len(ids) > maxEvents {
			t.Errorf("a request of %d events, over maxEvents %d", len(ids), maxEvents)
		}
		got = append(got, ids...)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("the sink got ids %v, want the dedupe keys %v", got, want)
	}
	requests, events := requestEvents(t)
	if requests-requestsBefore != uint64(len(sink.got())) || events-eventsBefore != scans {
		t.Errorf("histogram: %d requests of %v events, want %d of %d", requests-requestsBefore, events-eventsBefore, len(sink.got()), scans)
	}
}

// batchOf publishes n scan events to target on s, with ids prefix-0, prefix-1, ….
func batchOf(t *testing.T, s *sinks, target sinkTarget, prefix string, n int) []string {
	t.Helper()
	code := newCode("ns", "c", "wxplain", "T", 1, "")
	var ids []string
	for i := range n {
		id := fmt.Sprint(prefix, "-", i)
		e, err := scanEvent("wxplain", code, &scan{kind: kindQRScan, scene: "1", key: id}, &pushwire.Message{CreateTime: "1700002100"})
		if err != nil {
			t.Fatal(err)
		}
		s.publish(e, target)
		ids = append(ids, id)
	}
	return ids
}

// TestSinkBatchGrowsUnderLoad: a quiet sink gets its event at once, alone; the events that queue
// while a request is out go in the next requests, maxEvents at most each, in order.
func TestSinkBatchGrowsUnderLoad(t *testing.T) {
	hold := make(chan struct{})
	sink := newBatchReceiver(t, hold, http.StatusAccepted)
	s := newSinks(clocktesting.NewFakeClock(time.Now()), 1, DefaultOptions().SinkQueueSize, ctrl.Log)
	target := sinkTarget{uri: sink.url, maxEvents: 4}
	first := batchOf(t, s, target, "first", 1)
	waitFor(t, "the first request", func() bool { return len(sink.got()) == 1 })
	queued := batchOf(t, s, target, "queued", 10)
	close(hold)
	waitFor(t, "the queue to drain", s.idle)
	want := [][]string{first, queued[:4], queued[4:8], queued[8:]}
	if got := sink.got(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("requests %v, want %v", got, want)
	}
}

// TestSinkBatchRetried: a batch the sink fails (500) is sent again whole, with the same ids, after
// the backoff; a batch it rejects (4xx) is not, and every event of it counts as rejected.
func TestSinkBatchRetried(t *testing.T) {
	t.Run("500 then 200", func(t *testing.T) {
		hold := make(chan struct{})
		sink := newBatchReceiver(t, hold, http.StatusOK, http.StatusInternalServerError, http.StatusOK)
		clk := clocktesting.NewFakeClock(time.Now())
		s := newSinks(clk, 1, DefaultOptions().SinkQueueSize, ctrl.Log)
		ok, retries := deliveries(deliveryOK), testutil.ToFloat64(sinkRetries)
		target := sinkTarget{uri: sink.url, maxEvents: 5}
		// The first request is held, so that the batch under test queues meanwhile.
		first := batchOf(t, s, target, "retried-first", 1)
		waitFor(t, "the first request", func() bool { return len(sink.got()) == 1 })
		ids := batchOf(t, s, target, "retried", 3)
		close(hold)
		// The try's deadline is stopped before the retry is counted: the waiter is the backoff.
		waitFor(t, "the failed try's backoff", func() bool { return testutil.ToFloat64(sinkRetries) == retries+1 && clk.HasWaiters() })
		clk.Step(sinkBackoff)
		waitFor(t, "the second try", func() bool { return deliveries(deliveryOK) == ok+4 })
		if got := sink.got(); !slices.EqualFunc(got, [][]string{first, ids, ids}, slices.Equal) {
			t.Errorf("requests %v, want %v, then the batch %v twice", got, first, ids)
		}
		if got := testutil.ToFloat64(sinkRetries) - retries; got != 1 {
			t.Errorf("%v retries, want 1", got)
		}
	})
	t.Run("4xx", func(t *testing.T) {
		hold := make(chan struct{})
		sink := newBatchReceiver(t, hold, http.StatusUnprocessableEntity)
		s := newSinks(clocktesting.NewFakeClock(time.Now()), 1, DefaultOptions().SinkQueueSize, ctrl.Log)
		rejected, retries := deliveries(deliveryRejected), testutil.ToFloat64(sinkRetries)
		target := sinkTarget{uri: sink.url, maxEvents: 10}
		first := batchOf(t, s, target, "rejected-first", 1)
		waitFor(t, "the first request", func() bool { return len(sink.got()) == 1 })
		rest := batchOf(t, s, target, "rejected", 6)
		close(hold)
		waitFor(t, "the rejections", s.idle)
		if got := deliveries(deliveryRejected) - rejected; got != 7 {
			t.Errorf("%v events rejected, want 7 (counted per event)", got)
		}
		if got := sink.got(); !slices.EqualFunc(got, [][]string{first, rest}, slices.Equal) || testutil.ToFloat64(sinkRetries) != retries {
			t.Errorf("requests %v, want %v and %v once each", got, first, rest)
		}
	})
}

// TestSinkBinaryModeUnbatched: a sink without spec.sink.batch gets one binary-mode event per
// request, however many are queued.
func TestSinkBinaryModeUnbatched(t *testing.T) {
	var mu sync.Mutex
	var modes []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		modes = append(modes, r.Header.Get("Ce-Id")+" "+e.ID())
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(srv.Close)
	s := newSinks(clocktesting.NewFakeClock(time.Now()), 1, DefaultOptions().SinkQueueSize, ctrl.Log)
	ids := batchOf(t, s, sinkTarget{uri: srv.URL}, "binary", 5)
	waitFor(t, "the deliveries", s.idle)
	var want []string
	for _, id := range ids {
		want = append(want, id+" "+id) // the id in the Ce-Id header: binary mode
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(modes, want) {
		t.Errorf("requests %q, want %q", modes, want)
	}
}

func TestPerRequest(t *testing.T) {
	for _, tc := range []struct {
		maxEvents int32
		want      int
	}{{0, 1}, {2, 2}, {100, 100}, {1000, 1000}} {
		if got := perRequest(tc.maxEvents); got != tc.want {
			t.Errorf("perRequest(%d) = %d, want %d", tc.maxEvents, got, tc.want)
		}
	}
}

func TestVerdict(t *testing.T) {
	for _, tc := range []struct {
		status int
		want   string
	}{
		{0, ""}, {100, ""}, {200, deliveryOK}, {202, deliveryOK}, {204, deliveryOK}, {299, deliveryOK}, {302, ""},
		{400, deliveryRejected}, {404, deliveryRejected}, {413, deliveryRejected}, {415, deliveryRejected},
		{408, ""}, {429, ""}, {500, ""}, {502, ""}, {503, ""},
	} {
		if got := verdict(tc.status); got != tc.want {
			t.Errorf("verdict(%d) = %q, want %q", tc.status, got, tc.want)
		}
	}
}

// TestTakeQueued: the first event and what is queued already, up to n, without waiting for more.
func TestTakeQueued(t *testing.T) {
	event := func(id string) cloudevents.Event {
		e := cloudevents.NewEvent()
		e.SetID(id)
		return e
	}
	for _, tc := range []struct {
		name           string
		queued, n      int
		want, leftover int
	}{
		{"binary", 3, 1, 1, 3},
		{"quiet", 0, 10, 1, 0},
		{"some queued", 3, 10, 4, 0},
		{"more queued than room", 20, 10, 10, 11},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := make(chan cloudevents.Event, tc.queued)
			for i := range tc.queued {
				q <- event(fmt.Sprint(i))
			}
			got := takeQueued(q, event("first"), tc.n)
			if len(got) != tc.want || got[0].ID() != "first" || len(q) != tc.leftover {
				t.Errorf("took %d (first %s), left %d; want %d, first, %d", len(got), got[0].ID(), len(q), tc.want, tc.leftover)
			}
			for i, e := range got[1:] {
				if e.ID() != fmt.Sprint(i) {
					t.Errorf("event %d is %s: not in queue order", i+1, e.ID())
				}
			}
		})
	}
}
