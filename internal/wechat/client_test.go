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

package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

const (
	testAppID  = "wx0123456789abcdef"
	testSecret = "s3cret-0123456789abcdef01234567"
)

var testStart = time.Date(2026, 3, 2, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintln(&l.b, prefix, args)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixture struct {
	t     *testing.T
	srv   *wechattest.Server
	clk   *clocktesting.FakePassiveClock
	c     *Client
	logs  *lockedBuffer
	creds Credentials
}

// newFixture runs a client against a fresh fake sharing one fake clock. At the end it checks that
// no secret and no issued token reached the client's logs.
func newFixture(t *testing.T, mutate func(*Options)) *fixture {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(testStart)
	srv, err := wechattest.NewServer(wechattest.Options{Clock: clk, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddAccount(testAppID, testSecret)
	logs := &lockedBuffer{}
	logger := funcr.New(logs.write, funcr.Options{Verbosity: 10})
	opts := Options{
		APIBaseURL: srv.URL, ImageBaseURL: srv.URL, Clock: clk, Timeout: 2 * time.Second,
		QPS: 10000, Burst: 10000, Logger: &logger,
	}
	if mutate != nil {
		mutate(&opts)
	}
	f := &fixture{t: t, srv: srv, clk: clk, c: New(opts), logs: logs, creds: Credentials{AppID: testAppID, AppSecret: testSecret}}
	t.Cleanup(func() {
		out := logs.String()
		for _, secret := range append(srv.IssuedTokens(testAppID), testSecret) {
			if strings.Contains(out, secret) {
				t.Errorf("a credential leaked into the logs:\n%s", out)
			}
		}
	})
	return f
}

func (f *fixture) advance(d time.Duration) { f.clk.SetTime(f.clk.Now().Add(d)) }

var temp = CreateQRCodeRequest{Action: QRScene, SceneID: 42, ExpireSeconds: 3600}

func (f *fixture) create() (QRCode, error) {
	return f.c.CreateQRCode(context.Background(), f.creds, temp)
}

func (f *fixture) mustCreate() QRCode {
	f.t.Helper()
	code, err := f.create()
	if err != nil {
		f.t.Fatal(err)
	}
	return code
}

func (f *fixture) calls(endpoint string) int { return f.srv.Calls(endpoint) }

func forceFetches() float64 {
	return testutil.ToFloat64(tokenFetches.WithLabelValues("stable_force", "ok"))
}

func TestCreateQRCodeActions(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		req        CreateQRCodeRequest
		wantExpire int64
		wantScene  string
	}{
		{CreateQRCodeRequest{Action: QRScene, SceneID: 123, ExpireSeconds: 604800}, 604800, "123"},
		{CreateQRCodeRequest{Action: QRStrScene, SceneStr: "spring-sale", ExpireSeconds: 60}, 60, "spring-sale"},
		{CreateQRCodeRequest{Action: QRLimitScene, SceneID: 100000}, 0, "100000"},
		{CreateQRCodeRequest{Action: QRLimitStrScene, SceneStr: "长期海报"}, 0, "长期海报"},
		// WeChat clamps to 30 days; the answer, not the request, is what counts.
		{CreateQRCodeRequest{Action: QRScene, SceneID: 5, ExpireSeconds: 2592000 + 100}, 2592000, "5"},
	} {
		code, err := f.c.CreateQRCode(context.Background(), f.creds, tc.req)
		if err != nil {
			t.Errorf("%+v: %v", tc.req, err)
			continue
		}
		if code.ExpireSeconds != tc.wantExpire {
			t.Errorf("%+v: ExpireSeconds %d, want %d", tc.req, code.ExpireSeconds, tc.wantExpire)
		}
		issued, ok := f.srv.Code(code.Ticket)
		if !ok || issued.URL != code.URL || issued.Action != string(tc.req.Action) || issued.Scene() != tc.wantScene || issued.Permanent() == tc.req.Action.Temporary() {
			t.Errorf("%+v: the fake issued %+v", tc.req, issued)
		}
		resp, err := http.Get(f.c.ImageURL(code.Ticket))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/jpeg" {
			t.Errorf("%s: HTTP %d %s", f.c.ImageURL(code.Ticket), resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
}

func TestImageURLEscapesTicket(t *testing.T) {
	c := New(Options{})
	got := c.ImageURL("gQH4+/ab==")
	if want := "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=gQH4%2B%2Fab%3D%3D"; got != want {
		t.Errorf("ImageURL = %s, want %s", got, want)
	}
}

func TestRequestBody(t *testing.T) {
	for _, tc := range []struct {
		req  CreateQRCodeRequest
		want string
	}{
		{CreateQRCodeRequest{Action: QRScene, SceneID: 123, ExpireSeconds: 604800},
			`{"expire_seconds":604800,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":123}}}`},
		{CreateQRCodeRequest{Action: QRStrScene, SceneStr: "a", ExpireSeconds: 60},
			`{"expire_seconds":60,"action_name":"QR_STR_SCENE","action_info":{"scene":{"scene_str":"a"}}}`},
		{CreateQRCodeRequest{Action: QRLimitScene, SceneID: 1},
			`{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":1}}}`},
		{CreateQRCodeRequest{Action: QRLimitStrScene, SceneStr: "b"},
			`{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"b"}}}`},
	} {
		b, err := tc.req.body()
		if err != nil {
			t.Fatal(err)
		}
		got, _ := json.Marshal(b)
		if string(got) != tc.want {
			t.Errorf("body of %+v:\n got %s\nwant %s", tc.req, got, tc.want)
		}
	}
}

func TestInvalidRequestsAreNotSent(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		creds Credentials
		req   CreateQRCodeRequest
	}{
		{f.creds, CreateQRCodeRequest{Action: QRScene, SceneID: 1}},
		{f.creds, CreateQRCodeRequest{Action: QRLimitScene, SceneID: 1, ExpireSeconds: 60}},
		{Credentials{AppSecret: testSecret}, temp},
		{Credentials{AppID: testAppID}, temp},
	} {
		_, err := f.c.CreateQRCode(context.Background(), tc.creds, tc.req)
		if !errors.Is(err, ErrInvalidRequest) || ClassOf(err) != ClassTerminal {
			t.Errorf("%+v: err %v, want a terminal ErrInvalidRequest", tc.req, err)
		}
	}
	if n := f.calls(wechattest.EndpointCreate) + f.calls(wechattest.EndpointStableToken); n != 0 {
		t.Errorf("%d calls reached WeChat", n)
	}
}

func TestErrorClasses(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault wechattest.Fault
		class Class
		code  int
	}{
		{"system busy", wechattest.Fault{Errcode: -1}, ClassRetryable, -1},
		{"invalid appid", wechattest.Fault{Errcode: 40013}, ClassTerminal, 40013},
		{"invalid action name", wechattest.Fault{Errcode: 40052}, ClassTerminal, 40052},
		{"invalid action info", wechattest.Fault{Errcode: 40053}, ClassTerminal, 40053},
		{"ip not allowlisted", wechattest.Fault{Errcode: 40164}, ClassTerminal, 40164},
		{"daily quota", wechattest.Fault{Errcode: 45009}, ClassQuota, 45009},
		{"permanent cap", wechattest.Fault{Errcode: 45029}, ClassTerminal, 45029},
		{"unauthorized", wechattest.Fault{Errcode: 48001}, ClassTerminal, 48001},
		{"unknown errcode", wechattest.Fault{Errcode: 61234}, ClassTerminal, 61234},
		{"HTTP 502", wechattest.Fault{HTTPStatus: 502}, ClassRetryable, 0},
		{"HTTP 503", wechattest.Fault{HTTPStatus: 503}, ClassRetryable, 0},
		{"HTTP 404", wechattest.Fault{HTTPStatus: 404}, ClassTerminal, 0},
		{"timeout", wechattest.Fault{Hang: true}, ClassRetryable, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *Options) { o.Timeout = 200 * time.Millisecond })
			f.srv.FailNext(wechattest.EndpointCreate, 1, tc.fault)
			_, err := f.create()
			if err == nil {
				t.Fatal("want an error")
			}
			if ClassOf(err) != tc.class || ErrCode(err) != tc.code {
				t.Errorf("%v: class %v errcode %d, want %v %d", err, ClassOf(err), ErrCode(err), tc.class, tc.code)
			}
			var we *Error
			if errors.As(err, &we) && (!strings.Contains(err.Error(), fmt.Sprint(tc.code)) || !strings.Contains(err.Error(), we.Advice()) || we.Message == "") {
				t.Errorf("error %q must carry errcode, errmsg and advice", err)
			}
			if n := f.calls(wechattest.EndpointCreate); n != 1 {
				t.Errorf("%d create calls, want 1 (only token errors are retried here)", n)
			}
			if _, err := f.create(); err != nil {
				t.Errorf("next call: %v", err)
			}
		})
	}
}

