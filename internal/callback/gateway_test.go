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
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// application is an existing WeChat application behind the operator: it checks every request as
// a WeChat SDK does (URL signature, then msg_signature and decryption with its own copy of the
// keys) and answers each message with a passive text reply, encrypted when the push was.
type application struct {
	t      testing.TB
	token  string
	cipher *wxcrypto.Cipher // nil: the account is in plaintext mode
	// hold, when set, keeps every request waiting until it is closed: a slow application.
	hold chan struct{}
	srv  *httptest.Server

	mu       sync.Mutex
	received []received
	arrived  chan struct{}
}

// received is a request as the application saw it.
type received struct {
	method, path string
	query        url.Values
	header       http.Header
	msg          appMessage
	problem      string // why the application refused it, "" when it verified
}

// appMessage is what the application reads of a message (its own parse, as an SDK's).
type appMessage struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	MsgType      string `xml:"MsgType"`
	Content      string `xml:"Content"`
	Event        string `xml:"Event"`
	EventKey     string `xml:"EventKey"`
	Encrypt      string `xml:"Encrypt"`
}

func newApplication(t testing.TB, token string, cipher *wxcrypto.Cipher) *application {
	a := &application{t: t, token: token, cipher: cipher, arrived: make(chan struct{}, 100)}
	a.srv = httptest.NewServer(a)
	t.Cleanup(a.srv.Close)
	return a
}

// reply is what the application answers a message with.
func (m appMessage) reply() string { return "app saw " + m.MsgType + "/" + m.Event + "/" + m.Content }

func (a *application) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	got := received{method: r.Method, path: r.URL.Path, query: r.URL.Query(), header: r.Header.Clone()}
	status, body := a.handle(r, &got)
	a.mu.Lock()
	a.received = append(a.received, got)
	a.mu.Unlock()
	a.arrived <- struct{}{}
	if a.hold != nil {
		<-a.hold
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (a *application) handle(r *http.Request, got *received) (int, string) {
	q := r.URL.Query()
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if !wxcrypto.VerifySignature(q.Get("signature"), a.token, ts, nonce) {
		got.problem = "signature"
		return http.StatusForbidden, "bad signature"
	}
	body, _ := io.ReadAll(r.Body)
	if err := xml.Unmarshal(body, &got.msg); err != nil {
		got.problem = "body: " + err.Error()
		return http.StatusBadRequest, ""
	}
	if q.Get("encrypt_type") == "aes" {
		if !wxcrypto.VerifySignature(q.Get("msg_signature"), a.token, ts, nonce, got.msg.Encrypt) {
			got.problem = "msg_signature"
			return http.StatusForbidden, ""
		}
		plain, err := a.cipher.Decrypt(got.msg.Encrypt)
		if err == nil {
			got.msg = appMessage{}
			err = xml.Unmarshal(plain, &got.msg)
		}
		if err != nil {
			got.problem = "decrypt: " + err.Error()
			return http.StatusBadRequest, ""
		}
	}
	now := time.Now().Unix()
	reply := oracleTextReply(a.t, got.msg.FromUserName, got.msg.ToUserName, got.msg.reply(), now)
	if q.Get("encrypt_type") != "aes" {
		return http.StatusOK, reply
	}
	enc, err := a.cipher.Encrypt([]byte(reply))
	if err != nil {
		got.problem = "encrypt: " + err.Error()
		return http.StatusInternalServerError, ""
	}
	replyNonce := "app-nonce"
	return http.StatusOK, oracleEnvelope(a.t, enc, wxcrypto.Signature(a.token, strconv.FormatInt(now, 10), replyNonce, enc), now, replyNonce)
}

func (a *application) requests() []received {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]received(nil), a.received...)
}

// gateway is the unit server with its plaintext and safe accounts and a compatible-mode one,
// each forwarding to its own application, and codes without a reply for each account (the safe
// account's "safe" code has one).
type gateway struct {
	s       *Server
	clock   *clocktesting.FakeClock
	counter *stubCounter
	pushers map[string]*pusher
	apps    map[string]*application
	tickets map[string]string // of the code without reply, by mode
}

