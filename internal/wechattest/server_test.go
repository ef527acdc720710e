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

package wechattest_test

import (
	"encoding/json"
	"fmt"
	"image/jpeg"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

const (
	appID  = "wx0123456789abcdef"
	secret = "0123456789abcdef0123456789abcdef"
)

// start is mid-morning in Beijing, so that a few hours later it is still the same quota day.
var start = time.Date(2026, 3, 2, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))

type env struct {
	t   testing.TB
	srv *wechattest.Server
	clk *clocktesting.FakePassiveClock
}

func newEnv(t testing.TB, opts wechattest.Options) *env {
	t.Helper()
	clk := clocktesting.NewFakePassiveClock(start)
	opts.Clock = clk
	if opts.Seed == 0 {
		opts.Seed = 42
	}
	srv, err := wechattest.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	srv.AddAccount(appID, secret)
	return &env{t: t, srv: srv, clk: clk}
}

func (e *env) advance(d time.Duration) { e.clk.SetTime(e.clk.Now().Add(d)) }

// do sends a request and decodes the JSON answer.
func (e *env) do(method, path string, q url.Values, body string) map[string]any {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path+"?"+q.Encode(), strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("%s %s: HTTP %d", method, path, resp.StatusCode)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		e.t.Fatal(err)
	}
	return out
}

func errcode(m map[string]any) int {
	n, _ := m["errcode"].(float64)
	return int(n)
}

func (e *env) classicToken() map[string]any {
	return e.do(http.MethodGet, wechattest.EndpointToken,
		url.Values{"grant_type": {"client_credential"}, "appid": {appID}, "secret": {secret}}, "")
}

func (e *env) stable(force bool) map[string]any {
	return e.do(http.MethodPost, wechattest.EndpointStableToken, nil,
		fmt.Sprintf(`{"grant_type":"client_credential","appid":%q,"secret":%q,"force_refresh":%t}`, appID, secret, force))
}

func (e *env) token(m map[string]any) string {
	e.t.Helper()
	tok, _ := m["access_token"].(string)
	if tok == "" {
		e.t.Fatalf("no token in %v", m)
	}
	return tok
}

func (e *env) create(token, body string) map[string]any {
	return e.do(http.MethodPost, wechattest.EndpointCreate, url.Values{"access_token": {token}}, body)
}

const tempBody = `{"expire_seconds":600,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":7}}}`

// works reports the errcode qrcode/create answers with token.
func (e *env) works(token string) int { return errcode(e.create(token, tempBody)) }

func wantCode(t *testing.T, what string, m map[string]any, want int) {
	t.Helper()
	if got := errcode(m); got != want {
		t.Errorf("%s: errcode %d (%v), want %d", what, got, m["errmsg"], want)
	}
}

func TestClassicTokenOverlap(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	first := e.classicToken()
	if first["expires_in"] != 7200.0 {
		t.Errorf("expires_in = %v, want 7200", first["expires_in"])
	}
	t1 := e.token(first)
	e.advance(time.Minute)
	t2 := e.token(e.classicToken())
	if t1 == t2 {
		t.Fatal("each /cgi-bin/token call must issue a new token")
	}
	e.advance(wechattest.ClassicOverlap - time.Second)
	if got := e.works(t1); got != 0 {
		t.Errorf("previous token within the overlap: errcode %d, want 0", got)
	}
	e.advance(time.Second)
	if got := e.works(t1); got != 40001 {
		t.Errorf("previous token after the overlap: errcode %d, want 40001", got)
	}
	if got := e.works(t2); got != 0 {
		t.Errorf("latest token: errcode %d, want 0", got)
	}
	e.advance(wechattest.TokenLifetime)
	if got := e.works(t2); got != 42001 {
		t.Errorf("expired token: errcode %d, want 42001", got)
	}
}