func TestTokenErrorsRetryOnce(t *testing.T) {
	for _, code := range []int{40001, 40014, 42001} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			f := newFixture(t, nil)
			f.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: code})
			if _, err := f.create(); err != nil {
				t.Fatalf("one rejected token: %v", err)
			}
			if n := f.calls(wechattest.EndpointCreate); n != 2 {
				t.Errorf("%d create calls, want 2", n)
			}
			f.srv.FailNext(wechattest.EndpointCreate, 2, wechattest.Fault{Errcode: code})
			_, err := f.create()
			if ClassOf(err) != ClassToken || ErrCode(err) != code {
				t.Errorf("two rejections: %v, want a token-class %d", err, code)
			}
			if n := f.calls(wechattest.EndpointCreate); n != 4 {
				t.Errorf("%d create calls, want 4: a rejected retry is not retried again", n)
			}
		})
	}
}

func TestConcurrentCallersShareOneTokenFetch(t *testing.T) {
	f := newFixture(t, nil)
	f.srv.SetLatency(50 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			_, err := f.create()
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := f.calls(wechattest.EndpointStableToken); n != 1 {
		t.Errorf("%d token fetches for 100 concurrent callers, want 1", n)
	}
	if n := f.srv.CallsWithErrcode(wechattest.EndpointCreate, 0); n != 100 {
		t.Errorf("%d codes created, want 100", n)
	}
}

func TestOldTokenFailureKeepsNewerToken(t *testing.T) {
	f := newFixture(t, nil)
	f.mustCreate()
	forced := forceFetches()
	// A slow request carrying the first token reaches WeChat...
	f.srv.SetLatency(time.Second)
	slow := make(chan error)
	go func() {
		_, err := f.create()
		slow <- err
	}()
	for f.calls(wechattest.EndpointCreate) < 2 {
		time.Sleep(time.Millisecond)
	}
	f.srv.SetLatency(0)
	// ...then another system takes the token, and a fast call replaces it...
	f.srv.InvalidateTokens(testAppID)
	f.mustCreate()
	// ...and only then the slow request's 40001 arrives: it must not drop the replacement.
	if err := <-slow; err != nil {
		t.Fatal(err)
	}
	if n := f.srv.CallsWithErrcode(wechattest.EndpointCreate, 40001); n != 2 {
		t.Fatalf("%d rejections, want 2: the scenario did not happen", n)
	}
	if n := f.calls(wechattest.EndpointStableToken); n != 2 {
		t.Errorf("%d token fetches, want 2", n)
	}
	if forceFetches() != forced {
		t.Error("a new token from stable_token needs no force_refresh")
	}
}

func TestCompareAndExpire(t *testing.T) {
	fetches := 0
	started, release := make(chan struct{}), make(chan struct{})
	tc := newTokenCache(func(ctx context.Context, force bool) (string, time.Duration, error) {
		fetches++
		if fetches == 3 {
			close(started)
			<-release
		}
		return fmt.Sprintf("t%d", fetches), time.Hour, nil
	}, true, clocktesting.NewFakePassiveClock(testStart), time.Second, funcr.New(func(string, string) {}, funcr.Options{}))
	get := func(want string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if got, err := tc.get(ctx); err != nil || got != want {
			t.Fatalf("get = %q, %v; want %q", got, err, want)
		}
	}
	get("t1")
	tc.invalidate("t1", 40001)
	get("t2")
	tc.invalidate("t1", 40001) // a late answer to a request made with t1
	get("t2")
	if fetches != 2 {
		t.Fatalf("%d fetches, want 2", fetches)
	}
	// While t3 is being fetched, t2's failures arrive: t3 must not be dropped when it lands.
	tc.invalidate("t2", 40001)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if got, err := tc.get(context.Background()); err != nil || got != "t3" {
			t.Errorf("get = %q, %v; want t3", got, err)
		}
	}()
	<-started
	tc.invalidate("t2", 40001)
	close(release)
	<-done
	get("t3")
	if fetches != 3 {
		t.Errorf("%d fetches, want 3", fetches)
	}
}