func newGateway(t *testing.T) *gateway {
	t.Helper()
	counter := newStubCounter()
	s, clk, pushers := unitServer(t, counter,
		scantest.NewCode("ns", "safe-noreply", "wxsafe", "TICKET-SN", 3, ""),
		scantest.NewCode("ns", "compat", "wxcompat", "TICKET-C", 4, ""))
	compatCipher, err := wxcrypto.NewCipher(testOtherKey, "wxcompat")
	if err != nil {
		t.Fatal(err)
	}
	pushers[compatible] = &pusher{appID: "wxcompat", token: "tok-compat", mode: compatible, cipher: compatCipher}
	g := &gateway{s: s, clock: clk, counter: counter, pushers: pushers, apps: map[string]*application{},
		tickets: map[string]string{plaintext: "TICKET-P", safe: "TICKET-SN", compatible: "TICKET-C"}}
	keys := map[string]*pushKeys{}
	for mode, p := range pushers {
		app := newApplication(t, p.token, p.cipher)
		g.apps[mode] = app
		k := &pushKeys{appID: p.appID, token: p.token, account: pushconfig.Account{AppID: p.appID, ForwardURL: app.srv.URL + "/wx?from=operator", ForwardTimeout: 3 * time.Second}}
		if p.cipher != nil {
			k.ciphers = []*wxcrypto.Cipher{p.cipher}
		}
		keys[p.appID] = k
	}
	s.keyring.byAppID.Store(&keys)
	return g
}

// account changes what the keyring holds of appID's account.
func (g *gateway) account(appID string, change func(*pushconfig.Account)) {
	old := *g.s.keyring.byAppID.Load()
	keys := map[string]*pushKeys{}
	for id, k := range old {
		c := *k
		if id == appID {
			change(&c.account)
		}
		keys[id] = &c
	}
	g.s.keyring.byAppID.Store(&keys)
}

func textXML(openid string, createTime int64, content string) string {
	return fmt.Sprintf("<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content><MsgId>%d</MsgId></xml>",
		openid, createTime, content, createTime*10)
}

// forwardCount is how many forwards this process made with result.
func forwardCount(t *testing.T, result string) float64 {
	return scantest.Sample(t, metricnames.Namespace+"_callback_forwards_total", map[string]string{"result": result})
}

