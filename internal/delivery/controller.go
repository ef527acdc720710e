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

package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// Options bound the deliverer.
type Options struct {
	// Namespace holds the ledger: the callback server's own.
	Namespace string
	// Workers is how many requests each sink has in flight at most.
	Workers int
	// CommitInterval is how often the offsets reached are written into the segments' status:
	// what a deliverer that takes over sends again at most.
	CommitInterval time.Duration
	// BacklogLimit is how many events wait, all sinks together, at most: beyond it the oldest
	// expire, so that a dead sink cannot grow the ledger in etcd without bound.
	BacklogLimit int
	// StatusInterval is how often the accounts' and codes' status.sinkDelivery is considered
	// for a write: each is written at most this often.
	StatusInterval time.Duration
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{
		// 32 requests in flight keep up with about 5,500 events a second for a sink that takes
		// up to 5 ms an event.
		Workers:        32,
		CommitInterval: time.Second,
		// About 60 MB of segments in etcd at 300 bytes an entry: an hour of 55 scans a second, or
		// 17 minutes of 200.
		BacklogLimit:   200_000,
		StatusInterval: 10 * time.Second,
	}
}

// maxWorkers bounds the connections the deliverer opens to one sink.
const maxWorkers = 1024

// maxStatusInterval keeps three intervals within the age at which the manager takes a report of
// a failing sink for a silent deliverer's.
const maxStatusInterval = qrv1alpha1.SinkDeliveryStaleAfter / 3

// Validate says which option is out of bounds, naming its flag.
func (o Options) Validate() error {
	switch {
	case o.Namespace == "":
		return errors.New("the delivery needs the operator's namespace")
	case o.Workers < 1 || o.Workers > maxWorkers:
		return fmt.Errorf("--sink-workers must be between 1 and %d, got %d; the default is %d", maxWorkers, o.Workers, DefaultOptions().Workers)
	case o.CommitInterval <= 0:
		return fmt.Errorf("--sink-commit-interval must be positive, got %s; the default is %s", o.CommitInterval, DefaultOptions().CommitInterval)
	case o.StatusInterval < time.Second || o.StatusInterval > maxStatusInterval:
		return fmt.Errorf("--sink-status-interval must be between 1s and %s, got %s; the default is %s", maxStatusInterval, o.StatusInterval, DefaultOptions().StatusInterval)
	case o.BacklogLimit < 1:
		return fmt.Errorf("--sink-backlog-limit must be a positive number of events, got %d; the default is %d", o.BacklogLimit, DefaultOptions().BacklogLimit)
	}
	return nil
}

// tick is how often sinks that backed off are tried again, unresolved events routed again and
// expired ones dropped.
const tick = 200 * time.Millisecond

// requestTimeout bounds one try.
const requestTimeout = 5 * time.Second

// Controller delivers the scan events of the ledger to their sinks, while its replica holds the
// delivery Lease.
type Controller struct {
	opts   Options
	config *rest.Config
	scheme *runtime.Scheme
	// api reads the segments, uncached: the informer holds their metadata alone.
	api    client.Reader
	status client.SubResourceWriter
	routes Routes
	clock  clock.WithTicker
	log    logr.Logger
	send   func(ctx context.Context, t Target, events []cloudevents.Event) (int, error)

	// newCache makes the ledger's informer for one term of leadership: only the leader reads
	// the ledger, and only while it leads. It watches the segments' metadata, not the segments:
	// a watch of the segments decoded each one whole at every append (quadratic in a segment's
	// size), at every commit of its offsets and once more at its deletion: 17% of the callback's
	// CPU at 1,000 scans a second in the gateway bench's profile. The metadata's generation
	// moves with the batches alone, and a segment is read when it does.
	newCache func() (cache.Cache, error)
}

