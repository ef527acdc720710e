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
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/tagging"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// oneCode is a tagging.Lookup of the one code of TestTaggingThroughTheLedger.
type oneCode struct{ code tagging.Code }

func (o oneCode) Code(context.Context, string, string) (tagging.Code, bool, error) {
	return o.code, true, nil
}

// TestTaggingThroughTheLedger: scans of a code with spec.tags, pushed to a real replica, are
// stored with their events in the ledger and delivered by its deliverer to the tagging endpoint
// the push config publishes (TLS, trusting the published certificate alone), which tags every
// scanner at the fake WeChat in calls of up to 50, through the manager replaced mid-stream (a
// new address and certificate); the segments record the endpoint's offsets under "tagging". The endpoint's token check is
// package tagging's test (the test's API server client has no token to send).
func TestTaggingThroughTheLedger(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxtagging", "tok-tagging", testKey, "")
	fake, tag, api, lookup := f.taggingWeChat(p)
	// A manager's endpoint: its own Tagger (an empty memory), certificate and port, published.
	start := func() (stop func()) {
		return f.taggingEndpoint(api, lookup, clock.RealClock{}, tagging.Options{BatchWait: 200 * time.Millisecond, Remember: 1000, Calls: 2})
	}
	stop := start()
	t.Cleanup(func() { stop() })

	r := f.replica(Options{})
	code := f.taggedCode(r, p, "TICKET-TAG", 88)

	const scanners = 120
	createTime := time.Now().Unix()
	for i := range scanners {
		if i == scanners/2 {
			// The manager replaced mid-stream: what the first did not acknowledge goes to the
			// second, at its address, trusting its certificate.
			stop()
			stop = start()
		}
		o := fmt.Sprintf("o-tagged-%03d", i)
		fake.AddFollower(p.appID, o)
		push := p.build(t, scanXML(o, createTime, "subscribe", "qrscene_88", "TICKET-TAG"))
		for range 1 + i%2 { // every other push twice: WeChat's retry
			status, body := push.send(t, r.url)
			wantOK(t, status, body, "success")
		}
	}
	waitTagged(t, fake, p.appID, tag, scanners, func(i int) string { return fmt.Sprintf("o-tagged-%03d", i) })
	calls := fake.Calls(wechattest.EndpointBatchTagging)
	t.Logf("%d scanners (%d pushes) tagged in %d batchtagging calls", scanners, scanners*3/2, calls)
	if calls > scanners {
		t.Errorf("%d calls for %d scanners: not batched", calls, scanners)
	}
	// The second manager's figures: the scanners it tagged, at least the second half.
	scantest.WaitFor(t, "the code's status.tagging", func() bool {
		var c qrv1alpha1.WeChatQRCode
		if err := f.C.Get(t.Context(), client.ObjectKeyFromObject(code), &c); err != nil || c.Status.Tagging == nil {
			return false
		}
		return c.Status.Tagging.Tagged >= scanners/2 && c.Status.Tagging.LastError == ""
	})
	scantest.WaitFor(t, "the tagging offsets", func() bool {
		var segs qrv1alpha1.WeChatScanLedgerList
		if err := env.Get(t).Client.List(t.Context(), &segs, client.InNamespace(f.NS)); err != nil || len(segs.Items) == 0 {
			return false
		}
		for _, s := range segs.Items {
			if _, ok := s.Status.Sinks["tagging"]; !ok || s.Status.Delivered == 0 {
				return false
			}
		}
		return true
	})
}

// taggingEndpoint starts a manager's tagging endpoint, with its own Tagger (an empty memory) on
// clk, certificate and port, publishes it in the push config Secret and returns what stops it.
func (f *fixture) taggingEndpoint(api tagging.API, lookup tagging.Lookup, clk clock.WithTicker, opts tagging.Options) (stop func()) {
	t := f.T
	t.Helper()
	tg, err := tagging.New(api, lookup, clk, opts, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	anyone := func(_ logr.Logger, h http.Handler) (http.Handler, error) { return h, nil }
	published := make(chan *pushconfig.Tagging, 1)
	srv := tagging.NewServer(tg, tagging.ServerOptions{BindAddress: "127.0.0.1:0", AdvertiseHost: "127.0.0.1", StatusInterval: 200 * time.Millisecond}, anyone,
		func(e *pushconfig.Tagging) { published <- e }, f.C.Status(), logr.Discard())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	if err := pushconfig.WriteConfig(f.Ctx, f.C, f.C, f.NS, f.accounts, <-published); err != nil {
		t.Fatal(err)
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("tagging server: %v", err)
		}
	}
}

