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

// Package tagging tags the scanners of codes with spec.tags at WeChat
// (cgi-bin/tags/members/batchtagging), in the elected manager: the access tokens are its, and
// the internet-facing callback server never calls WeChat. The callback server's deliverer sends
// the scan events of those codes from the ledger to the manager's endpoint as one more target
// (package delivery), in batched CloudEvents mode, so a tagging is durable as a sink's event is:
// what the manager did not acknowledge is sent again, by whichever deliverer holds the ledger.
//
// The Tagger groups the OpenIDs of the requests it holds by (AppID, tag id) and calls
// batchtagging with at most 50 of them, waiting up to a batch wait to fill a call. A request is
// answered once each of its scanners is tagged or skipped for good: 2xx; anything to try again
// fails it whole (5xx), and the deliverer backs off and sends it again. A bounded memory of the
// (AppID, tag, OpenID hash) tagged lately makes a retried or duplicated scan cost no call.
// OpenIDs live in memory only, in the batch being filled, and never reach a log, an error, a
// status or a metric.
package tagging

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"k8s.io/utils/lru"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// Code is what tagging the scanners of one code takes, as the manager knows it now.
type Code struct {
	// Creds are the code's account's.
	Creds wechat.Credentials
	// TagIDs are WeChat's ids of the code's tags (spec.tags, by the account's status.tags).
	TagIDs []int64
	// Missing are the code's tag names without an id yet: not created, or the account is at
	// WeChat's limit. Their scans are tried again until the tags exist or the events expire.
	Missing []string
}

// Lookup finds what tagging a code's scanners takes.
type Lookup interface {
	// Code is the code namespace/name's; ok is false when it is gone or names no tags any more
	// (its scans are skipped), err when it cannot be known now (they are tried again).
	Code(ctx context.Context, namespace, name string) (c Code, ok bool, err error)
}

// API is what tagging needs of a WeChat client (*wechat.Client).
type API interface {
	BatchTag(ctx context.Context, creds wechat.Credentials, tagID int64, openIDs []string) error
}

// Options bound the Tagger.
type Options struct {
	// BatchWait is how long an OpenID waits for others of its tag to fill a call.
	BatchWait time.Duration
	// Remember is how many (AppID, tag, OpenID) tagged lately are remembered, so that a retried
	// or duplicated scan costs no call.
	Remember int
	// Calls is how many batchtagging calls are in flight at most.
	Calls int
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	// 100,000 remembered take about 10 MB: the scanners of two hours at 15 a second, far more
	// than the deliverer's retries span (its backoff is at most 30 s).
	// A tag's scanners wait 15 s for a full call: a tag scanned 4 times a second (200 a second
	// over 50 codes of 3 tags each) fills its calls, a lag nobody reading the tags later sees,
	// and batchtagging calls count against the account's daily quota.
	return Options{BatchWait: 15 * time.Second, Remember: 100_000, Calls: 8}
}

// maxBatchWait keeps a batch's wait well within the deliverer's timeout of a request.
const maxBatchWait = delivery.TaggingRequestTimeout - 15*time.Second

// Validate says which option is out of bounds, naming its flag.
func (o Options) Validate() error {
	switch {
	case o.BatchWait < 0 || o.BatchWait > maxBatchWait:
		return fmt.Errorf("--tag-batch-wait must be between 0 and %s, got %s; the default is %s", maxBatchWait, o.BatchWait, DefaultOptions().BatchWait)
	case o.Remember < 1:
		return fmt.Errorf("the tagging memory must hold at least 1 follower, got %d", o.Remember)
	case o.Calls < 1:
		return fmt.Errorf("at least 1 batchtagging call must be allowed in flight, got %d", o.Calls)
	}
	return nil
}

// Why a scanner is skipped for good: WeChat refuses the follower, and would again.
const (
	SkipInvalidOpenID   = "invalid_openid"     // 40003: not a user of the account
	SkipForeignOpenID   = "foreign_openid"     // 49003: a user of another AppID
	SkipFollowerAtLimit = "follower_tag_limit" // 45059: the follower carries 20 tags already
	// SkipNoTags: the code is gone or names no tags any more.
	SkipNoTags = "no_tags"
)