// New is a Controller over the ledger that rc's API server holds, writing offsets through status.
func New(rc *rest.Config, scheme *runtime.Scheme, status client.SubResourceWriter, routes Routes, clk clock.WithTicker, opts Options, log logr.Logger) (*Controller, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	api, err := client.New(rc, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	c := &Controller{opts: opts, config: rc, scheme: scheme, api: api, status: status, routes: routes, clock: clk, log: log, send: newSender(opts.Workers, rc).send}
	c.newCache = func() (cache.Cache, error) {
		return cache.New(rc, cache.Options{
			Scheme:            scheme,
			DefaultNamespaces: map[string]cache.Config{opts.Namespace: {}},
			DefaultTransform:  cache.TransformStripManagedFields(),
		})
	}
	return c, nil
}

// run is one term of leadership.
type run struct {
	*Controller
	ctx context.Context

	mu      sync.Mutex
	backlog *backlog
	// changed are the segments the informer reported since they were last read, nil for deleted.
	changed map[string]*metav1.PartialObjectMetadata
	wake    chan struct{}
	// generations are the segments' generations as last read; only the loop uses it. The
	// writer's appends move a segment's generation (one a batch), the offsets' commits do not
	// (status), so a segment is read again only when it has new batches.
	generations map[string]int64
	// committed is what each segment's status holds, as last written or read.
	committed map[string]qrv1alpha1.WeChatScanLedgerStatus
	// reports are what each account and code with a sink shows of its delivery, by
	// Declaration.key, once this term wrote it.
	reports map[string]*shownReport
}

// Start delivers until ctx ends (the Lease lost or the replica stopping). What was not
// committed is sent again by the next deliverer: at least once.
func (c *Controller) Start(ctx context.Context) error {
	ca, err := c.newCache()
	if err != nil {
		return err
	}
	inf, err := ca.GetInformer(ctx, ledger.SegmentMetadata("", ""))
	if err != nil {
		return err
	}
	r := &run{Controller: c, ctx: ctx, backlog: newBacklog(c.opts.BacklogLimit, countOutcome),
		changed: map[string]*metav1.PartialObjectMetadata{}, wake: make(chan struct{}, 1), committed: map[string]qrv1alpha1.WeChatScanLedgerStatus{},
		generations: map[string]int64{}, reports: map[string]*shownReport{}}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { r.note(o, false) },
		UpdateFunc: func(_, o any) { r.note(o, false) },
		DeleteFunc: func(o any) { r.note(o, true) },
	}); err != nil {
		return err
	}
	cacheCtx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = ca.Start(cacheCtx) }()
	if !ca.WaitForCacheSync(ctx) {
		return nil
	}
	// Tried again until it succeeds: returning would leave this replica holding the Lease
	// without delivering until it lost it.
	for err := r.list(); err != nil; err = r.list() {
		if ctx.Err() != nil {
			return nil
		}
		c.log.Error(err, "reading the ledger; trying again")
		select {
		case <-ctx.Done():
			return nil
		case <-c.clock.After(tick):
		}
	}
	c.log.Info("delivering scan events")
	ticker := c.clock.NewTicker(tick)
	defer ticker.Stop()
	lastCommit, lastReport := c.clock.Now(), time.Time{}
	// writing is held while the offsets or the reports are being written, off this loop: a slow
	// API server must not hold up the routing of new events to the workers (it did: each commit
	// patched its segments one after the other here, and what arrived meanwhile waited).
	writing := make(chan struct{}, 1)
	for {
		select {
		case <-ctx.Done():
			writing <- struct{}{}
			r.commit(context.Background())
			return nil
		case <-r.wake:
			r.read()
		case <-ticker.C():
			r.read()
			r.mu.Lock()
			r.backlog.tidy(c.clock.Now(), c.routes)
			r.gauges()
			r.mu.Unlock()
			commit, report := c.clock.Since(lastCommit) >= c.opts.CommitInterval, c.clock.Since(lastReport) >= c.opts.StatusInterval
			if commit || report {
				select {
				case writing <- struct{}{}:
					if commit {
						lastCommit = c.clock.Now()
					}
					if report {
						lastReport = c.clock.Now()
					}
					go func() {
						defer func() { <-writing }()
						if commit {
							r.commit(ctx)
						}
						if report {
							r.report(ctx)
						}
					}()
				default:
					// The last writes are still under way: these wait for the next tick.
				}
			}
		}
		r.dispatch()
	}
}

