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

// Package pushrecord is what the accounts show of their pushes (status.callback): each replica
// of the callback server keeps, in memory, per served account, when its last verified push
// arrived and its refusals by reason in 5-minute buckets (Stats), and writes them into its own
// WeChatPushRecord every --record-interval when they changed (Recorder): a push costs no write.
// The replica that holds the fold's Lease sums the records of every replica into each account's
// status.callback (lastVerifiedPushTime; refused: the last hour by reason; observedTime) with a
// merge patch of those fields alone, only when they changed (Reporter). A push to an unknown
// AppID has no account: the metric alone counts it. The records of a replica gone for over an
// hour are deleted, its last verified push carried over.
package pushrecord

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
)

// An account's status.callback counts the refusals of the last RefusedWindow, in buckets of
// RefusedBucket: the count may include up to one bucket more than the window.
const (
	RefusedWindow = time.Hour
	RefusedBucket = 5 * time.Minute
	// RecordHeartbeat is how often a replica writes its record even when nothing changed, so
	// that a record unwritten for RefusedWindow+RecordHeartbeat is a gone replica's.
	RecordHeartbeat = 15 * time.Minute
)

// Stats is what this replica saw of each served account's pushes since it started, in
// memory: a push costs a map update, no write. Only served AppIDs come in (a push to an unknown
// one has no account), so its size is bounded by the accounts.
type Stats struct {
	clock clock.PassiveClock

	mu       sync.Mutex
	accounts map[string]*qrv1alpha1.AccountPushes
	dirty    bool
}

// NewStats keeps the stats on clk.
func NewStats(clk clock.PassiveClock) *Stats {
	return &Stats{clock: clk, accounts: map[string]*qrv1alpha1.AccountPushes{}}
}

func (p *Stats) of(appID string) *qrv1alpha1.AccountPushes {
	a := p.accounts[appID]
	if a == nil {
		a = &qrv1alpha1.AccountPushes{}
		p.accounts[appID] = a
	}
	p.dirty = true
	return a
}

// Verified notes a push whose signatures verified (and which decrypted, when encrypted).
func (p *Stats) Verified(appID string) {
	p.Adopt(appID, p.clock.Now().UnixMilli())
}

// Adopt raises the account's last verified push to at (Unix ms), so that a gone replica's time
// outlives its record.
func (p *Stats) Adopt(appID string, at int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if a := p.accounts[appID]; a == nil || a.LastVerifiedPush < at {
		p.of(appID).LastVerifiedPush = at
	}
}

// Refused counts a refused push of a served account.
func (p *Stats) Refused(appID, reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	a := p.of(appID)
	start := p.clock.Now().Truncate(RefusedBucket).UnixMilli()
	if n := len(a.Refused); n == 0 || a.Refused[n-1].Start != start {
		a.Refused = append(a.Refused, qrv1alpha1.RefusedBucket{Start: start, Reasons: map[string]int64{}})
	}
	a.Refused[len(a.Refused)-1].Reasons[reason]++
}

// snapshot returns a copy of the stats without the buckets that left the window, and whether it
// changed since the last snapshot (pruning is a change: the record shrinks).
func (p *Stats) snapshot() (map[string]qrv1alpha1.AccountPushes, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	oldest := p.clock.Now().Add(-RefusedWindow - RefusedBucket).UnixMilli()
	out := make(map[string]qrv1alpha1.AccountPushes, len(p.accounts))
	for appID, a := range p.accounts {
		keep := slices.IndexFunc(a.Refused, func(b qrv1alpha1.RefusedBucket) bool { return b.Start > oldest })
		if keep < 0 {
			keep = len(a.Refused)
		}
		if keep > 0 {
			a.Refused, p.dirty = a.Refused[keep:], true
		}
		c := qrv1alpha1.AccountPushes{LastVerifiedPush: a.LastVerifiedPush}
		for _, b := range a.Refused {
			c.Refused = append(c.Refused, qrv1alpha1.RefusedBucket{Start: b.Start, Reasons: maps.Clone(b.Reasons)})
		}
		out[appID] = c
	}
	changed := p.dirty
	p.dirty = false
	return out, changed
}