func TestTokenCredentialChecks(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	for _, tc := range []struct {
		name                 string
		grant, appid, secret string
		want                 int
	}{
		{"grant_type", "password", appID, secret, 40002},
		{"appid", "client_credential", "wxunknown", secret, 40013},
		{"secret", "client_credential", appID, "wrong", 40125},
	} {
		wantCode(t, "token "+tc.name, e.do(http.MethodGet, wechattest.EndpointToken,
			url.Values{"grant_type": {tc.grant}, "appid": {tc.appid}, "secret": {tc.secret}}, ""), tc.want)
		wantCode(t, "stable_token "+tc.name, e.do(http.MethodPost, wechattest.EndpointStableToken, nil,
			fmt.Sprintf(`{"grant_type":%q,"appid":%q,"secret":%q}`, tc.grant, tc.appid, tc.secret)), tc.want)
	}
	wantCode(t, "stable_token GET", e.do(http.MethodGet, wechattest.EndpointStableToken, nil, ""), 43002)
	wantCode(t, "stable_token not JSON", e.do(http.MethodPost, wechattest.EndpointStableToken, nil, "appid="+appID), 47001)
}

func TestClassicTokenDailyLimit(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	for i := range wechattest.TokenDailyLimit {
		if m := e.classicToken(); errcode(m) != 0 {
			t.Fatalf("call %d: %v", i+1, m)
		}
	}
	wantCode(t, "call 2001", e.classicToken(), 45009)
	e.advance(14 * time.Hour) // past midnight in Beijing
	wantCode(t, "next day", e.classicToken(), 0)
}

func TestStableTokenShared(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	a := e.stable(false)
	e.advance(time.Hour)
	b := e.stable(false)
	if e.token(a) != e.token(b) {
		t.Fatal("stable_token must hand every caller the same token within its validity")
	}
	if b["expires_in"] != 3600.0 {
		t.Errorf("expires_in an hour later = %v, want 3600", b["expires_in"])
	}
	// With 300 s left it is still handed out; with less, a new one is issued.
	e.advance(wechattest.TokenLifetime - time.Hour - wechattest.StableMinRemaining)
	c := e.stable(false)
	if e.token(c) != e.token(a) || c["expires_in"] != 300.0 {
		t.Errorf("with 300 s left: got %v, want the same token with expires_in 300", c["expires_in"])
	}
	e.advance(time.Second)
	d := e.stable(false)
	if e.token(d) == e.token(a) || d["expires_in"] != 7200.0 {
		t.Errorf("with 299 s left: want a new token with 7200 s, got expires_in %v", d["expires_in"])
	}
	if got := e.works(e.token(a)); got != 0 {
		t.Errorf("the re-issued-for-time token keeps working until it expires: errcode %d", got)
	}
	// The classic endpoint does not disturb the stable token.
	e.classicToken()
	e.classicToken()
	e.advance(wechattest.ClassicOverlap)
	if got := e.works(e.token(d)); got != 0 {
		t.Errorf("stable token after classic calls: errcode %d", got)
	}
}

func TestStableForceRefresh(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	old := e.token(e.stable(false))
	fresh := e.token(e.stable(true))
	if fresh == old {
		t.Fatal("force_refresh must issue a new token")
	}
	if got := e.works(old); got != 40001 {
		t.Errorf("token replaced by force_refresh: errcode %d, want 40001", got)
	}
	if e.token(e.stable(false)) != fresh {
		t.Error("after force_refresh every caller gets the new token")
	}
	e.advance(wechattest.StableForceSpacing - time.Second)
	wantCode(t, "force_refresh 29 s later", e.stable(true), 45011)
	for i := 2; i <= wechattest.StableForceDailyLimit; i++ {
		e.advance(wechattest.StableForceSpacing)
		wantCode(t, fmt.Sprintf("force_refresh %d", i), e.stable(true), 0)
	}
	e.advance(wechattest.StableForceSpacing)
	wantCode(t, "force_refresh 21", e.stable(true), 45009)
	wantCode(t, "plain stable_token after the force limit", e.stable(false), 0)
}

