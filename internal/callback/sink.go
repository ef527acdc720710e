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
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
)

// Scan events on the sinks (spec.sink of the account and of the code), as CloudEvents over HTTP
// in binary mode, or in batched content mode for a sink with spec.sink.batch: a worker then takes
// its event and whatever else is queued already, up to maxEvents, so that a quiet sink gets each
// event at once and a busy one fewer, larger requests, with no waiting to fill a batch.
//
// Delivery never fails nor delays the push: by the time an event is queued its scan is durable in
// the ledger, so failing the push would only make WeChat retry into the dedupe, and a sink that
// is down would turn into followers seeing "该公众号暂时无法提供服务". Each sink has its own bounded
// queue (--sink-queue-size), drained by its workers (--sink-workers) that retry with backoff, so
// a dead sink holds up neither the push path nor other sinks or accounts. Delivery is at least once while the replica lives: an
// event (a batch, as a whole) is retried until the sink acknowledges it, answers a 4xx other than 408 and 429 (the
// event is then dropped as rejected), or sinkAttempts tries fail; an event that finds its queue
// full is dropped. When the replica stops, queued events get sinkGrace to be delivered (the
// push server still serves meanwhile: the manager stops it last); those left then are abandoned,
// and the count is the record of truth. Retries of the same scan
// that reach another replica give a second event with the same id: sinks dedupe by source and id.

// ScanEventType is the CloudEvents type of a counted scan.
const ScanEventType = "io.qrcode-operator.wechat.qrcode.scanned"

// ScanEvent is the data of a scan event.
type ScanEvent struct {
	// Namespace and Name of the WeChatQRCode scanned.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Scene of the code as WeChat reports it: the scene id in decimal, or the scene string.
	Scene string `json:"scene"`
	// Ticket scanned, when WeChat says.
	Ticket string `json:"ticket,omitempty"`
	// OpenID of the user who scanned, for this account.
	OpenID string `json:"openID"`
	// Event is "subscribe" (the user followed by scanning) or "SCAN" (a follower scanned).
	Event string `json:"event"`
}

// Delivery bounds; the queue's size and the workers per sink are Options.
const (
	sinkAttempts = 6
	sinkTimeout  = 5 * time.Second
	sinkBackoff  = 500 * time.Millisecond // doubled after each failed try: 15.5 s in all
	// sinkGrace bounds the drain when the replica stops: with the push server's own shutdown
	// (--reply-deadline + 1 s) it stays well inside the Pod's 30 s termination grace period.
	sinkGrace = 5 * time.Second
)

// Results of a delivery, the result label of the deliveries metric.
const (
	deliveryOK        = "ok"
	deliveryRejected  = "rejected"  // a 4xx: retrying would not help
	deliveryFailed    = "failed"    // every try failed
	deliveryAbandoned = "abandoned" // the replica stopped and sinkGrace passed first
)

// sinks queues and delivers scan events, one queue per sink URI and batch size.
type sinks struct {
	client cloudevents.Client
	// batches sends batched mode's requests, over the same transport as client.
	batches *http.Client
	clock   clock.WithDelayedExecution
	log     logr.Logger
	// workers and queueSize bound each sink's concurrent deliveries and waiting events.
	workers, queueSize int
	// ctx ends the deliveries once the replica stopped and the grace period is over.
	ctx    context.Context
	cancel context.CancelFunc
	grace  time.Duration
	// exited wakes Start's drain when a worker has exited.
	exited chan struct{}
	// drops lets one "dropped" line per sink through per second.
	drops sampler

	mu     sync.Mutex
	queues map[sinkTarget]*sinkQueue
}

// sinkTarget is where scan events go and how: a sink's URL and spec.sink.batch.maxEvents, 0 for
// binary mode.
type sinkTarget struct {
	uri       string
	maxEvents int32
}

type sinkQueue struct {
	sinkTarget
	events  chan cloudevents.Event
	workers int // under sinks.mu
}