// skipReason is why err skips the follower it names for good, "" if it does not.
func skipReason(err error) string {
	switch wechat.ErrCode(err) {
	case 40003:
		return SkipInvalidOpenID
	case 49003:
		return SkipForeignOpenID
	case 45059:
		return SkipFollowerAtLimit
	}
	return ""
}

// Scan is one scan event to tag the scanner of.
type Scan struct {
	// Namespace and Name of the code scanned.
	Namespace, Name string
	OpenID          string
	// At is when the scan happened, for the lag.
	At time.Time
}

// Tagger batches the scans of the requests it holds into batchtagging calls.
type Tagger struct {
	api    API
	lookup Lookup
	clock  clock.WithTicker
	opts   Options
	log    logr.Logger
	calls  chan struct{}
	wake   chan struct{}

	mu sync.Mutex
	// pending are the batches being filled, by AppID and tag.
	pending map[batchKey]*batch
	// members are the followers pending or in a call, so that a scan of one already there waits
	// for that call rather than make another.
	members map[memberKey]*member
	// recent are the followers tagged or skipped for good lately.
	recent *lru.Cache
	stats  map[string]*CodeStats
}

type batchKey struct {
	appID string
	tagID int64
}

// memberKey is a follower of a tag, by a hash of the OpenID: what the memory keeps.
type memberKey struct {
	batchKey
	openID uint64
}

func keyOf(k batchKey, openID string) memberKey {
	h := fnv.New64a()
	_, _ = h.Write([]byte(openID))
	return memberKey{k, h.Sum64()}
}

type batch struct {
	creds wechat.Credentials
	// members are oldest first.
	members []*member
}

type member struct {
	key    memberKey
	openID string
	// joined is when it joined its batch: its wait for others runs from then.
	joined time.Time
	// codes are the codes whose scans wait for it, each with its first scan's time.
	codes   map[string]time.Time
	waiters []*request
}

// request is one request's scans: answered when left reaches 0.
type request struct {
	left int
	// err is the first reason to try the request again.
	err  error
	done chan struct{}
}

func (r *request) finish() {
	r.left--
	if r.left == 0 {
		close(r.done)
	}
}

// CodeStats is what a code's scans came to since the manager started.
type CodeStats struct {
	Tagged  int64
	Skipped map[string]int64
	// LastError is the last reason its scans were tried again, and when; never an OpenID.
	LastError     string
	LastErrorTime time.Time
}

// New is a Tagger calling api, with the codes of lookup.
func New(api API, lookup Lookup, clk clock.WithTicker, opts Options, log logr.Logger) (*Tagger, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	return &Tagger{api: api, lookup: lookup, clock: clk, opts: opts, log: log, calls: make(chan struct{}, opts.Calls),
		wake: make(chan struct{}, 1), pending: map[batchKey]*batch{}, members: map[memberKey]*member{},
		recent: lru.New(opts.Remember), stats: map[string]*CodeStats{}}, nil
}

