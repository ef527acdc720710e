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
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/fold"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// The API server starts on first use, so that the unit tests and fuzz targets of this package
// run without one.
var (
	env testenv.Lazy
	// logs collects what the replicas log, to check that no secret ends up there.
	logs scantest.Logs
)

func TestMain(m *testing.M) { scantest.Main(m, &env, &logs) }

// fixture is one test's namespace, accounts and codes on the shared API server.
type fixture struct {
	*scantest.Namespace
	// clock is the folder's: the dedupe window and the ledger's collection step on it.
	clock *clocktesting.FakeClock
	folds *fold.Folder
	// replicas started, for their identities.
	started int
	// accounts are what the push config Secret holds.
	accounts []pushconfig.Account
}

func newFixture(t *testing.T) *fixture {
	return &fixture{Namespace: scantest.NewNamespace(t, env.Get(t)), clock: clocktesting.NewFakeClock(time.Now())}
}

// account adds an account to the push config Secret, as the manager projects it, and returns a
// pusher for it (plaintext mode without a key, else safe mode with key). The AppID gets the
// namespace's random suffix: attribution is cluster-wide, and a test run twice (-count) must not
// see its earlier codes.
func (f *fixture) account(name, appID, token, key, previousKey string) *pusher {
	f.T.Helper()
	appID += f.NS[strings.LastIndex(f.NS, "-"):]
	a := pushconfig.Account{Ref: pushconfig.Ref{Kind: qrv1alpha1.KindWeChatAccount, Namespace: f.NS, Name: name},
		AppID: appID, Token: token, EncodingAESKey: key, PreviousEncodingAESKey: previousKey}
	p := &pusher{appID: appID, token: token, mode: plaintext}
	if key != "" {
		p.mode, p.cipher = safe, f.cipher(key, appID)
	}
	f.accounts = append(f.accounts, a)
	f.writeAccounts()
	return p
}

// writeAccounts writes f.accounts into the push config Secret of f's namespace.
func (f *fixture) writeAccounts() {
	f.T.Helper()
	if err := pushconfig.Write(f.Ctx, f.C, f.C, f.NS, f.accounts...); err != nil {
		f.T.Fatal(err)
	}
}

func (f *fixture) cipher(key, appID string) *wxcrypto.Cipher {
	c, err := wxcrypto.NewCipher(key, appID)
	if err != nil {
		f.T.Fatal(err)
	}
	return c
}

// wantCounts folds the fixture's ledger, then checks c's count annotations.
func (f *fixture) wantCounts(c *qrv1alpha1.WeChatQRCode, scans, subscribes string) {
	f.T.Helper()
	f.fold()
	if s, sub := f.Counts(c); s != scans || sub != subscribes {
		f.T.Fatalf("%s: scans=%q subscribes=%q, want %q and %q", c.Name, s, sub, scans, subscribes)
	}
}

// fold runs one round of the fixture's folder.
func (f *fixture) fold() {
	f.T.Helper()
	if f.folds == nil {
		// As a freshly elected replica starts it, on the fixture's clock. It reads the codes
		// live: a cache's lag is not what these tests are about.
		opts := fold.DefaultOptions()
		opts.Namespace, opts.Interval = f.NS, time.Second
		f.folds = fold.New(f.clock, f.C, f.C, f.C, nil, opts, ctrl.Log)
	}
	if err := f.folds.Fold(f.Ctx); err != nil {
		f.T.Fatal(err)
	}
}

// replica is one callback server process: its own manager, cache and HTTP listener.
type replica struct {
	*Server
	url  string
	stop func()
}

func (f *fixture) replica(opts Options) *replica {
	f.T.Helper()
	if opts.CommitWindow == 0 {
		opts = DefaultOptions()
	}
	// The tests fold themselves, on the fixture's clock.
	f.started++
	opts.Namespace, opts.Identity, opts.Fold.Interval = f.NS, fmt.Sprintf("replica-%d", f.started), 0
	mgr, s, err := NewManager(env.Get(f.T).Config, Config{Options: opts, BindAddress: "0", HealthProbeBindAddress: "0", MetricsBindAddress: "0"})
	if err != nil {
		f.T.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	srv := httptest.NewServer(s)
	r := &replica{Server: s, url: srv.URL}
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			srv.Close()
			cancel()
			if err := <-done; err != nil {
				f.T.Error(err)
			}
		})
	}
	f.T.Cleanup(r.stop)
	scantest.WaitFor(f.T, "the replica to be ready", func() bool {
		sync, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return s.keyring.loaded.Load() && mgr.GetCache().WaitForCacheSync(sync)
	})
	return r
}