// TestNoForceRefreshWhenAnotherSystemRevokes: a token that worked and was then revoked by another
// user of the AppID (their force_refresh) is replaced by a plain fetch, which returns their new
// token. Forcing here would revoke theirs in turn: the token war stable_token exists to end. This
// holds too for a token that was itself fetched after a rejection.
func TestNoForceRefreshWhenAnotherSystemRevokes(t *testing.T) {
	f := newFixture(t, nil)
	f.mustCreate()
	forced := forceFetches()
	for round := range 3 {
		f.advance(forceRefreshInterval) // force_refresh would be allowed: the rule, not the limit, must hold
		f.srv.InvalidateTokens(testAppID)
		f.mustCreate()
		if got := forceFetches() - forced; got != 0 {
			t.Fatalf("round %d: %v force refreshes after another system revoked a working token, want 0", round, got)
		}
	}
}

func TestForceRefreshOnlyWhenAFreshTokenIsRejected(t *testing.T) {
	f := newFixture(t, nil)
	f.mustCreate()
	forced := forceFetches()
	// WeChat rejects the token stable_token keeps handing out: only force_refresh replaces it.
	f.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: 40001})
	f.mustCreate()
	if got := forceFetches() - forced; got != 1 {
		t.Fatalf("%v force refreshes, want 1", got)
	}
	// Within 30 s of it, no second force_refresh however often tokens are rejected.
	for range 3 {
		f.srv.FailNext(wechattest.EndpointCreate, 2, wechattest.Fault{Errcode: 40001})
		if _, err := f.create(); ClassOf(err) != ClassToken {
			t.Fatalf("want a token error, got %v", err)
		}
	}
	if got := forceFetches() - forced; got != 1 {
		t.Errorf("%v force refreshes within 30 s, want 1", got)
	}
	f.advance(forceRefreshInterval)
	f.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: 40001})
	f.mustCreate()
	if got := forceFetches() - forced; got != 2 {
		t.Errorf("%v force refreshes 30 s later, want 2", got)
	}
	if n := f.srv.CallsWithErrcode(wechattest.EndpointStableToken, 0); n > 12 {
		t.Errorf("%d stable_token calls: the client loops", n)
	}
}