// Tag tags the scanners of scans and returns nil once each is tagged or skipped for good, or
// the first reason to try them again. ctx ending stops the wait, not the tagging: what was
// batched is tagged all the same and remembered, so the request sent again costs no call.
func (t *Tagger) Tag(ctx context.Context, scans []Scan) error {
	r := &request{left: 1, done: make(chan struct{})}
	codes := map[string]Code{}
	for _, s := range scans {
		key := s.Namespace + "/" + s.Name
		c, seen := codes[key]
		if !seen {
			var ok bool
			var err error
			c, ok, err = t.lookup.Code(ctx, s.Namespace, s.Name)
			switch {
			case err != nil:
				t.fail(r, key, err)
				continue
			case !ok:
				c = Code{}
			case len(c.Missing) > 0:
				t.fail(r, key, &MissingTagsError{Names: c.Missing})
			}
			codes[key] = c
		}
		if c.Creds.AppID == "" {
			t.skip(key, SkipNoTags)
			continue
		}
		t.add(r, c, key, s)
	}
	t.mu.Lock()
	r.finish()
	t.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// MissingTagsError is why a scan is tried again while the code's tags do not all exist at WeChat.
type MissingTagsError struct{ Names []string }

func (e *MissingTagsError) Error() string {
	return fmt.Sprintf("the tags %s do not exist at WeChat yet (see the account's TagsReady condition)", strings.Join(e.Names, ", "))
}

// add puts the scanner of s in the batch of each tag of c, unless tagged lately.
func (t *Tagger) add(r *request, c Code, code string, s Scan) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	// The loop learns of a new batch, to time its wait, and of a full one, to send it now.
	wake := t.opts.BatchWait == 0
	for _, id := range c.TagIDs {
		bk := batchKey{c.Creds.AppID, id}
		mk := keyOf(bk, s.OpenID)
		if _, ok := t.recent.Get(mk); ok {
			members.WithLabelValues(resultAlready).Inc()
			continue
		}
		m := t.members[mk]
		if m == nil {
			m = &member{key: mk, openID: s.OpenID, joined: now, codes: map[string]time.Time{}}
			t.members[mk] = m
			b := t.pending[bk]
			if b == nil {
				b = &batch{}
				t.pending[bk] = b
				wake = true
			}
			b.creds = c.Creds
			b.members = append(b.members, m)
			wake = wake || len(b.members) >= wechat.MaxBatchTagging
		}
		if _, ok := m.codes[code]; !ok {
			m.codes[code] = s.At
		}
		m.waiters = append(m.waiters, r)
		r.left++
	}
	if wake {
		select {
		case t.wake <- struct{}{}:
		default:
		}
	}
}

// fail makes r tried again for err, recorded on code.
func (t *Tagger) fail(r *request, code string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.err == nil {
		r.err = err
	}
	t.noteError(code, err)
}

func (t *Tagger) noteError(code string, err error) {
	st := t.statsOf(code)
	st.LastError, st.LastErrorTime = err.Error(), t.clock.Now()
}

func (t *Tagger) skip(code, reason string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	members.WithLabelValues(reason).Inc()
	if reason != SkipNoTags {
		t.statsOf(code).Skipped[reason]++
	}
}

func (t *Tagger) statsOf(code string) *CodeStats {
	st := t.stats[code]
	if st == nil {
		st = &CodeStats{Skipped: map[string]int64{}}
		t.stats[code] = st
	}
	return st
}

// Stats are each code's figures since the manager started, a copy.
func (t *Tagger) Stats() map[string]CodeStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]CodeStats, len(t.stats))
	for k, st := range t.stats {
		c := *st
		c.Skipped = make(map[string]int64, len(st.Skipped))
		for r, n := range st.Skipped {
			c.Skipped[r] = n
		}
		out[k] = c
	}
	return out
}

// Start calls batchtagging for the batches that are full or waited BatchWait, until ctx ends.
func (t *Tagger) Start(ctx context.Context) error {
	for {
		next := t.flushDue(ctx)
		var timer <-chan time.Time
		if next > 0 {
			timer = t.clock.After(next)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.wake:
		case <-timer:
		}
	}
}

// flushDue starts a call for each batch due and returns when the next one is (0: none waits).
func (t *Tagger) flushDue(ctx context.Context) time.Duration {
	t.mu.Lock()
	now := t.clock.Now()
	var next time.Duration
	type call struct {
		key     batchKey
		creds   wechat.Credentials
		members []*member
	}
	var calls []call
	for k, b := range t.pending {
		n, due := ready(b.members, now, t.opts.BatchWait)
		for len(b.members) > 0 && n > 0 {
			size := min(n, wechat.MaxBatchTagging)
			calls = append(calls, call{k, b.creds, b.members[:size:size]})
			b.members, n = b.members[size:], n-size
		}
		if len(b.members) == 0 {
			delete(t.pending, k)
			continue
		}
		if wait := due.Sub(now); next == 0 || wait < next {
			next = wait
		}
	}
	t.mu.Unlock()
	for _, c := range calls {
		select {
		case t.calls <- struct{}{}:
		case <-ctx.Done():
			return 0
		}
		go func() {
			defer func() { <-t.calls }()
			batches.WithLabelValues(t.tag(ctx, c.key, c.creds, c.members)).Inc()
		}()
	}
	return next
}