// TestForwardModes: in each of WeChat's three modes, a text message, a menu click, an unfollow
// and a scan of a code without reply reach the application as WeChat sent them (its own checks
// pass), and its reply, encrypted by the application, reaches WeChat intact. The scan is counted
// and the application is told which code it is of.
func TestForwardModes(t *testing.T) {
	g := newGateway(t)
	srv := httptest.NewServer(g.s)
	t.Cleanup(srv.Close)
	for _, mode := range []string{plaintext, compatible, safe} {
		t.Run(mode, func(t *testing.T) {
			p, app := g.pushers[mode], g.apps[mode]
			ticket := g.tickets[mode]
			for _, tc := range []struct {
				name, msg, reply string
				scan             bool
			}{
				{"text", textXML("o-user", 1700000100, "你好 <&>"), "app saw text//你好 <&>", false},
				{"menu click", scanXML("o-user", 1700000101, "CLICK", "V1001_TODAY_MUSIC", ""), "app saw event/CLICK/", false},
				{"unsubscribe", scanXML("o-user", 1700000102, "unsubscribe", "-", ""), "app saw event/unsubscribe/", false},
				{"qr scan", scanXML("o-user", 1700000103, "SCAN", "99", ticket), "app saw event/SCAN/", true},
			} {
				t.Run(tc.name, func(t *testing.T) {
					before := len(app.requests())
					req := p.build(t, tc.msg)
					status, body := req.send(t, srv.URL)
					if status != http.StatusOK {
						t.Fatalf("got %d %q", status, body)
					}
					if r := p.openReply(t, body); r.Content.Value != tc.reply || r.ToUserName.Value != "o-user" || r.FromUserName.Value != "gh_account" {
						t.Fatalf("reply %+v, want %q to o-user", r, tc.reply)
					}
					reqs := app.requests()
					if len(reqs) != before+1 {
						t.Fatalf("the application got %d requests, want 1", len(reqs)-before)
					}
					got := reqs[before]
					if got.problem != "" || got.method != http.MethodPost || got.path != "/wx" || got.query.Get("from") != "operator" {
						t.Fatalf("the application got %s %s %v: %s", got.method, got.path, got.query, got.problem)
					}
					for _, k := range []string{"signature", "timestamp", "nonce", "openid", "encrypt_type", "msg_signature"} {
						if got.query.Get(k) != req.query.Get(k) {
							t.Errorf("query %s = %q, WeChat sent %q", k, got.query.Get(k), req.query.Get(k))
						}
					}
					name := got.header.Get(forward.HeaderCodeName)
					switch {
					case tc.scan && (name == "" || got.header.Get(forward.HeaderCodeNamespace) != "ns" || got.header.Get(forward.HeaderScan) != "new" || got.header.Get(forward.HeaderEventID) == ""):
						t.Errorf("scan headers %v", got.header)
					case !tc.scan && name != "":
						t.Errorf("a %s was told it is a scan of %s", tc.name, name)
					}
					if tc.scan && g.counter.scansOf(name) != 1 {
						t.Errorf("scans of %s: %d, want 1", name, g.counter.scansOf(name))
					}
				})
			}
		})
	}
}

// TestForwardWechatCryptoPush forwards a push encrypted and signed by the npm package
// wechat-crypto (a vector of hack/wechat-crypto-vectors, an implementation independent of ours):
// the application receives its ciphertext and signatures byte for byte, and decrypts the very
// message wechat-crypto encrypted.
func TestForwardWechatCryptoPush(t *testing.T) {
	raw, err := os.ReadFile("../wxcrypto/testdata/wechat-crypto-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Vectors []struct {
			Token, EncodingAESKey, AppID, Timestamp, Nonce, Message, Encrypt, MsgSignature, Signature string
		}
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(f.Vectors, func(v struct {
		Token, EncodingAESKey, AppID, Timestamp, Nonce, Message, Encrypt, MsgSignature, Signature string
	}) bool {
		return strings.Contains(v.Message, "qrscene_") && strings.HasSuffix(v.Message, "</xml>")
	})
	if i < 0 {
		t.Fatal("no QR scan among the vectors")
	}
	v := f.Vectors[i]
	ticket := v.Message[strings.Index(v.Message, "<Ticket><![CDATA[")+len("<Ticket><![CDATA[") : strings.Index(v.Message, "]]></Ticket>")]
	counter := newStubCounter()
	s, clk, _ := unitServer(t, counter, scantest.NewCode("ns", "vector", v.AppID, ticket, 123123, ""))
	sec, _ := strconv.ParseInt(v.Timestamp, 10, 64)
	clk.SetTime(time.Unix(sec, 0))
	cipher, err := wxcrypto.NewCipher(v.EncodingAESKey, v.AppID)
	if err != nil {
		t.Fatal(err)
	}
	app := newApplication(t, v.Token, cipher)
	s.keyring.byAppID.Store(&map[string]*pushKeys{v.AppID: {appID: v.AppID, token: v.Token, ciphers: []*wxcrypto.Cipher{cipher},
		account: pushconfig.Account{ForwardURL: app.srv.URL, ForwardTimeout: time.Second}}})

	wechat := &pusher{appID: v.AppID, token: v.Token, mode: safe, cipher: cipher}
	req := &push{method: http.MethodPost, path: PathPrefix + v.AppID,
		query: url.Values{"timestamp": {v.Timestamp}, "nonce": {v.Nonce}, "signature": {v.Signature}, "openid": {"oia2Tj"},
			"encrypt_type": {"aes"}, "msg_signature": {v.MsgSignature}},
		body: []byte("<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><Encrypt><![CDATA[" + v.Encrypt + "]]></Encrypt></xml>")}
	status, body := req.serve(s)
	if status != http.StatusOK {
		t.Fatalf("got %d %q", status, body)
	}
	got := app.requests()
	if len(got) != 1 || got[0].problem != "" || got[0].msg.Event != "subscribe" || got[0].msg.EventKey != "qrscene_123123" {
		t.Fatalf("the application got %+v", got)
	}
	if r := wechat.openReply(t, body); r.Content.Value != "app saw event/subscribe/" {
		t.Fatalf("reply %q", r.Content.Value)
	}
	if counter.scansOf("vector") != 1 {
		t.Fatal("the scan was not counted")
	}
}