func newSinks(clk clock.WithDelayedExecution, workers, queueSize int, log logr.Logger) *sinks {
	transport := sinkTransport(workers)
	c, err := cloudevents.NewClientHTTP(cehttp.WithRoundTripper(transport))
	if err != nil {
		// Only an option can fail it, and these are constant.
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &sinks{client: c, batches: &http.Client{Transport: transport}, clock: clk, log: log, workers: workers, queueSize: queueSize, ctx: ctx, cancel: cancel, grace: sinkGrace,
		exited: make(chan struct{}, 1), drops: sampler{clock: clk}, queues: map[sinkTarget]*sinkQueue{}}
}

// sinkTransport keeps a connection per worker to each sink between events: with fewer idle
// connections than workers, every burst would close and reopen some.
func sinkTransport(workers int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers
	// No limit across sinks: workers per sink bound them, and IdleConnTimeout closes those of
	// a sink no longer sent to.
	t.MaxIdleConns = 0
	return t
}

// Start delivers until ctx ends, then gives the queued and in-flight events up to the grace
// period before it abandons the rest. It is a manager Runnable; the deliveries have their own
// context, not ctx, so that they outlive the stop that starts the drain.
func (s *sinks) Start(ctx context.Context) error {
	<-ctx.Done()
	defer s.cancel()
	grace := s.clock.After(s.grace)
	for !s.idle() {
		select {
		case <-s.exited:
		case <-grace:
			s.log.Info("stopping with scan events not delivered within the grace period; they are abandoned",
				"grace", s.grace.String(), "queued", s.queued())
			return nil
		}
	}
	return nil
}

// NeedLeaderElection is false: every replica delivers the events of the scans it counted.
func (s *sinks) NeedLeaderElection() bool { return false }

// idle is true when no sink has an event queued or a worker running.
func (s *sinks) idle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range s.queues {
		if q.workers > 0 || len(q.events) > 0 {
			return false
		}
	}
	return true
}

// queued is the number of events waiting for a worker.
func (s *sinks) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, q := range s.queues {
		n += len(q.events)
	}
	return n
}

// scanEvent is the CloudEvent of a counted scan of code, reported by m to account appID; its id
// is the scan's dedupe key, which WeChat's retries keep.
func scanEvent(appID string, code *qrv1alpha1.WeChatQRCode, sc *scan, m *pushwire.Message) (cloudevents.Event, error) {
	e := cloudevents.NewEvent()
	e.SetID(sc.key)
	e.SetType(ScanEventType)
	e.SetSource(PathPrefix + appID + "/namespaces/" + code.Namespace + "/wechatqrcodes/" + code.Name)
	e.SetSubject(code.Namespace + "/" + code.Name)
	if sec, err := strconv.ParseInt(m.CreateTime, 10, 64); err == nil {
		e.SetTime(time.Unix(sec, 0).UTC())
	}
	event := "SCAN"
	if sc.kind == kindQRSubscribe {
		event = "subscribe"
	}
	err := e.SetData(cloudevents.ApplicationJSON, ScanEvent{
		Namespace: code.Namespace, Name: code.Name, Scene: sc.scene, Ticket: sc.ticket, OpenID: m.FromUserName, Event: event,
	})
	return e, err
}

// publish queues e for each target with a URI not given before and returns at once.
func (s *sinks) publish(e cloudevents.Event, targets ...sinkTarget) {
	for i, t := range targets {
		if t.uri == "" || slices.ContainsFunc(targets[:i], func(o sinkTarget) bool { return o.uri == t.uri }) {
			continue
		}
		s.enqueue(t, e)
	}
}

func (s *sinks) enqueue(t sinkTarget, e cloudevents.Event) {
	s.mu.Lock()
	q, ok := s.queues[t]
	if !ok {
		q = &sinkQueue{sinkTarget: t, events: make(chan cloudevents.Event, s.queueSize)}
		s.queues[t] = q
	}
	s.mu.Unlock()
	select {
	case q.events <- e:
		sinkQueued.Inc()
	default:
		sinkDeliveries.WithLabelValues("dropped").Inc()
		if s.drops.allow(t.uri) {
			s.log.Info("scan event dropped: the sink's queue is full", "sink", sinkHost(t.uri), "id", e.ID())
		}
		return
	}
	s.mu.Lock()
	if q.workers < s.workers {
		q.workers++
		go s.work(q)
	}
	s.mu.Unlock()
}

// work delivers q's events until the queue is empty. The emptiness check and the exit happen
// under the lock that enqueue takes after queueing, so no event is left without a worker.
func (s *sinks) work(q *sinkQueue) {
	for {
		select {
		case e := <-q.events:
			events := takeQueued(q.events, e, perRequest(q.maxEvents))
			sinkQueued.Sub(float64(len(events)))
			s.deliver(q.sinkTarget, events)
			continue
		default:
		}
		s.mu.Lock()
		if len(q.events) > 0 {
			s.mu.Unlock()
			continue
		}
		q.workers--
		s.mu.Unlock()
		select {
		case s.exited <- struct{}{}:
		default:
		}
		return
	}
}