// ready is how many of a batch's members, oldest first, go now: each full call's worth, and the
// rest too once its oldest has waited wait; and when those left are due. The wait runs from the
// oldest member left, not from the first the batch ever had: a steady stream keeps a tag's batch
// from emptying, and timing what is left after the full calls from the batch's first member sent
// a part call every wait (1,000 scans at 300 a second took 22 calls, not 20).
func ready(ms []*member, now time.Time, wait time.Duration) (n int, due time.Time) {
	full := len(ms) / wechat.MaxBatchTagging * wechat.MaxBatchTagging
	if full == len(ms) {
		return full, time.Time{}
	}
	due = ms[full].joined.Add(wait)
	if due.After(now) {
		return full, due
	}
	return len(ms), time.Time{}
}

// tag calls batchtagging for ms and returns the batch's result: ok, skipped (some followers
// skipped for good, the others tagged) or failed (some to be tried again). WeChat refuses a
// call whole for its first follower it would refuse alone (40003, 49003, 45059): the call is
// split in halves until each such follower is alone, and skipped, and the others are tagged.
func (t *Tagger) tag(ctx context.Context, k batchKey, creds wechat.Credentials, ms []*member) string {
	openIDs := make([]string, len(ms))
	for i, m := range ms {
		openIDs[i] = m.openID
	}
	err := t.api.BatchTag(ctx, creds, k.tagID, openIDs)
	calls.WithLabelValues(callResult(err)).Inc()
	reason := skipReason(err)
	switch {
	case reason != "" && len(ms) > 1:
		h := len(ms) / 2
		a, b := t.tag(ctx, k, creds, ms[:h]), t.tag(ctx, k, creds, ms[h:])
		if a == batchFailed || b == batchFailed {
			return batchFailed
		}
		return batchSkipped
	case reason != "":
		t.settle(ms, reason, nil)
		return batchSkipped
	case err != nil:
		t.settle(ms, resultFailed, &CallError{Err: err})
		return batchFailed
	}
	t.settle(ms, resultTagged, nil)
	return batchOK
}

// Results of a batch, the batches metric's label.
const (
	batchOK      = "ok"
	batchSkipped = "skipped"
	batchFailed  = "failed"
)

// callResult is a call's label: ok, or the errcode (0 for none: WeChat unreachable, a token).
func callResult(err error) string {
	if err == nil {
		return "ok"
	}
	return fmt.Sprintf("errcode_%d", wechat.ErrCode(err))
}

// settle records the result of a call for ms (tagged, failed with err, or a skip reason) and
// answers the requests it completes.
func (t *Tagger) settle(ms []*member, result string, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.clock.Now()
	for _, m := range ms {
		delete(t.members, m.key)
		if result != resultFailed {
			t.recent.Add(m.key, struct{}{})
		}
		members.WithLabelValues(result).Inc()
		for code, at := range m.codes {
			st := t.statsOf(code)
			switch result {
			case resultTagged:
				st.Tagged++
				lag.Observe(now.Sub(at).Seconds())
			case resultFailed:
				st.LastError, st.LastErrorTime = err.Error(), now
			default:
				st.Skipped[result]++
			}
		}
		for _, r := range m.waiters {
			if result == resultFailed && r.err == nil {
				r.err = err
			}
			r.finish()
		}
	}
	if result == resultFailed {
		t.log.Info("batchtagging failed; the deliverer sends the scans again", "followers", len(ms), "error", err.Error())
	}
}

// CallError is a batchtagging call that failed and is worth trying again.
type CallError struct{ Err error }

func (e *CallError) Error() string { return "batchtagging: " + e.Err.Error() }
func (e *CallError) Unwrap() error { return e.Err }