func TestCreateValidation(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	long := strings.Repeat("长", 64)
	for _, tc := range []struct {
		name, body string
		want       int
	}{
		{"not JSON", `action_name=QR_SCENE`, 47001},
		{"no action_name", `{"action_info":{"scene":{"scene_id":1}}}`, 40052},
		{"unknown action_name", `{"action_name":"QR_TEMP_SCENE","action_info":{"scene":{"scene_id":1}}}`, 40052},
		{"no action_info", `{"action_name":"QR_LIMIT_SCENE"}`, 40053},
		{"action_info not an object", `{"action_name":"QR_LIMIT_SCENE","action_info":"x"}`, 40053},
		{"no scene", `{"action_name":"QR_LIMIT_SCENE","action_info":{"scene_id":1}}`, 40053},
		{"scene_id 0", `{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":0}}}`, 40053},
		{"scene_id over 32 bits", `{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":2147483648}}}`, 40053},
		{"scene_id not integer", `{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":1.5}}}`, 40053},
		{"scene_str for an id action", `{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_str":"a"}}}`, 40053},
		{"negative 32-bit scene_id", `{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":-5}}}`, 0},
		{"largest 32-bit scene_id", `{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":2147483647}}}`, 0},
		{"permanent id 0", `{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":0}}}`, 40053},
		{"permanent id 100001", `{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":100001}}}`, 40053},
		{"permanent id 100000", `{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":100000}}}`, 0},
		{"empty scene_str", `{"expire_seconds":60,"action_name":"QR_STR_SCENE","action_info":{"scene":{"scene_str":""}}}`, 40053},
		{"scene_id for a str action", `{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_id":3}}}`, 40053},
		{"scene_str of 65", `{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"` + long + `x"}}}`, 40053},
		{"scene_str of 64 characters", `{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"` + long + `"}}}`, 0},
	} {
		wantCode(t, tc.name, e.create(tok, tc.body), tc.want)
	}
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+wechattest.EndpointCreate+"?access_token="+tok, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	wantCode(t, "GET", m, 43002)
}

func TestCreateTokenChecks(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	wantCode(t, "no token", e.create("", tempBody), 41001)
	wantCode(t, "ill-formed token", e.create("not a token!", tempBody), 40014)
	wantCode(t, "unknown token", e.create(strings.Repeat("A", 136), tempBody), 40001)
	tok := e.token(e.stable(false))
	e.srv.InvalidateTokens(appID)
	wantCode(t, "token another system replaced", e.create(tok, tempBody), 40001)
	fresh := e.token(e.stable(false))
	if fresh == tok {
		t.Fatal("after InvalidateTokens stable_token must hand out a new token")
	}
	wantCode(t, "new token", e.create(fresh, tempBody), 0)
}

func TestCreateExpireSeconds(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	for _, tc := range []struct {
		name, expire string
		want         float64
	}{
		{"omitted", ``, wechattest.DefaultExpireSeconds},
		{"a week", `"expire_seconds":604800,`, 604800},
		{"over 30 days is clamped", `"expire_seconds":2592001,`, wechattest.MaxExpireSeconds},
	} {
		m := e.create(tok, `{`+tc.expire+`"action_name":"QR_STR_SCENE","action_info":{"scene":{"scene_str":"s"}}}`)
		if m["expire_seconds"] != tc.want {
			t.Errorf("%s: expire_seconds %v, want %v", tc.name, m["expire_seconds"], tc.want)
		}
		c, ok := e.srv.Code(m["ticket"].(string))
		if !ok || c.ExpiresAt != start.Add(time.Duration(tc.want)*time.Second) || c.SceneStr != "s" || c.Action != "QR_STR_SCENE" {
			t.Errorf("%s: recorded code %+v", tc.name, c)
		}
	}
	perm := e.create(tok, `{"expire_seconds":600,"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":9}}}`)
	if _, has := perm["expire_seconds"]; has || perm["ticket"] == nil {
		t.Errorf("permanent answer %v: want a ticket and no expire_seconds", perm)
	}
}