func TestTokenRefreshedAheadOfExpiry(t *testing.T) {
	f := newFixture(t, nil)
	f.mustCreate()
	f.advance(wechattest.TokenLifetime - refreshAhead - time.Second)
	f.mustCreate()
	if n := f.calls(wechattest.EndpointStableToken); n != 1 {
		t.Fatalf("%d fetches with 301 s left, want 1", n)
	}
	// A failed early refresh keeps the current token, which still works.
	f.advance(2 * time.Second)
	f.srv.FailNext(wechattest.EndpointStableToken, 1, wechattest.Fault{Errcode: -1})
	f.mustCreate()
	if n := f.calls(wechattest.EndpointStableToken); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}
	f.mustCreate()
	if n := f.calls(wechattest.EndpointStableToken); n != 3 {
		t.Fatalf("%d fetches, want 3 (a refresh with 299 s left)", n)
	}
	tokens := f.srv.IssuedTokens(testAppID)
	if len(tokens) != 2 {
		t.Errorf("the fake issued %d tokens, want 2: stable_token re-issues below 300 s", len(tokens))
	}
	// Expired and unrefreshable: the error surfaces.
	f.advance(wechattest.TokenLifetime)
	f.srv.FailNext(wechattest.EndpointStableToken, 1, wechattest.Fault{Errcode: -1})
	if _, err := f.create(); ClassOf(err) != ClassRetryable || ErrCode(err) != -1 {
		t.Errorf("got %v, want the token endpoint's -1", err)
	}
}