// replicas starts n replicas with default options.
func (f *fixture) replicas(n int) []*replica {
	var rs []*replica
	for range n {
		rs = append(rs, f.replica(Options{}))
	}
	return rs
}

// threeReplicasOneCode starts three replicas serving a safe-mode account and creates a code of it
// that every replica's cache knows.
func (f *fixture) threeReplicasOneCode(appID, ticket string, scene int64, reply string) (*pusher, []*replica, *qrv1alpha1.WeChatQRCode) {
	f.T.Helper()
	p := f.account("a", appID, "tok-"+appID, testKey, "")
	rs := f.replicas(3)
	code := f.Code(scantest.NewCode("", "code", p.appID, ticket, scene, reply))
	waitIndexed(f.T, rs, p.appID, ticket)
	return p, rs, code
}

// waitIndexed waits until every replica's cache attributes ticket to a code: pushes that arrive
// earlier are (correctly) acknowledged as unmatched.
func waitIndexed(t *testing.T, rs []*replica, appID, ticket string) {
	t.Helper()
	for _, r := range rs {
		scantest.WaitFor(t, "the cache to index "+ticket, func() bool {
			c, _, err := attribute(r.codes, appID, &scan{ticket: ticket})
			return err == nil && c != nil
		})
	}
}

func wantOK(t *testing.T, code int, body, want string) {
	t.Helper()
	if code != http.StatusOK || (want != "" && body != want) {
		t.Fatalf("got %d %q, want 200 %q", code, body, want)
	}
}

// TestExactlyOnceAcrossReplicas: every event of a hot code reaches one replica and its retry
// the other (as when WeChat's answer was late, or the first replica died before answering), at
// full speed; both append it to their own segment. The fold counts each event once, and so does a
// new folder that starts after the originals were folded and the retries were not (a folder
// restart between the original and its retry). Past the dedupe window the segments go.
func TestExactlyOnceAcrossReplicas(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxonce01", "tok-once", testKey, "")
	rs := f.replicas(2)
	code := f.Code(scantest.NewCode("", "hot", p.appID, "T-ONCE", 1, ""))
	waitIndexed(t, rs, p.appID, "T-ONCE")

	const events, workers = 400, 16
	msg := func(i int) string {
		if i%4 == 0 {
			return scanXML("o-"+strconv.Itoa(i), 1700000000, "subscribe", "qrscene_1", "T-ONCE")
		}
		return scanXML("o-"+strconv.Itoa(i), 1700000000, "SCAN", "1", "T-ONCE")
	}
	send := func(first, last int, to func(i int) *replica) {
		var next atomic.Int64
		next.Store(int64(first))
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for i := int(next.Add(1)) - 1; i < last; i = int(next.Add(1)) - 1 {
					sendRetrying(t, p.build(t, msg(i)), to(i))
				}
			})
		}
		wg.Wait()
	}
	// Half the events: original and retry both appended before any fold.
	send(0, events/2, func(i int) *replica { return rs[i%2] })
	send(0, events/2, func(i int) *replica { return rs[1-i%2] })
	f.wantCounts(code, strconv.Itoa(events/2), strconv.Itoa(events/8))
	// The other half: the originals are folded, then the folder is replaced, then the retries come.
	send(events/2, events, func(i int) *replica { return rs[i%2] })
	f.fold()
	f.folds = nil
	send(events/2, events, func(i int) *replica { return rs[1-i%2] })
	f.wantCounts(code, strconv.Itoa(events), strconv.Itoa(events/4))
	// The account has no sink, but the folder still waits for the deliverer to say so.
	f.WaitDelivered()

	// Within the window the segments stay (a retry may still come); past it they go.
	f.clock.Step(fold.DefaultOptions().DedupeWindow)
	f.fold()
	if n := f.Segments(); n == 0 {
		t.Fatal("segments collected within the dedupe window")
	}
	f.clock.Step(ledger.MaxSegmentAge + time.Minute)
	f.wantCounts(code, strconv.Itoa(events), strconv.Itoa(events/4))
	if n := f.Segments(); n != 0 {
		t.Fatalf("%d segments left after the dedupe window", n)
	}
	// The totals do not depend on the segments any more.
	f.folds = nil
	f.wantCounts(code, strconv.Itoa(events), strconv.Itoa(events/4))
}