func (p *Stats) markDirty() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dirty = true
}

// Recorder writes this replica's Stats into its WeChatPushRecord, named after the replica,
// every interval when they changed and at least every RecordHeartbeat.
type Recorder struct {
	stats     *Stats
	clock     clock.Clock
	writer    client.Writer
	namespace string
	identity  string
	interval  time.Duration
	log       logr.Logger

	mu      sync.Mutex
	written time.Time
}

// NewRecorder writes stats into the record of the replica identity in namespace every interval.
func NewRecorder(stats *Stats, clk clock.Clock, writer client.Writer, namespace, identity string, interval time.Duration, log logr.Logger) *Recorder {
	return &Recorder{stats: stats, clock: clk, writer: writer, namespace: namespace, identity: identity, interval: interval, log: log}
}

// Start writes the record every interval until ctx ends. It is a manager Runnable.
func (r *Recorder) Start(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.clock.After(r.interval):
		}
		if err := r.Flush(ctx); err != nil && ctx.Err() == nil {
			r.log.Error(err, "writing the push record; retrying next interval")
		}
	}
}

// NeedLeaderElection is false: every replica records its own pushes.
func (r *Recorder) NeedLeaderElection() bool { return false }

// Flush writes the record if the stats changed or the heartbeat is due. The whole spec is
// replaced: only this replica writes it.
func (r *Recorder) Flush(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	accounts, changed := r.stats.snapshot()
	now := r.clock.Now()
	if !changed && now.Sub(r.written) < RecordHeartbeat {
		return nil
	}
	spec := qrv1alpha1.WeChatPushRecordSpec{Replica: r.identity, Updated: metav1.NewTime(now), Accounts: accounts}
	rec := &qrv1alpha1.WeChatPushRecord{ObjectMeta: metav1.ObjectMeta{Namespace: r.namespace, Name: r.identity}, Spec: spec}
	patch, err := json.Marshal([]map[string]any{{"op": "replace", "path": "/spec", "value": spec}})
	if err != nil {
		panic(err) // strings, numbers and maps of them always marshal
	}
	err = r.writer.Patch(ctx, rec, client.RawPatch(types.JSONPatchType, patch))
	if apierrors.IsNotFound(err) {
		rec.Spec = spec
		err = r.writer.Create(ctx, rec)
	}
	if err != nil {
		r.stats.markDirty()
		return err
	}
	r.written = now
	return nil
}

// accountCallback is what status.callback shows of an account, observedTime aside.
type accountCallback struct {
	lastVerified int64 // Unix ms, 0 for none
	refused      []qrv1alpha1.RefusedPushes
}

func (a accountCallback) equal(b accountCallback) bool {
	return a.lastVerified == b.lastVerified && slices.Equal(a.refused, b.refused)
}

// callbackStatus sums the records of every replica for one account: the latest verified push,
// and by reason the refusals of the buckets that overlap the RefusedWindow before now.
func callbackStatus(records []qrv1alpha1.WeChatPushRecordSpec, appID string, now time.Time) accountCallback {
	var out accountCallback
	since := now.Add(-RefusedWindow).UnixMilli()
	byReason := map[string]int64{}
	for _, rec := range records {
		a, ok := rec.Accounts[appID]
		if !ok {
			continue
		}
		out.lastVerified = max(out.lastVerified, a.LastVerifiedPush)
		for _, b := range a.Refused {
			if b.Start+RefusedBucket.Milliseconds() <= since {
				continue
			}
			for reason, n := range b.Reasons {
				byReason[reason] += n
			}
		}
	}
	for _, reason := range slices.Sorted(maps.Keys(byReason)) {
		if byReason[reason] > 0 {
			out.refused = append(out.refused, qrv1alpha1.RefusedPushes{Reason: reason, Count: byReason[reason]})
		}
	}
	return out
}

// Served is what the replica serves: the accounts whose status.callback the Reporter writes.
type Served interface {
	Accounts() []pushconfig.Account
}