// perRequest is how many events one request carries at most: maxEvents in batched mode, one in
// binary mode (0).
func perRequest(maxEvents int32) int {
	return max(1, int(maxEvents))
}

// takeQueued is first and what queue holds already, up to n events in all: it never waits, so
// a batch is as large as the load makes it and no event waits for others to fill it.
func takeQueued(queue <-chan cloudevents.Event, first cloudevents.Event, n int) []cloudevents.Event {
	events := []cloudevents.Event{first}
	for len(events) < n {
		select {
		case e := <-queue:
			events = append(events, e)
		default:
			return events
		}
	}
	return events
}

// verdict is what a sink's answer status means for the events of the request, 0 being no answer:
// deliveryOK, deliveryRejected (a 4xx other than 408 and 429: trying again would get the same),
// or "" to try again.
func verdict(status int) string {
	switch {
	case status >= 200 && status < 300:
		return deliveryOK
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		return deliveryRejected
	}
	return ""
}

// deliver sends events to t in one request until they are acknowledged, rejected, or sinkAttempts
// tries failed; each event counts in the deliveries metric.
func (s *sinks) deliver(t sinkTarget, events []cloudevents.Event) {
	n := float64(len(events))
	backoff := sinkBackoff
	for attempt := 1; ; attempt++ {
		if s.ctx.Err() != nil {
			sinkDeliveries.WithLabelValues(deliveryAbandoned).Add(n)
			return
		}
		start := s.clock.Now()
		ctx, cancel := withDeadline(s.ctx, s.clock, start.Add(sinkTimeout))
		status, err := s.send(ctx, t, events)
		cancel()
		sinkDuration.Observe(s.clock.Since(start).Seconds())
		sinkRequestEvents.Observe(n)
		switch verdict(status) {
		case deliveryOK:
			sinkDeliveries.WithLabelValues(deliveryOK).Add(n)
			return
		case deliveryRejected:
			sinkDeliveries.WithLabelValues(deliveryRejected).Add(n)
			s.log.Info("scan events rejected by the sink; not retried", "sink", sinkHost(t.uri), "events", len(events), "firstID", events[0].ID(), "status", status)
			return
		}
		if s.ctx.Err() != nil {
			continue
		}
		if attempt == sinkAttempts {
			sinkDeliveries.WithLabelValues(deliveryFailed).Add(n)
			s.log.Info("scan events not delivered; giving up", "sink", sinkHost(t.uri), "events", len(events), "firstID", events[0].ID(), "attempts", attempt, "status", status, "error", deliveryError(err))
			return
		}
		sinkRetries.Inc()
		select {
		case <-s.clock.After(backoff):
		case <-s.ctx.Done():
		}
		backoff *= 2
	}
}

// send makes one try to deliver events to t: a binary-mode request of the one event, or a
// batched one of all. It returns the answer's status, 0 with the cause when there was none.
func (s *sinks) send(ctx context.Context, t sinkTarget, events []cloudevents.Event) (int, error) {
	if t.maxEvents == 0 {
		res := s.client.Send(cloudevents.ContextWithTarget(ctx, t.uri), events[0])
		var hr *cehttp.Result
		if cloudevents.ResultAs(res, &hr) {
			return hr.StatusCode, res
		}
		return 0, res
	}
	req, err := cehttp.NewHTTPRequestFromEvents(ctx, t.uri, events)
	if err != nil {
		return 0, err
	}
	resp, err := s.batches.Do(req)
	if err != nil {
		return 0, err
	}
	// Read to the end (within reason), so that the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
}

// sinkHost names a sink in logs: a URI may carry a token in its user info or query.
func sinkHost(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// deliveryError is a failed delivery's cause without the URL (which *url.Error repeats).
func deliveryError(res error) string {
	if res == nil {
		return ""
	}
	if ue, ok := errors.AsType[*url.Error](res); ok {
		return ue.Err.Error()
	}
	return res.Error()
}

// publish queues the event of a counted scan for the account's sink and the code's.
func (s *Server) publish(keys *pushKeys, code *qrv1alpha1.WeChatQRCode, sc *scan, m *pushwire.Message) {
	if keys.account.SinkURI == "" && code.Status.SinkURI == "" {
		return
	}
	e, err := scanEvent(keys.appID, code, sc, m)
	if err != nil {
		s.log.Error(err, "building the scan event", "appID", keys.appID)
		return
	}
	s.sinks.publish(e, sinkTarget{keys.account.SinkURI, keys.account.SinkMaxEvents}, sinkTarget{code.Status.SinkURI, code.Status.SinkMaxEvents})
}
