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
// in binary mode.
//
// Delivery never fails nor delays the push: by the time an event is queued its scan is durable in
// the ledger, so failing the push would only make WeChat retry into the dedupe, and a sink that
// is down would turn into followers seeing "该公众号暂时无法提供服务". Each sink has its own bounded
// queue (--sink-queue-size), drained by its workers (--sink-workers) that retry with backoff, so
// a dead sink holds up neither the push path nor other sinks or accounts. Delivery is at least once while the replica lives: an
// event is retried until the sink acknowledges it, answers a 4xx other than 408 and 429 (the
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

// sinks queues and delivers scan events, one queue per sink URI.
type sinks struct {
	client cloudevents.Client
	clock  clock.WithDelayedExecution
	log    logr.Logger
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
	queues map[string]*sinkQueue
}

type sinkQueue struct {
	uri     string
	events  chan cloudevents.Event
	workers int // under sinks.mu
}

func newSinks(clk clock.WithDelayedExecution, workers, queueSize int, log logr.Logger) *sinks {
	c, err := cloudevents.NewClientHTTP(cehttp.WithRoundTripper(sinkTransport(workers)))
	if err != nil {
		// Only an option can fail it, and these are constant.
		panic(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &sinks{client: c, clock: clk, log: log, workers: workers, queueSize: queueSize, ctx: ctx, cancel: cancel, grace: sinkGrace,
		exited: make(chan struct{}, 1), drops: sampler{clock: clk}, queues: map[string]*sinkQueue{}}
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

// publish queues e for each distinct non-empty URI and returns at once.
func (s *sinks) publish(e cloudevents.Event, uris ...string) {
	for i, uri := range uris {
		if uri == "" || slices.Contains(uris[:i], uri) {
			continue
		}
		s.enqueue(uri, e)
	}
}

func (s *sinks) enqueue(uri string, e cloudevents.Event) {
	s.mu.Lock()
	q, ok := s.queues[uri]
	if !ok {
		q = &sinkQueue{uri: uri, events: make(chan cloudevents.Event, s.queueSize)}
		s.queues[uri] = q
	}
	s.mu.Unlock()
	select {
	case q.events <- e:
		sinkQueued.Inc()
	default:
		sinkDeliveries.WithLabelValues("dropped").Inc()
		if s.drops.allow(uri) {
			s.log.Info("scan event dropped: the sink's queue is full", "sink", sinkHost(uri), "id", e.ID())
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
			sinkQueued.Dec()
			s.deliver(q.uri, e)
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

// deliver sends e to uri until it is acknowledged, rejected, or sinkAttempts tries failed.
func (s *sinks) deliver(uri string, e cloudevents.Event) {
	backoff := sinkBackoff
	for attempt := 1; ; attempt++ {
		if s.ctx.Err() != nil {
			sinkDeliveries.WithLabelValues(deliveryAbandoned).Inc()
			return
		}
		start := s.clock.Now()
		ctx, cancel := withDeadline(s.ctx, s.clock, start.Add(sinkTimeout))
		res := s.client.Send(cloudevents.ContextWithTarget(ctx, uri), e)
		cancel()
		sinkDuration.Observe(s.clock.Since(start).Seconds())
		if cloudevents.IsACK(res) {
			sinkDeliveries.WithLabelValues(deliveryOK).Inc()
			return
		}
		status := 0
		var hr *cehttp.Result
		if cloudevents.ResultAs(res, &hr) {
			status = hr.StatusCode
		}
		if status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests {
			sinkDeliveries.WithLabelValues(deliveryRejected).Inc()
			s.log.Info("scan event rejected by the sink; not retried", "sink", sinkHost(uri), "id", e.ID(), "status", status)
			return
		}
		if s.ctx.Err() != nil {
			continue
		}
		if attempt == sinkAttempts {
			sinkDeliveries.WithLabelValues(deliveryFailed).Inc()
			s.log.Info("scan event not delivered; giving up", "sink", sinkHost(uri), "id", e.ID(), "attempts", attempt, "status", status, "error", deliveryError(res))
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
	s.sinks.publish(e, keys.account.SinkURI, code.Status.SinkURI)
}