func TestTicketsAndURLsLookLikeWeChats(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	seen := map[string]bool{}
	for i := range 20 {
		m := e.create(tok, fmt.Sprintf(`{"expire_seconds":60,"action_name":"QR_SCENE","action_info":{"scene":{"scene_id":%d}}}`, i+1))
		ticket, u := m["ticket"].(string), m["url"].(string)
		if !strings.HasPrefix(ticket, "gQ") || !strings.Contains(ticket, "+") || !strings.Contains(ticket, "/") || !strings.HasSuffix(ticket, "=") {
			t.Errorf("ticket %q: want WeChat's shape (gQ..., base64 with + / =)", ticket)
		}
		if !strings.HasPrefix(u, "http://weixin.qq.com/q/") || len(u) < 40 {
			t.Errorf("url %q", u)
		}
		if seen[ticket] || seen[u] {
			t.Errorf("ticket or url issued twice: %s %s", ticket, u)
		}
		seen[ticket], seen[u] = true, true
	}
}

func TestPermanentCodes(t *testing.T) {
	e := newEnv(t, wechattest.Options{PermanentCap: 3})
	tok := e.token(e.stable(false))
	body := func(scene string) string {
		return `{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"` + scene + `"}}}`
	}
	first := e.create(tok, body("a"))
	again := e.create(tok, body("a"))
	if first["ticket"] != again["ticket"] || first["url"] != again["url"] {
		t.Errorf("the same permanent scene must answer its existing ticket: %v vs %v", first, again)
	}
	wantCode(t, "second scene", e.create(tok, body("b")), 0)
	wantCode(t, "integer scene 1 is another scene", e.create(tok, `{"action_name":"QR_LIMIT_SCENE","action_info":{"scene":{"scene_id":1}}}`), 0)
	wantCode(t, "fourth scene over a cap of 3", e.create(tok, body("d")), 45029)
	wantCode(t, "existing scene after the cap", e.create(tok, body("a")), 0)
	if n := len(e.srv.Codes(appID)); n != 3 {
		t.Errorf("codes issued: %d, want 3", n)
	}
	e.advance(365 * 24 * time.Hour)
	tok = e.token(e.stable(false))
	if got := e.create(tok, body("a")); got["ticket"] != first["ticket"] {
		t.Error("permanent codes are kept forever")
	}
	if status, _ := e.image(first["ticket"].(string)); status != http.StatusOK {
		t.Errorf("permanent image a year later: HTTP %d", status)
	}
}

func TestCreateDailyQuota(t *testing.T) {
	e := newEnv(t, wechattest.Options{CreateDailyQuota: 5})
	tok := e.token(e.stable(false))
	wantCode(t, "rejected calls count too", e.create(tok, `{"action_name":"nope"}`), 40052)
	for i := 2; i <= 5; i++ {
		wantCode(t, fmt.Sprintf("call %d", i), e.create(tok, tempBody), 0)
	}
	wantCode(t, "call 6", e.create(tok, tempBody), 45009)
	e.srv.SetCreateQuota(6)
	wantCode(t, "quota raised to 6", e.create(tok, tempBody), 0)
	wantCode(t, "call 7", e.create(tok, tempBody), 45009)
	e.advance(14 * time.Hour)
	tok = e.token(e.stable(false))
	wantCode(t, "next day", e.create(tok, tempBody), 0)
	if got := e.srv.CallsWithErrcode(wechattest.EndpointCreate, 45009); got != 2 {
		t.Errorf("45009 answers counted: %d, want 2", got)
	}
}

func (e *env) quota(token, body string) map[string]any {
	return e.do(http.MethodPost, wechattest.EndpointQuotaGet, url.Values{"access_token": {token}}, body)
}