func TestClassicTokenMode(t *testing.T) {
	f := newFixture(t, nil)
	f.creds.Tokens.Mode = TokenModeClassic
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() { f.mustCreate() })
	}
	wg.Wait()
	f.advance(wechattest.TokenLifetime - refreshAhead + time.Second)
	f.mustCreate()
	if n, m := f.calls(wechattest.EndpointToken), f.calls(wechattest.EndpointStableToken); n != 2 || m != 0 {
		t.Errorf("token calls %d, stable_token calls %d; want 2 and 0", n, m)
	}
}

func TestExternalTokenSource(t *testing.T) {
	f := newFixture(t, nil)
	central := newCentral(t, f)
	c := New(Options{
		APIBaseURL: f.srv.URL, Clock: f.clk, ExternalTokenHeader: http.Header{"Authorization": {"Bearer central"}},
	})
	source := TokenSource{Mode: TokenModeExternal, ExternalURL: central.URL + "/token?tenant=a"}
	creds := Credentials{AppID: testAppID, Tokens: source} // the operator needs no secret
	for range 3 {
		if _, err := c.CreateQRCode(context.Background(), creds, temp); err != nil {
			t.Fatal(err)
		}
	}
	if central.calls != 1 {
		t.Errorf("%d calls to the central service, want 1", central.calls)
	}
	// The central service refreshed the token: the rejected one is dropped and it is asked again.
	f.srv.InvalidateTokens(testAppID)
	if _, err := c.CreateQRCode(context.Background(), creds, temp); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		appID string
		class Class
		code  int
	}{{"wxunknown", ClassTerminal, 40013}, {"wxbroken", ClassRetryable, 0}} {
		_, err := c.CreateQRCode(context.Background(), Credentials{AppID: tc.appID, Tokens: source}, temp)
		if ClassOf(err) != tc.class || ErrCode(err) != tc.code {
			t.Errorf("%s: %v, want %v %d", tc.appID, err, tc.class, tc.code)
		}
	}
	_, err := New(Options{}).CreateQRCode(context.Background(), Credentials{AppID: testAppID, Tokens: TokenSource{Mode: TokenModeExternal}}, temp)
	if !errors.Is(err, ErrInvalidRequest) {
		t.Errorf("external mode without URL: %v", err)
	}
}

// A dead or failing token service is reported as the token service's failure, named by its URL
// (without the query, which may carry a tenant), retryable, and not as WeChat's.
func TestExternalTokenServiceFailureNamesTheService(t *testing.T) {
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "upstream down", http.StatusBadGateway)
	}))
	defer failing.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	for _, service := range []string{failing.URL + "/token", dead.URL + "/token"} {
		c := New(Options{APIBaseURL: "http://wechat.invalid"})
		_, err := c.CreateQRCode(context.Background(), Credentials{AppID: testAppID, Tokens: TokenSource{Mode: TokenModeExternal, ExternalURL: service + "?tenant=a"}}, temp)
		if !FromTokenService(err) || ClassOf(err) != ClassRetryable {
			t.Errorf("%s: %v (class %v), want a retryable token service error", service, err, ClassOf(err))
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "token service "+service+" (tokenSource.url): ") || strings.Contains(msg, "wechat external_token") {
			t.Errorf("%s: message %q does not name the token service alone", service, msg)
		}
	}
}

