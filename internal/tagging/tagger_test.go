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

package tagging

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/go-logr/logr"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

const appID, secret = "wxtagging0000001", "tagging-secret"

// codes is a Lookup of fixed codes.
type codes map[string]Code

func (c codes) Code(_ context.Context, ns, name string) (Code, bool, error) {
	code, ok := c[ns+"/"+name]
	return code, ok, nil
}

// rig is the tagging endpoint over real HTTP, calling the fake WeChat through the real client,
// on a fake clock.
type rig struct {
	clk   *clocktesting.FakeClock
	fake  *wechattest.Server
	tags  map[string]int64
	codes codes
	t     *Tagger
	srv   *httptest.Server
	// client posts to srv.URL: plain HTTP to the Tagger's handler unless a test says.
	client *http.Client
}

func newRig(t *testing.T, opts Options, tagNames ...string) *rig {
	clk := clocktesting.NewFakeClock(time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC))
	fake, err := wechattest.NewServer(wechattest.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddAccount(appID, secret)
	r := &rig{clk: clk, fake: fake, tags: map[string]int64{}, codes: codes{}}
	var ids []int64
	for _, n := range tagNames {
		r.tags[n] = fake.AddTag(appID, n).ID
		ids = append(ids, r.tags[n])
	}
	creds := wechat.Credentials{AppID: appID, AppSecret: secret}
	r.codes["shop/poster"] = Code{Creds: creds, TagIDs: ids}
	client := wechat.New(wechat.Options{APIBaseURL: fake.URL, ImageBaseURL: fake.URL, Clock: clk})
	if r.t, err = New(client, r.codes, clk, opts, logr.Discard()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.t.Start(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	r.srv = httptest.NewServer(r.t.Handler())
	t.Cleanup(r.srv.Close)
	r.client = http.DefaultClient
	return r
}

// follower is the i-th scanner, a follower the fake WeChat knows.
func (r *rig) follower(i int) string {
	o := fmt.Sprintf("o-scanner-%05d", i)
	r.fake.AddFollower(appID, o)
	return o
}

// post sends the scan events of openIDs for code as the deliverer does and returns the status.
func (r *rig) post(t *testing.T, code string, openIDs ...string) int {
	t.Helper()
	status, err := r.do(t, code, openIDs...)
	if err != nil {
		t.Fatal(err)
	}
	return status
}

func (r *rig) do(t *testing.T, code string, openIDs ...string) (int, error) {
	t.Helper()
	events := make([]cloudevents.Event, len(openIDs))
	for i, o := range openIDs {
		e := cloudevents.NewEvent()
		e.SetID(fmt.Sprintf("%s-%d", o, i))
		e.SetType(delivery.EventType)
		e.SetSource("/wechat/" + appID)
		e.SetTime(r.clk.Now())
		ns, name := splitCode(code)
		if err := e.SetData(cloudevents.ApplicationJSON, delivery.ScanEvent{Namespace: ns, Name: name, OpenID: o, Event: "subscribe", Scene: "1"}); err != nil {
			return 0, err
		}
		events[i] = e
	}
	req, err := cehttp.NewHTTPRequestFromEvents(t.Context(), r.srv.URL, events)
	if err != nil {
		return 0, err
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

func splitCode(code string) (string, string) {
	for i := range code {
		if code[i] == '/' {
			return code[:i], code[i+1:]
		}
	}
	return "", code
}

// tagged is whether the fake WeChat shows the follower with the tag.
func (r *rig) tagged(openID, tag string) bool {
	for _, tg := range r.fake.FollowerTags(appID, openID) {
		if tg.ID == r.tags[tag] {
			return true
		}
	}
	return false
}

func (r *rig) calls() int { return r.fake.Calls(wechattest.EndpointBatchTagging) }

// TestThousandScans: 1,000 scans of a code with one tag, in 20 requests of 50 sent at once as
// the deliverer's workers do, tag 1,000 followers in 20 batchtagging calls, without the clock
// moving: full batches go at once.
func TestThousandScans(t *testing.T) {
	r := newRig(t, DefaultOptions(), "春季海报")
	var wg sync.WaitGroup
	statuses := make([]int, 20)
	for req := range 20 {
		openIDs := make([]string, 50)
		for i := range openIDs {
			openIDs[i] = r.follower(req*50 + i)
		}
		wg.Go(func() { statuses[req] = r.post(t, "shop/poster", openIDs...) })
	}
	wg.Wait()
	for i, s := range statuses {
		if s != http.StatusNoContent {
			t.Errorf("request %d answered %d, want 204", i, s)
		}
	}
	for i := range 1000 {
		if !r.tagged(fmt.Sprintf("o-scanner-%05d", i), "春季海报") {
			t.Fatalf("scanner %d is not tagged", i)
		}
	}
	if n := r.calls(); n > 20 {
		t.Errorf("%d batchtagging calls for 1,000 followers, want at most 20", n)
	}
	st := r.t.Stats()["shop/poster"]
	if st.Tagged != 1000 || st.LastError != "" {
		t.Errorf("the code's figures: %+v, want 1,000 tagged", st)
	}
}

// TestBatchWait: a request of fewer than 50 waits --tag-batch-wait for others of its tag, then
// goes as it is; two requests within the wait share one call.
func TestBatchWait(t *testing.T) {
	r := newRig(t, DefaultOptions(), "广东")
	a, b := r.follower(1), r.follower(2)
	answers := make(chan int, 2)
	go func() { answers <- r.post(t, "shop/poster", a) }()
	go func() { answers <- r.post(t, "shop/poster", b) }()
	waitFor(t, "both scanners batched", func() bool {
		r.t.mu.Lock()
		defer r.t.mu.Unlock()
		return len(r.t.members) == 2 && r.clk.HasWaiters()
	})
	select {
	case s := <-answers:
		t.Fatalf("answered %d before the batch wait", s)
	case <-time.After(50 * time.Millisecond):
	}
	if r.calls() != 0 {
		t.Fatal("called before the batch wait")
	}
	r.clk.Step(DefaultOptions().BatchWait)
	for range 2 {
		if s := <-answers; s != http.StatusNoContent {
			t.Errorf("answered %d, want 204", s)
		}
	}
	if n := r.calls(); n != 1 || !r.tagged(a, "广东") || !r.tagged(b, "广东") {
		t.Errorf("%d calls, tagged %v %v; want both in one call", n, r.tagged(a, "广东"), r.tagged(b, "广东"))
	}
}

// TestSteadyStream: 1,000 scans of a code with one tag arriving as the deliverer sends a steady
// stream, a request of 16 every 50 ms (a ledger append of 16 pushers), tag 1,000 followers in 20
// calls: the rest left after the full calls waits from its own oldest member, so the stream never
// sends a part call (timed from the batch's first member, it sent one every second: 22 calls).
func TestSteadyStream(t *testing.T) {
	r := newRig(t, DefaultOptions(), "春季海报")
	const scans, perRequest = 1000, 16
	answers := make(chan int, scans/perRequest+1)
	for from := 0; from < scans; from += perRequest {
		var openIDs []string
		for i := from; i < min(from+perRequest, scans); i++ {
			openIDs = append(openIDs, r.follower(i))
		}
		go func() { answers <- r.post(t, "shop/poster", openIDs...) }()
		waitFor(t, "the request's scanners batched", func() bool {
			r.t.mu.Lock()
			defer r.t.mu.Unlock()
			var tagged int64
			if st := r.t.stats["shop/poster"]; st != nil {
				tagged = st.Tagged
			}
			return int(tagged)+len(r.t.members) == from+len(openIDs)
		})
		r.clk.Step(50 * time.Millisecond)
	}
	// What is left waits its batch wait and goes (none is left: 1,000 is 20 full calls).
	r.clk.Step(DefaultOptions().BatchWait)
	for range (scans + perRequest - 1) / perRequest {
		if s := <-answers; s != http.StatusNoContent {
			t.Fatalf("answered %d, want 204", s)
		}
	}
	if n := r.calls(); n != scans/50 {
		t.Errorf("%d batchtagging calls for %d scans of one tag in a steady stream, want %d", n, scans, scans/50)
	}
}

// TestReady: which members of a tag's batch go now, and when the others are due.
func TestReady(t *testing.T) {
	now := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	wait := time.Second
	// batch is n members, the first old of them joined 2 waits ago, the others at joined.
	batch := func(n, old int, joined time.Time) []*member {
		ms := make([]*member, n)
		for i := range ms {
			ms[i] = &member{joined: joined}
			if i < old {
				ms[i].joined = now.Add(-2 * wait)
			}
		}
		return ms
	}
	for _, tc := range []struct {
		name string
		ms   []*member
		n    int
		due  time.Time
	}{
		{"none", nil, 0, time.Time{}},
		{"one, just come: waits", batch(1, 0, now), 0, now.Add(wait)},
		{"49 waiting since half a wait", batch(49, 0, now.Add(-wait/2)), 0, now.Add(wait / 2)},
		{"one that waited the wait", batch(1, 0, now.Add(-wait)), 1, time.Time{}},
		{"a full call goes at once", batch(50, 0, now), 50, time.Time{}},
		{"two full calls", batch(100, 0, now), 100, time.Time{}},
		// The stream's case: the batch's first members waited long, but went in full calls; the
		// rest came just now and waits from its own oldest.
		{"full calls go, the rest just come waits", batch(120, 100, now), 100, now.Add(wait)},
		{"full calls go, the rest waited too", batch(120, 101, now), 120, time.Time{}},
		{"the rest waits from its oldest", batch(70, 0, now.Add(-wait/4)), 50, now.Add(3 * wait / 4)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, due := ready(tc.ms, now, wait)
			if n != tc.n || !due.Equal(tc.due) {
				t.Errorf("ready = %d, %s; want %d, %s", n, due, tc.n, tc.due)
			}
		})
	}
}

// TestDuplicateTagsOnce: a scan sent again (a retry of the deliverer, a duplicate in a request,
// the same follower scanning twice) tags once: the memory answers without a call.
func TestDuplicateTagsOnce(t *testing.T) {
	r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a", "b")
	o := r.follower(1)
	if s := r.post(t, "shop/poster", o, o); s != http.StatusNoContent {
		t.Fatalf("answered %d", s)
	}
	if n := r.calls(); n != 2 {
		t.Fatalf("%d calls, want 2: one per tag, the duplicate in the request none", n)
	}
	if s := r.post(t, "shop/poster", o); s != http.StatusNoContent || r.calls() != 2 {
		t.Errorf("sent again: answered %d after %d calls, want 204 and no call", s, r.calls())
	}
}

// TestErrcodes: what each of WeChat's answers leads to. Followers WeChat refuses for good are
// skipped and counted, the others of their call tagged; what may work later answers 503 and
// costs no call for what was tagged when the deliverer sends it again.
func TestErrcodes(t *testing.T) {
	t.Run("an invalid and a foreign OpenID among followers", func(t *testing.T) {
		r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a")
		r.fake.AddAccount("wxother0000000001", "other")
		r.fake.AddFollower("wxother0000000001", "o-foreign")
		var ok []string
		for i := range 8 {
			ok = append(ok, r.follower(i))
		}
		if s := r.post(t, "shop/poster", append(ok, "o-nobody", "o-foreign")...); s != http.StatusNoContent {
			t.Fatalf("answered %d, want 204: refused followers are skipped for good", s)
		}
		for _, o := range ok {
			if !r.tagged(o, "a") {
				t.Errorf("%s not tagged beside the refused ones", o)
			}
		}
		st := r.t.Stats()["shop/poster"]
		if st.Tagged != 8 || st.Skipped[SkipInvalidOpenID] != 1 || st.Skipped[SkipForeignOpenID] != 1 {
			t.Errorf("figures %+v, want 8 tagged, 1 invalid, 1 foreign", st)
		}
		calls := r.calls()
		if s := r.post(t, "shop/poster", "o-nobody"); s != http.StatusNoContent || r.calls() != calls {
			t.Errorf("a skipped follower again: %d after %d more calls, want 204 and none", s, r.calls()-calls)
		}
	})
	t.Run("a follower at 20 tags", func(t *testing.T) {
		r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a")
		full, other := r.follower(1), r.follower(2)
		for i := range wechat.MaxTagsPerFollower {
			tg := r.fake.AddTag(appID, fmt.Sprintf("t%d", i))
			r.codes["shop/full"] = Code{Creds: r.codes["shop/poster"].Creds, TagIDs: []int64{tg.ID}}
			if s := r.post(t, "shop/full", full); s != http.StatusNoContent {
				t.Fatalf("tag %d: %d", i, s)
			}
		}
		if s := r.post(t, "shop/poster", full, other); s != http.StatusNoContent || r.tagged(full, "a") || !r.tagged(other, "a") {
			t.Fatalf("answered %d, tagged %v %v; want 204, the full follower skipped, the other tagged", s, r.tagged(full, "a"), r.tagged(other, "a"))
		}
		if st := r.t.Stats()["shop/poster"]; st.Skipped[SkipFollowerAtLimit] != 1 {
			t.Errorf("figures %+v, want 1 follower_tag_limit", st)
		}
	})
	for _, c := range []struct {
		name    string
		errcode int
	}{{"WeChat busy", -1}, {"the daily quota", 45009}, {"the tag deleted at WeChat", 45159}} {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a", "b")
			o := r.follower(1)
			r.fake.FailNext(wechattest.EndpointBatchTagging, 1, wechattest.Fault{Errcode: c.errcode})
			if s := r.post(t, "shop/poster", o); s != http.StatusServiceUnavailable {
				t.Fatalf("answered %d, want 503", s)
			}
			st := r.t.Stats()["shop/poster"]
			if st.LastError == "" || st.Tagged != 1 {
				t.Errorf("figures %+v, want the errcode as the last error and the other tag's call done", st)
			}
			calls := r.calls()
			if s := r.post(t, "shop/poster", o); s != http.StatusNoContent || r.calls() != calls+1 || !r.tagged(o, "a") || !r.tagged(o, "b") {
				t.Errorf("sent again: %d with %d calls; want 204, one call for the tag that failed", s, r.calls()-calls)
			}
		})
	}
	t.Run("WeChat unreachable", func(t *testing.T) {
		r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a")
		o := r.follower(1)
		r.fake.FailNext(wechattest.EndpointBatchTagging, 1, wechattest.Fault{HTTPStatus: http.StatusBadGateway})
		if s := r.post(t, "shop/poster", o); s != http.StatusServiceUnavailable {
			t.Fatalf("answered %d, want 503", s)
		}
		if s := r.post(t, "shop/poster", o); s != http.StatusNoContent || !r.tagged(o, "a") {
			t.Errorf("sent again: %d", s)
		}
	})
	t.Run("a tag not created yet", func(t *testing.T) {
		r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a")
		c := r.codes["shop/poster"]
		c.Missing = []string{"b"}
		r.codes["shop/poster"] = c
		o := r.follower(1)
		if s := r.post(t, "shop/poster", o); s != http.StatusServiceUnavailable || !r.tagged(o, "a") {
			t.Fatalf("answered %d, tagged %v; want 503 and the tag that exists given", s, r.tagged(o, "a"))
		}
	})
	t.Run("a code gone", func(t *testing.T) {
		r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a")
		if s := r.post(t, "shop/deleted", r.follower(1)); s != http.StatusNoContent || r.calls() != 0 {
			t.Fatalf("answered %d after %d calls, want 204 and none", s, r.calls())
		}
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