// slowPush sends a scan of the plaintext code to an application that holds it, and returns the
// answer once the fake clock has passed the forward's timeout.
func (g *gateway) slowPush(t *testing.T, timeout time.Duration) (int, string) {
	t.Helper()
	app := g.apps[plaintext]
	app.hold = make(chan struct{})
	defer close(app.hold)
	g.account("wxplain", func(a *pushconfig.Account) { a.ForwardTimeout = timeout })
	answered := make(chan [2]any, 1)
	go func() {
		status, body := g.pushers[plaintext].build(t, scanXML("o-slow", 1700000200, "SCAN", "1", "TICKET-P")).serve(g.s)
		answered <- [2]any{status, body}
	}()
	<-app.arrived
	// The application holds the push (it would for 6 s): only the timeout can answer WeChat.
	g.clock.Step(timeout)
	a := <-answered
	return a[0].(int), a[1].(string)
}

// TestForwardSlowApplication: an application that does not answer within the forward's timeout
// gets WeChat "success", and the scan is counted all the same.
func TestForwardSlowApplication(t *testing.T) {
	g := newGateway(t)
	before := forwardCount(t, "timeout")
	status, body := g.slowPush(t, 2*time.Second)
	wantOK(t, status, body, "success")
	if g.counter.scansOf("plain") != 1 {
		t.Fatal("the scan was not counted")
	}
	scantest.WaitFor(t, "the timeout metric", func() bool { return forwardCount(t, "timeout") == before+1 })
}

// TestForwardApplicationDown: an application that cannot be reached is "success" at once, and
// the scan counted.
func TestForwardApplicationDown(t *testing.T) {
	g := newGateway(t)
	g.account("wxplain", func(a *pushconfig.Account) { a.ForwardURL = unreachableURL(t) + "wx" })
	before := forwardCount(t, "error")
	status, body := g.pushers[plaintext].build(t, scanXML("o-down", 1700000300, "subscribe", "qrscene_1", "TICKET-P")).serve(g.s)
	wantOK(t, status, body, "success")
	if g.counter.scansOf("plain") != 1 {
		t.Fatal("the scan was not counted")
	}
	if forwardCount(t, "error") != before+1 {
		t.Fatal("the failed forward is not in the metric")
	}
}