func TestRateLimitPerAccount(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.QPS, o.Burst = 0.001, 3 })
	f.srv.AddAccount("wxother", "other-secret")
	limited := func(creds Credentials) error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := f.c.CreateQRCode(ctx, creds, temp)
		return err
	}
	for i := range 3 {
		if err := limited(f.creds); err != nil {
			t.Fatalf("call %d within the burst: %v", i+1, err)
		}
	}
	err := limited(f.creds)
	if err == nil || ClassOf(err) != ClassRetryable {
		t.Errorf("4th call: %v, want a retryable rate-limit error", err)
	}
	other := Credentials{AppID: "wxother", AppSecret: "other-secret"}
	for range 3 {
		if err := limited(other); err != nil {
			t.Errorf("another account has its own bucket: %v", err)
		}
	}
	// A rotated secret gets a new token source but the same bucket: the quota is the AppID's.
	f.srv.AddAccount(testAppID, "rotated")
	if err := limited(Credentials{AppID: testAppID, AppSecret: "rotated"}); err == nil {
		t.Error("secret rotation must not refill the bucket")
	}
	if n := f.srv.CallsWithErrcode(wechattest.EndpointCreate, 0); n != 6 {
		t.Errorf("%d creates reached WeChat, want 6", n)
	}
	// The account's own rate replaces the default, and a change of it applies to the same bucket.
	f.srv.AddAccount("wxfast", "fast-secret")
	fast := Credentials{AppID: "wxfast", AppSecret: "fast-secret", Rate: RateLimit{QPS: 0.001, Burst: 5}}
	for i := range 5 {
		if err := limited(fast); err != nil {
			t.Fatalf("call %d within the account's burst of 5: %v", i+1, err)
		}
	}
	if err := limited(fast); err == nil {
		t.Error("6th call beyond the account's burst went through")
	}
	fast.Rate = RateLimit{QPS: 1000, Burst: 1}
	if err := limited(fast); err != nil {
		t.Errorf("a raised rate applies at once: %v", err)
	}
	d := New(Options{})
	a, err := d.account(f.creds)
	if err != nil || a.limiter.Limit() != DefaultQPS || a.limiter.Burst() != DefaultBurst {
		t.Errorf("default limiter %v/%d, %v", a.limiter.Limit(), a.limiter.Burst(), err)
	}
}

func TestSecretRotation(t *testing.T) {
	f := newFixture(t, nil)
	f.mustCreate()
	f.srv.AddAccount(testAppID, "new-secret-value")
	f.mustCreate() // the cached token of the old secret still works
	if n := f.calls(wechattest.EndpointStableToken); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	if _, err := f.c.CreateQRCode(context.Background(), Credentials{AppID: testAppID, AppSecret: "new-secret-value"}, temp); err != nil {
		t.Fatal(err)
	}
	if n := f.calls(wechattest.EndpointStableToken); n != 2 {
		t.Errorf("%d fetches, want 2: a new secret replaces the token source", n)
	}
	_, err := f.c.CreateQRCode(context.Background(), Credentials{AppID: testAppID, AppSecret: "wrong-secret-value"}, temp)
	if ErrCode(err) != 40125 || ClassOf(err) != ClassTerminal || !strings.Contains(err.Error(), "appSecret") {
		t.Errorf("wrong secret: %v", err)
	}
	if strings.Contains(err.Error(), "wrong-secret-value") {
		t.Errorf("the secret leaked: %v", err)
	}
}