// note takes an informer's report of a segment, to be read by the loop.
func (r *run) note(o any, deleted bool) {
	if t, ok := o.(toolscache.DeletedFinalStateUnknown); ok {
		o = t.Obj
	}
	seg, ok := o.(*metav1.PartialObjectMetadata)
	if !ok {
		return
	}
	r.mu.Lock()
	if deleted {
		r.changed[seg.Name] = nil
	} else {
		r.changed[seg.Name] = seg
	}
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// listChunk is how many segments a page of the term's first read holds: a segment is up to
// about 150 KB.
const listChunk = 100

// list reads every segment once, at the start of a term, in pages: one request a page rather
// than one a segment, which is what the informer's reports would otherwise cost a deliverer
// that takes over hundreds of segments.
func (r *run) list() error {
	opts := []client.ListOption{client.InNamespace(r.opts.Namespace), client.Limit(listChunk)}
	for {
		var page qrv1alpha1.WeChatScanLedgerList
		if err := r.api.List(r.ctx, &page, opts...); err != nil {
			return err
		}
		for i := range page.Items {
			r.observe(&page.Items[i])
		}
		if page.Continue == "" {
			return nil
		}
		opts = []client.ListOption{client.InNamespace(r.opts.Namespace), client.Limit(listChunk), client.Continue(page.Continue)}
	}
}

// read reads the segments reported since with batches not read yet, and routes their new
// events; it forgets those deleted. A segment that cannot be read now is read at the next tick.
func (r *run) read() {
	r.mu.Lock()
	changed := r.changed
	r.changed = map[string]*metav1.PartialObjectMetadata{}
	r.mu.Unlock()
	for name, m := range changed {
		if m == nil {
			r.mu.Lock()
			r.backlog.forget(name)
			delete(r.committed, name)
			r.mu.Unlock()
			delete(r.generations, name)
			continue
		}
		if g, ok := r.generations[name]; ok && m.Generation <= g {
			continue
		}
		seg := &qrv1alpha1.WeChatScanLedger{}
		err := r.api.Get(r.ctx, types.NamespacedName{Namespace: r.opts.Namespace, Name: name}, seg)
		switch {
		case apierrors.IsNotFound(err):
			// Deleted: the informer reports it next.
			continue
		case err != nil:
			if r.ctx.Err() == nil {
				r.log.Error(err, "reading a ledger segment; reading it again at the next tick", "segment", name)
			}
			r.mu.Lock()
			if _, later := r.changed[name]; !later {
				r.changed[name] = m
			}
			r.mu.Unlock()
			continue
		}
		r.observe(seg)
	}
}

// observe routes the new events of seg, as read.
func (r *run) observe(seg *qrv1alpha1.WeChatScanLedger) {
	r.generations[seg.Name] = max(r.generations[seg.Name], seg.Generation)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.committed[seg.Name]; !ok {
		r.committed[seg.Name] = seg.Status
	}
	r.backlog.observe(seg, r.routes)
}

// gauges sets the backlog gauges; called with mu held.
func (r *run) gauges() {
	var n int
	oldest := int64(0)
	for _, q := range r.backlog.queues {
		qn, qo := q.pending()
		if qn > 0 && (oldest == 0 || qo < oldest) {
			oldest = qo
		}
		n += qn
	}
	backlogEvents.Set(float64(n + len(r.backlog.unrouted)))
	if oldest == 0 {
		oldestUndelivered.Set(0)
		return
	}
	oldestUndelivered.Set(r.clock.Since(time.UnixMilli(oldest)).Seconds())
}

// dispatch starts workers for the sinks with events to send, up to Workers each.
func (r *run) dispatch() {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.clock.Now()
	for _, q := range r.backlog.queues {
		for q.workers < r.opts.Workers {
			items := q.take(now, perRequest(q.target.MaxEvents))
			if len(items) == 0 {
				break
			}
			q.workers++
			go r.work(q, items)
		}
	}
}

// perRequest is how many events one request carries at most: maxEvents in batched mode, one in
// binary mode (0).
func perRequest(maxEvents int32) int { return max(1, int(maxEvents)) }

// work sends items to q's sink, then goes on with what q has next, until q has nothing to send
// now or the term ends.
func (r *run) work(q *queue, items []*item) {
	for len(items) > 0 {
		r.mu.Lock()
		t := r.current(q, items[0].entry)
		r.mu.Unlock()
		result, cause := r.try(t, items)
		r.mu.Lock()
		now := r.clock.Now()
		q.settle(now, items, result, cause)
		items = nil
		if r.ctx.Err() == nil {
			items = q.take(now, perRequest(q.target.MaxEvents))
		}
		if len(items) == 0 {
			q.workers--
		}
		r.mu.Unlock()
	}
}

// current is q's target for a request that starts with e; called with mu held. The tagging
// endpoint is read at each request, not only as events are routed: a manager elected after
// another publishes its own address, and the events queued go there.
func (r *run) current(q *queue, e qrv1alpha1.LedgerEntry) Target {
	if q.target.Tagging {
		if s := r.routes.CodeTagging(e.Code, e.UID, e.Subscribe); s.Target.URI != "" {
			q.target = s.Target
		}
	}
	return q.target
}

// try makes one try of items and returns the result ("" to try again) and the cause of a failure.
func (r *run) try(t Target, items []*item) (string, string) {
	events := make([]cloudevents.Event, 0, len(items))
	for _, it := range items {
		e, err := eventOf(it.entry)
		if err != nil {
			// Only data that does not marshal fails it, and strings always do.
			r.log.Error(err, "building a scan event")
			continue
		}
		events = append(events, e)
	}
	if len(events) == 0 {
		return resultRejected, "unbuildable"
	}
	start := r.clock.Now()
	timeout := requestTimeout
	if t.Tagging {
		timeout = TaggingRequestTimeout
	}
	ctx, cancel := context.WithTimeout(r.ctx, timeout)
	status, err := r.send(ctx, t, events)
	cancel()
	requestDuration.Observe(r.clock.Since(start).Seconds())
	requestEvents.Observe(float64(len(events)))
	result := verdict(status)
	if t.Tagging && result == resultRejected {
		result = ""
	}
	switch result {
	case resultOK:
		now := r.clock.Now()
		for _, it := range items {
			lag.Observe(now.Sub(time.UnixMilli(it.entry.At)).Seconds())
		}
		deliveries.WithLabelValues(resultOK).Add(float64(len(items)))
	case resultRejected:
		deliveries.WithLabelValues(resultRejected).Add(float64(len(items)))
		r.log.Info("scan events refused by the sink; not sent again", "sink", sinkHost(t.URI), "events", len(items), "firstID", items[0].entry.Key, "status", status)
	default:
		if r.ctx.Err() != nil {
			return "", "the deliverer stopped"
		}
		retries.Inc()
	}
	return result, deliveryError(status, err)
}

// commit writes each segment's offsets that moved into its status.
func (r *run) commit(ctx context.Context) {
	r.mu.Lock()
	offsets := r.backlog.offsets()
	var due []string
	for name, st := range offsets {
		if !sameStatus(st, r.committed[name]) {
			due = append(due, name)
		}
	}
	r.mu.Unlock()
	for _, name := range due {
		st := offsets[name]
		err := r.patch(ctx, name, st)
		switch {
		case err == nil:
			commits.WithLabelValues("ok").Inc()
		case apierrors.IsNotFound(err):
			commits.WithLabelValues("gone").Inc()
			continue
		default:
			commits.WithLabelValues("error").Inc()
			if ctx.Err() == nil {
				r.log.Error(err, "committing delivery offsets; sending again from the last commit if this deliverer stops", "segment", name)
			}
			continue
		}
		r.mu.Lock()
		if _, ok := r.committed[name]; ok {
			r.committed[name] = st
		}
		r.mu.Unlock()
	}
}

func sameStatus(a, b qrv1alpha1.WeChatScanLedgerStatus) bool {
	if a.Delivered != b.Delivered || len(a.Sinks) != len(b.Sinks) {
		return false
	}
	for k, v := range a.Sinks {
		if w, ok := b.Sinks[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// patch merges st into the segment's status: offsets only ever grow, and a sink's offset stays
// in the map once there (merge patches add keys, they never remove one).
func (r *run) patch(ctx context.Context, name string, st qrv1alpha1.WeChatScanLedgerStatus) error {
	body, err := json.Marshal(map[string]any{"status": st})
	if err != nil {
		panic(err) // numbers and strings always marshal
	}
	return r.status.Patch(ctx, ledger.SegmentMetadata(r.opts.Namespace, name), client.RawPatch(types.MergePatchType, body))
}

// NeedLeaderElection is false: package election leads it, by the delivery Lease.
func (c *Controller) NeedLeaderElection() bool { return false }

// countOutcome counts the events that leave the backlog without a send.
func countOutcome(result string, n int) { deliveries.WithLabelValues(result).Add(float64(n)) }

// report writes the status.sinkDelivery of each account and code with a resolved sink that
// reportDue says is due, up to maxReportWrites a round (writeOrder). A resource whose sink does
// not resolve gets none: its SinkResolved condition says why.
func (r *run) report(ctx context.Context) {
	decls := r.routes.Declarations()
	r.mu.Lock()
	views := r.backlog.views(decls)
	r.mu.Unlock()
	now := r.clock.Now()
	current := make(map[string]bool, len(decls))
	var due []dueReport
	for i, d := range decls {
		if d.Sink.Target.URI == "" {
			continue
		}
		key := d.key()
		current[key] = true
		prev := r.reports[key]
		if cur := reportOf(prev, views[i], now); reportDue(prev, cur, views[i].stats.delivered, now) {
			due = append(due, dueReport{decl: d, prev: prev, cur: cur, delivered: views[i].stats.delivered})
		}
	}
	for key := range r.reports {
		if !current[key] {
			delete(r.reports, key)
		}
	}
	for _, w := range writeOrder(due, maxReportWrites) {
		shown, err := r.writeReport(ctx, w.decl, w.cur, w.prev == nil)
		switch {
		case err == nil:
			statusWrites.WithLabelValues("ok").Inc()
		case apierrors.IsNotFound(err):
			statusWrites.WithLabelValues("gone").Inc()
			continue
		default:
			statusWrites.WithLabelValues("error").Inc()
			if ctx.Err() == nil {
				r.log.Error(err, "writing the sink delivery status; written again at the next interval", "kind", w.decl.Kind, "namespace", w.decl.Namespace, "name", w.decl.Name)
			}
			continue
		}
		next := &shownReport{status: *shown, written: now, delivered: w.delivered}
		if w.prev != nil {
			next.base = w.prev.base
		} else {
			next.base = shown.Expired
		}
		r.reports[w.decl.key()] = next
	}
}

// writeReport merge-patches d's status.sinkDelivery alone and returns what the resource shows
// after it.
func (r *run) writeReport(ctx context.Context, d Declaration, rep qrv1alpha1.SinkDeliveryStatus, first bool) (*qrv1alpha1.SinkDeliveryStatus, error) {
	body, err := json.Marshal(map[string]any{"status": map[string]any{"sinkDelivery": patchOf(rep, first)}})
	if err != nil {
		panic(err) // numbers, strings and times always marshal
	}
	var obj client.Object
	shown := func() *qrv1alpha1.SinkDeliveryStatus { return obj.(qrv1alpha1.Account).AccountStatus().SinkDelivery }
	if d.Kind == KindCode {
		code := &qrv1alpha1.WeChatQRCode{}
		obj, shown = code, func() *qrv1alpha1.SinkDeliveryStatus { return code.Status.SinkDelivery }
	} else {
		obj = qrv1alpha1.NewAccount(d.Kind)
	}
	obj.SetNamespace(d.Namespace)
	obj.SetName(d.Name)
	if err := r.status.Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)); err != nil {
		return nil, err
	}
	if s := shown(); s != nil {
		return s, nil
	}
	return &rep, nil
}
