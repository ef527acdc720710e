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
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// The API server starts on first use, so that the unit tests and fuzz targets of this package
// run without one.
var (
	env testenv.Lazy

	// logs collects what the replicas log, to check that no secret ends up there.
	logs   bytes.Buffer
	logsMu sync.Mutex
)

func TestMain(m *testing.M) {
	ctrl.SetLogger(funcr.New(func(prefix, args string) {
		logsMu.Lock()
		defer logsMu.Unlock()
		fmt.Fprintln(&logs, prefix, args)
	}, funcr.Options{}))
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the API server:", err)
	}
	os.Exit(code)
}

func apiServer(t *testing.T) *testenv.Env {
	t.Helper()
	return env.Get(t)
}

// fixture is one test's namespace, accounts and codes on the shared API server.
type fixture struct {
	t   *testing.T
	c   client.Client
	ns  string
	ctx context.Context
	// clock is the folder's: the dedupe window and the ledger's collection step on it.
	clock *clocktesting.FakeClock
	folds *folder
	// replicas started, for their identities.
	started int
	// accounts are what the push config Secret holds.
	accounts []pushconfig.Account
}

func newFixture(t *testing.T) *fixture {
	e := apiServer(t)
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix[:min(len(prefix), 40)], "-") + "-"}}
	f := &fixture{t: t, c: e.Client, ctx: context.Background(), clock: clocktesting.NewFakeClock(time.Now())}
	if err := f.c.Create(f.ctx, ns); err != nil {
		t.Fatal(err)
	}
	f.ns = ns.Name
	return f
}

// account adds an account to the push config Secret, as the manager projects it, and returns a
// pusher for it (plaintext mode without a key, else safe mode with key). The AppID gets the
// namespace's random suffix: attribution is cluster-wide, and a test run twice (-count) must not
// see its earlier codes.
func (f *fixture) account(name, appID, token, key, previousKey string) *pusher {
	f.t.Helper()
	appID += f.ns[strings.LastIndex(f.ns, "-"):]
	a := pushconfig.Account{Ref: pushconfig.Ref{Kind: qrv1alpha1.KindWeChatAccount, Namespace: f.ns, Name: name},
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
	f.t.Helper()
	if err := pushconfig.Write(f.ctx, f.c, f.c, f.ns, f.accounts...); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) cipher(key, appID string) *wxcrypto.Cipher {
	c, err := wxcrypto.NewCipher(key, appID)
	if err != nil {
		f.t.Fatal(err)
	}
	return c
}

// code creates a code with its status as the manager would have written it.
func (f *fixture) code(c *qrv1alpha1.WeChatQRCode) *qrv1alpha1.WeChatQRCode {
	f.t.Helper()
	if c.Namespace == "" {
		c.Namespace = f.ns
	}
	status := c.Status
	if err := f.c.Create(f.ctx, c); err != nil {
		f.t.Fatal(err)
	}
	c.Status = status
	if err := f.c.Status().Update(f.ctx, c); err != nil {
		f.t.Fatal(err)
	}
	return c
}

// counts reads a code's counters from the API server, not from any cache.
func (f *fixture) counts(c *qrv1alpha1.WeChatQRCode) (scans, subscribes string) {
	f.t.Helper()
	var got qrv1alpha1.WeChatQRCode
	if err := f.c.Get(f.ctx, client.ObjectKeyFromObject(c), &got); err != nil {
		f.t.Fatal(err)
	}
	return got.Annotations[qrv1alpha1.AnnotationScans], got.Annotations[qrv1alpha1.AnnotationSubscribes]
}

// wantCounts folds the fixture's ledger, then checks c's count annotations.
func (f *fixture) wantCounts(c *qrv1alpha1.WeChatQRCode, scans, subscribes string) {
	f.t.Helper()
	f.fold()
	if s, sub := f.counts(c); s != scans || sub != subscribes {
		f.t.Fatalf("%s: scans=%q subscribes=%q, want %q and %q", c.Name, s, sub, scans, subscribes)
	}
}

// folder is a folder of the fixture's ledger, as a freshly elected replica starts it, on the
// fixture's fake clock. It reads the codes live: a cache's lag is not what these tests are about.
func (f *fixture) folder(writer client.Writer) *folder {
	return f.folderWith(writer, DefaultOptions().ViewPatchRate)
}

// folderWith is f.folder patching at most viewRate codes' annotations per second of f.clock,
// folding every second.
func (f *fixture) folderWith(writer client.Writer, viewRate float64) *folder {
	opts := DefaultOptions()
	opts.Namespace, opts.FoldInterval, opts.ViewPatchRate = f.ns, time.Second, viewRate
	return newFolder(f.clock, f.c, f.c, writer, opts, ctrl.Log)
}

// fold runs one round of the fixture's folder.
func (f *fixture) fold() {
	f.t.Helper()
	if f.folds == nil {
		f.folds = f.folder(f.c)
	}
	if err := f.folds.fold(f.ctx); err != nil {
		f.t.Fatal(err)
	}
}

// replica is one callback server process: its own manager, cache and HTTP listener.
type replica struct {
	*Server
	url  string
	stop func()
}

func (f *fixture) replica(opts Options) *replica {
	f.t.Helper()
	if opts.CommitWindow == 0 {
		opts = DefaultOptions()
	}
	// The tests fold themselves, on the fixture's clock.
	f.started++
	opts.Namespace, opts.Identity, opts.FoldInterval = f.ns, fmt.Sprintf("replica-%d", f.started), 0
	mgr, s, err := NewManager(env.Get(f.t).Config, Config{Options: opts, BindAddress: "0", HealthProbeBindAddress: "0", MetricsBindAddress: "0"})
	if err != nil {
		f.t.Fatal(err)
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
				f.t.Error(err)
			}
		})
	}
	f.t.Cleanup(r.stop)
	waitFor(f.t, "the replica to be ready", func() bool {
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
	f.t.Helper()
	p := f.account("a", appID, "tok-"+appID, testKey, "")
	rs := f.replicas(3)
	code := f.code(newCode("", "code", p.appID, ticket, scene, reply))
	waitIndexed(f.t, rs, p.appID, ticket)
	return p, rs, code
}

// waitIndexed waits until every replica's cache attributes ticket to a code: pushes that arrive
// earlier are (correctly) acknowledged as unmatched.
func waitIndexed(t *testing.T, rs []*replica, appID, ticket string) {
	t.Helper()
	for _, r := range rs {
		waitFor(t, "the cache to index "+ticket, func() bool {
			c, _, err := attribute(r.codes, appID, &scan{ticket: ticket})
			return err == nil && c != nil
		})
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantOK(t *testing.T, code int, body, want string) {
	t.Helper()
	if code != http.StatusOK || (want != "" && body != want) {
		t.Fatalf("got %d %q, want 200 %q", code, body, want)
	}
}