// TestThousandScannersTwentyCalls: 1,000 distinct scanners of a code with one tag, pushed by 16
// at a time to a real replica, go through the ledger and its deliverer to the tagging endpoint
// and are tagged at the fake WeChat in the least number of batchtagging calls, 20 of 50. The
// Tagger's clock is the stream's: it moves 100 ms per 50 scans pushed (500 scans a second, a
// tenth of the batch wait per call's worth), so a batch whose wait were timed wrong would go
// part full mid-stream, and it stops with the pushes, so none goes part full at the end.
func TestThousandScannersTwentyCalls(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxthousand", "tok-thousand", testKey, "")
	fake, tag, api, lookup := f.taggingWeChat(p)
	stream := clocktesting.NewFakeClock(time.Now())
	opts := tagging.DefaultOptions()
	t.Cleanup(f.taggingEndpoint(api, lookup, stream, opts))

	r := f.replica(Options{})
	f.taggedCode(r, p, "TICKET-THOUSAND", 89)

	const scanners, pushers = 1000, 16
	createTime := time.Now().Unix()
	pushes := make(chan *push, scanners)
	for i := range scanners {
		o := fmt.Sprintf("o-thousand-%04d", i)
		fake.AddFollower(p.appID, o)
		pushes <- p.build(t, scanXML(o, createTime, "subscribe", "qrscene_89", "TICKET-THOUSAND"))
	}
	close(pushes)
	start := time.Now()
	var pushed atomic.Int64
	var wg sync.WaitGroup
	for range pushers {
		wg.Go(func() {
			for push := range pushes {
				mustSend(t, push, r)
				if pushed.Add(1)%50 == 0 {
					stream.Step(opts.BatchWait / 10)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	defer func() {
		// Also when the wait fails: how far it got.
		t.Logf("%d scanners pushed in %s (%.0f a second), tagged in %d batchtagging calls %s later", scanners, took.Round(time.Millisecond),
			scanners/took.Seconds(), fake.Calls(wechattest.EndpointBatchTagging), (time.Since(start) - took).Round(time.Millisecond))
	}()
	waitTagged(t, fake, p.appID, tag, scanners, func(i int) string { return fmt.Sprintf("o-thousand-%04d", i) })
	calls := fake.Calls(wechattest.EndpointBatchTagging)
	if calls > scanners/50 {
		t.Errorf("%d batchtagging calls for %d scanners of one tag, want at most %d", calls, scanners, scanners/50)
	}
}

// taggingWeChat is the fake WeChat knowing p's account with the tag 春季海报, a client of it, and
// the Lookup of a code of the account with that tag.
func (f *fixture) taggingWeChat(p *pusher) (*wechattest.Server, wechattest.Tag, tagging.API, tagging.Lookup) {
	f.T.Helper()
	fake, err := wechattest.NewServer(wechattest.Options{})
	if err != nil {
		f.T.Fatal(err)
	}
	f.T.Cleanup(fake.Close)
	const secret = "tagging-secret"
	fake.AddAccount(p.appID, secret)
	tag := fake.AddTag(p.appID, "春季海报")
	api := wechat.New(wechat.Options{APIBaseURL: fake.URL, ImageBaseURL: fake.URL})
	return fake, tag, api, oneCode{tagging.Code{Creds: wechat.Credentials{AppID: p.appID, AppSecret: secret}, TagIDs: []int64{tag.ID}}}
}

// taggedCode creates the code poster of p's account with the tag 春季海报 and waits for r to
// attribute its ticket.
func (f *fixture) taggedCode(r *replica, p *pusher, ticket string, scene int64) *qrv1alpha1.WeChatQRCode {
	f.T.Helper()
	code := scantest.NewCode("", "poster", p.appID, ticket, scene, "")
	code.Spec.Tags = []qrv1alpha1.TagName{"春季海报"}
	f.Code(code)
	waitIndexed(f.T, []*replica{r}, p.appID, ticket)
	return code
}

// waitTagged waits until the fake shows the n followers openID(i) with tag.
func waitTagged(t *testing.T, fake *wechattest.Server, appID string, tag wechattest.Tag, n int, openID func(int) string) {
	t.Helper()
	scantest.WaitFor(t, "every scanner tagged", func() bool {
		for i := range n {
			if !slices.ContainsFunc(fake.FollowerTags(appID, openID(i)), func(tg wechattest.Tag) bool { return tg.ID == tag.ID }) {
				return false
			}
		}
		return true
	})
}