// TestQuotaGet: openapi/quota/get answers the fake's own count of today's qrcode/create calls
// per AppID (rejected ones included, as they count against the quota), a new count the next
// quota day, and the documented errors.
func TestQuotaGet(t *testing.T) {
	e := newEnv(t, wechattest.Options{CreateDailyQuota: 10})
	e.srv.AddAccount("wxother", "other-secret")
	tok := e.token(e.stable(false))
	createPath := `{"cgi_path":"/cgi-bin/qrcode/create"}`
	wantQuota := func(what string, m map[string]any, limit, used, remain float64) {
		t.Helper()
		wantCode(t, what, m, 0)
		q, _ := m["quota"].(map[string]any)
		if q["daily_limit"] != limit || q["used"] != used || q["remain"] != remain || m["errmsg"] != "ok" {
			t.Errorf("%s: %v, want daily_limit %v used %v remain %v", what, m, limit, used, remain)
		}
	}
	wantQuota("before any call", e.quota(tok, createPath), 10, 0, 10)
	wantCode(t, "a rejected create", e.create(tok, `{"action_name":"nope"}`), 40052)
	for range 3 {
		wantCode(t, "create", e.create(tok, tempBody), 0)
	}
	wantQuota("after 4 calls", e.quota(tok, createPath), 10, 4, 6)
	other := e.token(e.do(http.MethodPost, wechattest.EndpointStableToken, nil,
		`{"grant_type":"client_credential","appid":"wxother","secret":"other-secret","force_refresh":false}`))
	wantQuota("another AppID counts apart", e.quota(other, createPath), 10, 0, 10)
	wantQuota("stable_token's own", e.quota(tok, `{"cgi_path":"/cgi-bin/stable_token"}`), wechattest.StableDailyLimit, 1, wechattest.StableDailyLimit-1)
	e.advance(14 * time.Hour)
	tok = e.token(e.stable(false))
	wantQuota("the next quota day", e.quota(tok, createPath), 10, 0, 10)

	wantCode(t, "unknown path", e.quota(tok, `{"cgi_path":"/cgi-bin/nope"}`), 76021)
	wantCode(t, "sns path", e.quota(tok, `{"cgi_path":"/sns/userinfo"}`), 76022)
	wantCode(t, "host prefix", e.quota(tok, `{"cgi_path":"https://api.weixin.qq.com/cgi-bin/qrcode/create"}`), 76003)
	wantCode(t, "no cgi_path", e.quota(tok, `{}`), 47001)
	wantCode(t, "bad token", e.quota(strings.Repeat("A", 136), createPath), 40001)
	e.srv.FailNext(wechattest.EndpointQuotaGet, 1, wechattest.Fault{Errcode: 48001})
	wantCode(t, "an unverified account", e.quota(tok, createPath), 48001)
	if got := e.do(http.MethodGet, wechattest.EndpointQuotaGet, url.Values{"access_token": {tok}}, ""); errcode(got) != 43002 {
		t.Errorf("GET: %v, want 43002", got)
	}
}

// image fetches showqrcode for ticket, escaping it as a client must.
func (e *env) image(ticket string) (int, []byte) {
	e.t.Helper()
	resp, err := http.Get(e.srv.URL + wechattest.EndpointShowQRCode + "?ticket=" + url.QueryEscape(ticket))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

func TestShowQRCode(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	m := e.create(tok, tempBody)
	ticket, want := m["ticket"].(string), m["url"].(string)

	status, body := e.image(ticket)
	if status != http.StatusOK {
		t.Fatalf("HTTP %d", status)
	}
	img, err := jpeg.Decode(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("not a JPEG: %v", err)
	}
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		t.Fatal(err)
	}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		t.Fatalf("image is not a readable QR code: %v", err)
	}
	if res.GetText() != want {
		t.Errorf("QR code encodes %q, want %q", res.GetText(), want)
	}

	resp, err := http.Get(e.srv.URL + wechattest.EndpointShowQRCode + "?ticket=" + ticket)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("unescaped ticket: HTTP %d, want 404 ('+' decodes to a space)", resp.StatusCode)
	}
	if status, _ := e.image("gQunknown=="); status != http.StatusNotFound {
		t.Errorf("unknown ticket: HTTP %d, want 404", status)
	}
	e.advance(599 * time.Second)
	if status, _ := e.image(ticket); status != http.StatusOK {
		t.Errorf("1 s before expiry: HTTP %d", status)
	}
	e.advance(time.Second)
	if status, _ := e.image(ticket); status != http.StatusNotFound {
		t.Errorf("expired ticket: HTTP %d, want 404", status)
	}
	if c, ok := e.srv.Code(ticket); !ok || c.Scene() != "7" || c.Permanent() {
		t.Errorf("expired codes stay inspectable: %+v %v", c, ok)
	}
}