// TestNotForwarded: the operator's own answers never reach the application: the scan of a code
// with a reply, the URL verification, and every refused push.
func TestNotForwarded(t *testing.T) {
	g := newGateway(t)
	p, app := g.pushers[safe], g.apps[safe]

	status, body := p.build(t, scanXML("o-reply", 1700000400, "SCAN", "2", "TICKET-S")).serve(g.s)
	if status != http.StatusOK || p.openReply(t, body).Content.Value != "thanks ]]> <b>&amp;</b>" {
		t.Fatalf("the code's own reply: %d %q", status, body)
	}
	get := p.build(t, "")
	get.method, get.body = http.MethodGet, nil
	get.query.Set("echostr", "4711")
	if status, body := get.serve(g.s); status != http.StatusOK || body != "4711" {
		t.Fatalf("verification: %d %q", status, body)
	}
	forged := p.build(t, textXML("o-forger", 1700000401, "hi"))
	forged.query.Set("signature", strings.Repeat("0", 40))
	badMsgSig := p.build(t, textXML("o-forger", 1700000403, "hi"))
	badMsgSig.query.Set("msg_signature", strings.Repeat("0", 40))
	big := p.build(t, textXML("o-forger", 1700000404, strings.Repeat("x", 70<<10)))
	// A replay an hour later, last: it moves the clock.
	stale := p.build(t, textXML("o-forger", 1700000402, "hi"))
	for _, tc := range []struct {
		r      *push
		reason string
	}{{forged, "bad_signature"}, {badMsgSig, "bad_msg_signature"}, {big, "body_too_large"}, {stale, "stale_timestamp"}} {
		if tc.r == stale {
			g.clock.Step(time.Hour)
		}
		before := refusalCount(tc.reason)
		if status, _ := tc.r.serve(g.s); status < 400 || status >= 500 || refusalCount(tc.reason) != before+1 {
			t.Errorf("%s: %d, want a refusal", tc.reason, status)
		}
	}
	if n := len(app.requests()); n != 0 {
		t.Fatalf("the application got %d requests", n)
	}
	if g.counter.scansOf("safe") != 1 {
		t.Fatal("the scan of the code with a reply was not counted")
	}
}

// TestForwardHeaders: hop-by-hop headers stop at the operator, the operator's own headers cannot
// be forged by the sender, a retry is told as a duplicate, and the application's status and
// headers reach WeChat.
func TestForwardHeaders(t *testing.T) {
	g := newGateway(t)
	var got http.Header
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Header().Set("Connection", "X-Hop")
		w.Header().Set("X-Hop", "1")
		w.Header().Set("X-App", "kept")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, "app failed")
	}))
	t.Cleanup(upstream.Close)
	g.account("wxplain", func(a *pushconfig.Account) { a.ForwardURL = upstream.URL })
	req := g.pushers[plaintext].build(t, scanXML("o-h", 1700000500, "SCAN", "1", "TICKET-P"))
	send := func() *httptest.ResponseRecorder {
		r := req.request()
		r.Header.Set("Connection", "X-Secret-Hop")
		r.Header.Set("X-Secret-Hop", "1")
		r.Header.Set("Proxy-Authorization", "Basic eA==")
		r.Header.Set(forward.HeaderCodeName, "forged")
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		rec := httptest.NewRecorder()
		g.s.ServeHTTP(rec, r)
		return rec
	}
	rec := send()
	if rec.Code != http.StatusInternalServerError || rec.Body.String() != "app failed" || rec.Header().Get("X-App") != "kept" || rec.Header().Get("X-Hop") != "" {
		t.Fatalf("relayed %d %q %v", rec.Code, rec.Body.String(), rec.Header())
	}
	for _, h := range []string{"X-Secret-Hop", "Proxy-Authorization", "Connection"} {
		if got.Get(h) != "" {
			t.Errorf("hop-by-hop %s forwarded", h)
		}
	}
	if got.Get(forward.HeaderCodeName) != "plain" || got.Get(forward.HeaderScan) != "new" || got.Get("X-Forwarded-For") != "198.51.100.1, 203.0.113.7" {
		t.Errorf("headers %v", got)
	}
	// WeChat retries after the 500: the application learns it is the same scan.
	send()
	if got.Get(forward.HeaderScan) != "duplicate" || g.counter.scansOf("plain") != 1 {
		t.Errorf("retry: %s, scans %d", got.Get(forward.HeaderScan), g.counter.scansOf("plain"))
	}
}

// unreachableURL is the URL of a port that was just closed: connections to it are refused.
func unreachableURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return "http://" + l.Addr().String() + "/"
}
