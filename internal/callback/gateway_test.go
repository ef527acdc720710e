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
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
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
		newCode("ns", "safe-noreply", "wxsafe", "TICKET-SN", 3, ""),
		newCode("ns", "compat", "wxcompat", "TICKET-C", 4, ""))
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

func forwardCount(result string) float64 { return testutil.ToFloat64(forwards.WithLabelValues(result)) }

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
					name := got.header.Get(HeaderCodeName)
					switch {
					case tc.scan && (name == "" || got.header.Get(HeaderCodeNamespace) != "ns" || got.header.Get(HeaderScan) != "new" || got.header.Get(HeaderEventID) == ""):
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