func TestFaults(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))

	e.srv.FailNext(wechattest.EndpointCreate, 2, wechattest.Fault{Errcode: -1})
	wantCode(t, "injected 1", e.create(tok, tempBody), -1)
	wantCode(t, "injected 2", e.create(tok, tempBody), -1)
	wantCode(t, "after the injected ones", e.create(tok, tempBody), 0)

	e.srv.FailNext("", 1, wechattest.Fault{Errcode: 40164})
	m := e.stable(false)
	wantCode(t, "any endpoint", m, 40164)
	if msg, _ := m["errmsg"].(string); !strings.Contains(msg, "127.0.0.1") || !strings.Contains(msg, "rid: ") {
		t.Errorf("40164 errmsg %q: want the caller's IP and a rid like WeChat", msg)
	}

	e.srv.SetFaultRate(wechattest.EndpointCreate, 1, wechattest.Fault{Errcode: 45009})
	for range 3 {
		wantCode(t, "rate 1", e.create(tok, tempBody), 45009)
	}
	e.srv.SetFaultRate(wechattest.EndpointCreate, 0.5, wechattest.Fault{Errcode: -1})
	failed := 0
	for range 200 {
		if errcode(e.create(tok, tempBody)) == -1 {
			failed++
		}
	}
	if failed < 60 || failed > 140 {
		t.Errorf("rate 0.5: %d of 200 failed", failed)
	}
	e.srv.SetFaultRate(wechattest.EndpointCreate, 0, wechattest.Fault{})
	wantCode(t, "rate removed", e.create(tok, tempBody), 0)

	e.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{HTTPStatus: http.StatusBadGateway})
	resp, err := http.Post(e.srv.URL+wechattest.EndpointCreate+"?access_token="+tok, "application/json", strings.NewReader(tempBody))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("HTTP fault: %d", resp.StatusCode)
	}

	e.srv.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Hang: true})
	client := &http.Client{Timeout: 100 * time.Millisecond}
	if _, err := client.Post(e.srv.URL+wechattest.EndpointCreate+"?access_token="+tok, "application/json", strings.NewReader(tempBody)); err == nil {
		t.Error("hang: want a client timeout")
	}

	if got, want := e.srv.CallsWithErrcode(wechattest.EndpointCreate, -1), 2+failed; got != want {
		t.Errorf("counted -1 answers: %d, want %d", got, want)
	}
	if got, want := e.srv.Calls(wechattest.EndpointCreate), 2+1+3+200+1+1+1; got != want {
		t.Errorf("counted create calls: %d, want %d", got, want)
	}
}

func TestLatency(t *testing.T) {
	e := newEnv(t, wechattest.Options{Latency: 150 * time.Millisecond})
	began := time.Now()
	e.stable(false)
	if d := time.Since(began); d < 150*time.Millisecond {
		t.Errorf("answer after %v, want at least the 150ms latency", d)
	}
}

// BenchmarkShowQRCode measures rendering a code's JPEG, the fake's most expensive answer.
func BenchmarkShowQRCode(b *testing.B) {
	e := newEnv(b, wechattest.Options{})
	ticket := e.issue(tempBody)
	b.ResetTimer()
	for range b.N {
		if status, _ := e.image(ticket); status != http.StatusOK {
			b.Fatal(status)
		}
	}
}