// Reporter writes the accounts' status.callback from the push records of every replica. It runs
// on the elected folder's replica, after each fold round (package fold).
type Reporter struct {
	clock     clock.PassiveClock
	api       client.Reader // uncached: the records are never cached
	writer    client.Writer
	status    client.SubResourceWriter
	namespace string
	served    Served
	// stats is this replica's, which takes over the last verified pushes of gone replicas.
	stats *Stats
	// reported is what each account's status shows, by account and AppID, as last patched.
	reported map[string]accountCallback
}

// NewReporter reports the accounts served sums the records in namespace into, through status;
// api reads and writer deletes the records.
func NewReporter(clk clock.PassiveClock, api client.Reader, writer client.Writer, status client.SubResourceWriter, namespace string, served Served, stats *Stats) *Reporter {
	return &Reporter{clock: clk, api: api, writer: writer, status: status, namespace: namespace, served: served, stats: stats, reported: map[string]accountCallback{}}
}

// Report brings every served account's status.callback up to date with the replicas' push
// records: one merge patch of the callback server's own fields per account whose figures
// changed. It deletes the records of replicas gone for longer than the window, carrying their
// last verified pushes over into this replica's stats first.
func (r *Reporter) Report(ctx context.Context) error {
	var list qrv1alpha1.WeChatPushRecordList
	if err := r.api.List(ctx, &list, client.InNamespace(r.namespace)); err != nil {
		return err
	}
	now := r.clock.Now()
	records := make([]qrv1alpha1.WeChatPushRecordSpec, 0, len(list.Items))
	var errs []error
	for i := range list.Items {
		rec := &list.Items[i]
		records = append(records, rec.Spec)
		if now.Sub(rec.Spec.Updated.Time) <= RefusedWindow+RecordHeartbeat {
			continue
		}
		for appID, a := range rec.Spec.Accounts {
			if a.LastVerifiedPush > 0 {
				r.stats.Adopt(appID, a.LastVerifiedPush)
			}
		}
		err := r.writer.Delete(ctx, rec, client.Preconditions{ResourceVersion: &rec.ResourceVersion})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	seen := map[string]bool{}
	for _, a := range r.served.Accounts() {
		key := a.Ref.String() + " " + a.AppID
		seen[key] = true
		cb := callbackStatus(records, a.AppID, now)
		if prev, ok := r.reported[key]; ok && prev.equal(cb) {
			continue
		}
		if err := r.patchCallback(ctx, a.Ref, cb, now); err != nil {
			errs = append(errs, err)
			continue
		}
		r.reported[key] = cb
	}
	for key := range r.reported {
		if !seen[key] {
			delete(r.reported, key)
		}
	}
	return errors.Join(errs...)
}

// patchCallback merges cb into the account's status.callback: only the fields the callback
// server owns, so the manager's (path and the rest of status) stay as they are.
func (r *Reporter) patchCallback(ctx context.Context, ref pushconfig.Ref, cb accountCallback, now time.Time) error {
	callback := map[string]any{"observedTime": metav1.NewTime(now), "lastVerifiedPushTime": nil, "refused": nil}
	if cb.lastVerified > 0 {
		callback["lastVerifiedPushTime"] = metav1.NewTime(time.UnixMilli(cb.lastVerified))
	}
	if len(cb.refused) > 0 {
		callback["refused"] = cb.refused
	}
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"callback": callback}})
	if err != nil {
		panic(err) // times, strings and numbers always marshal
	}
	var obj client.Object = &qrv1alpha1.WeChatAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ref.Namespace, Name: ref.Name}}
	if ref.Kind == qrv1alpha1.KindClusterWeChatAccount {
		obj = &qrv1alpha1.ClusterWeChatAccount{ObjectMeta: metav1.ObjectMeta{Name: ref.Name}}
	}
	err = r.status.Patch(ctx, obj, client.RawPatch(types.MergePatchType, patch))
	switch {
	case err == nil:
		statusPatches.WithLabelValues("ok").Inc()
	case apierrors.IsNotFound(err):
		// Deleted: the manager drops its entry from the push config next.
		statusPatches.WithLabelValues("gone").Inc()
		return nil
	default:
		statusPatches.WithLabelValues("error").Inc()
		return err
	}
	return nil
}