// BenchmarkCreateQRCode measures a client round trip against the fake on loopback, token cached.
func BenchmarkCreateQRCode(b *testing.B) {
	clk := clocktesting.NewFakePassiveClock(testStart)
	srv, err := wechattest.NewServer(wechattest.Options{Clock: clk, CreateDailyQuota: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	defer srv.Close()
	srv.AddAccount(testAppID, testSecret)
	c := New(Options{APIBaseURL: srv.URL, Clock: clk, QPS: 1e9, Burst: 1 << 30})
	creds := Credentials{AppID: testAppID, AppSecret: testSecret}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.CreateQRCode(context.Background(), creds, temp); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n := srv.Calls(wechattest.EndpointStableToken); n != 1 {
		b.Errorf("%d token fetches, want 1", n)
	}
}

// TestCheckToken: a check costs a token call only when no usable token is held for the same
// credentials and token source; the token endpoint's errcodes come back classified.
func TestCheckToken(t *testing.T) {
	f := newFixture(t, nil)
	ctx := context.Background()
	for range 3 {
		if err := f.c.CheckToken(ctx, f.creds); err != nil {
			t.Fatal(err)
		}
	}
	f.mustCreate()
	if n := f.calls(wechattest.EndpointStableToken); n != 1 {
		t.Errorf("%d stable_token calls for three checks and a create, want 1", n)
	}
	classic := f.creds
	classic.Tokens.Mode = TokenModeClassic
	if err := f.c.CheckToken(ctx, classic); err != nil || f.calls(wechattest.EndpointToken) != 1 {
		t.Errorf("a new token source fetches once: %v, %d calls", err, f.calls(wechattest.EndpointToken))
	}
	f.srv.FailNext("", 1, wechattest.Fault{Errcode: 40164})
	classic.Rate = RateLimit{QPS: 1}
	if err := f.c.CheckToken(ctx, classic); err != nil {
		t.Errorf("a rate change keeps the cached token, so no call can fail: %v", err)
	}
	err := f.c.CheckToken(ctx, f.creds)
	if ErrCode(err) != 40164 || ClassOf(err) != ClassTerminal {
		t.Errorf("back to stable_token: %v, want 40164", err)
	}
	for _, tc := range []struct {
		creds Credentials
		code  int
	}{
		{Credentials{AppID: testAppID, AppSecret: "wrong"}, 40125},
		{Credentials{AppID: "wxnobody", AppSecret: testSecret}, 40013},
	} {
		err := f.c.CheckToken(ctx, tc.creds)
		if ErrCode(err) != tc.code || ClassOf(err) != ClassTerminal {
			t.Errorf("%v: %v, want terminal %d", tc.creds, err, tc.code)
		}
	}
}

// TestQRCodeQuota reads WeChat's count of today's qrcode/create calls, retrying once with a
// fresh token, and returns its errcodes.
func TestQRCodeQuota(t *testing.T) {
	f := newFixture(t, nil)
	for range 3 {
		f.mustCreate()
	}
	q, err := f.c.QRCodeQuota(context.Background(), f.creds)
	if err != nil || q != (Quota{DailyLimit: wechattest.DefaultCreateDailyQuota, Used: 3, Remain: wechattest.DefaultCreateDailyQuota - 3}) {
		t.Errorf("quota %+v, %v", q, err)
	}
	f.srv.InvalidateTokens(testAppID)
	if _, err := f.c.QRCodeQuota(context.Background(), f.creds); err != nil {
		t.Errorf("a revoked token is replaced: %v", err)
	}
	f.srv.FailNext(wechattest.EndpointQuotaGet, 1, wechattest.Fault{Errcode: 48001})
	_, err = f.c.QRCodeQuota(context.Background(), f.creds)
	if ErrCode(err) != 48001 || !strings.Contains(err.Error(), "openapi/quota/get") {
		t.Errorf("got %v, want errcode 48001 naming the endpoint", err)
	}
	if n := f.calls(wechattest.EndpointQuotaGet); n != 4 {
		t.Errorf("%d quota/get calls, want 4", n)
	}
}
