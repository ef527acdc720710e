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
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

const (
	pushToken = "callback-token"
	accountID = "gh_0123456789ab"
	openID    = "oUser0123456789"
)

var aesKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))[:43]

// delivery is one push as a callback server saw it, after checking it as the callback must.
type delivery struct {
	query          map[string]string
	raw, plaintext string
}

// callback is a minimal WeChat callback server written from the documentation, independently
// of the Pusher: it checks signatures, decrypts, and answers what answer says.
type callback struct {
	t      *testing.T
	mu     sync.Mutex
	got    []delivery
	answer func(try int, d delivery) (status int, body string)
}

func newCallback(t *testing.T, answer func(try int, d delivery) (int, string)) (*callback, string) {
	c := &callback{t: t, answer: answer}
	srv := httptest.NewServer(c)
	t.Cleanup(srv.Close)
	return c, srv.URL + "/wechat/callback?account=a"
}

func (c *callback) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := map[string]string{}
	for k := range r.URL.Query() {
		q[k] = r.URL.Query().Get(k)
	}
	if q["account"] != "a" || !wxcrypto.VerifySignature(q["signature"], pushToken, q["timestamp"], q["nonce"]) {
		w.WriteHeader(http.StatusForbidden)
		return
	}
	if r.Method == http.MethodGet {
		_, _ = io.WriteString(w, q["echostr"])
		return
	}
	raw, _ := io.ReadAll(r.Body)
	d := delivery{query: q, raw: string(raw), plaintext: string(raw)}
	if q["encrypt_type"] == "aes" {
		var env struct{ Encrypt string }
		if err := xml.Unmarshal(raw, &env); err != nil || !wxcrypto.VerifySignature(q["msg_signature"], pushToken, q["timestamp"], q["nonce"], env.Encrypt) {
			c.t.Errorf("bad encrypted push %s", raw)
			w.WriteHeader(http.StatusForbidden)
			return
		}
		plain, err := mustCipher(c.t).Decrypt(env.Encrypt)
		if err != nil {
			c.t.Errorf("decrypt: %v", err)
		}
		d.plaintext = string(plain)
	}
	c.mu.Lock()
	c.got = append(c.got, d)
	try := len(c.got)
	c.mu.Unlock()
	status, body := c.answer(try, d)
	if status == 0 { // hang past the Pusher's timeout
		<-r.Context().Done()
		return
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (c *callback) deliveries() []delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]delivery(nil), c.got...)
}

func mustCipher(t *testing.T) *wxcrypto.Cipher {
	c, err := wxcrypto.NewCipher(aesKey, appID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func textReply(to, from, content string) string {
	return fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>1</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content></xml>", to, from, content)
}

func encryptedReply(t *testing.T, plain string) string {
	enc, err := mustCipher(t).Encrypt([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("<xml><Encrypt><![CDATA[%s]]></Encrypt><MsgSignature><![CDATA[%s]]></MsgSignature><TimeStamp>1</TimeStamp><Nonce><![CDATA[n]]></Nonce></xml>",
		enc, wxcrypto.Signature(pushToken, "1", "n", enc))
}

func success(int, delivery) (int, string) { return http.StatusOK, "success" }

// issue creates a code on the fake and returns its ticket.
func (e *env) issue(body string) string {
	e.t.Helper()
	m := e.create(e.token(e.stable(false)), body)
	ticket, _ := m["ticket"].(string)
	if ticket == "" {
		e.t.Fatalf("create: %v", m)
	}
	return ticket
}

func (e *env) pusher(url string, mode wechattest.PushMode) *wechattest.Pusher {
	return &wechattest.Pusher{
		URL: url, Token: pushToken, EncodingAESKey: aesKey, AppID: appID, AccountID: accountID,
		Mode: mode, Server: e.srv, Timeout: 200 * time.Millisecond,
	}
}

func TestPushScanPlaintext(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(tempBody)
	cb, url := newCallback(t, success)
	res, err := e.pusher(url, wechattest.PushPlaintext).Scan(context.Background(), ticket, openID, false)
	if err != nil || !res.Acknowledged() || res.Tries != 1 {
		t.Fatalf("%+v %v", res, err)
	}
	got := cb.deliveries()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	want := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>"+
		"<EventKey><![CDATA[qrscene_7]]></EventKey><Ticket><![CDATA[%s]]></Ticket></xml>", accountID, openID, start.Unix(), ticket)
	if got[0].raw != want {
		t.Errorf("push body\n got %s\nwant %s", got[0].raw, want)
	}
	if got[0].query["openid"] != openID || got[0].query["timestamp"] != fmt.Sprint(start.Unix()) || got[0].query["encrypt_type"] != "" {
		t.Errorf("query %v", got[0].query)
	}
}

func TestPushScanByFollower(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(`{"action_name":"QR_LIMIT_STR_SCENE","action_info":{"scene":{"scene_str":"spring-sale"}}}`)
	cb, url := newCallback(t, success)
	if _, err := e.pusher(url, wechattest.PushPlaintext).Scan(context.Background(), ticket, openID, true); err != nil {
		t.Fatal(err)
	}
	raw := cb.deliveries()[0].raw
	if !strings.Contains(raw, "<Event><![CDATA[SCAN]]></Event><EventKey><![CDATA[spring-sale]]></EventKey>") {
		t.Errorf("SCAN push %s", raw)
	}
}

// TestPushText: a text message is pushed as §5 shows it, with a MsgId, and its reply is checked
// like an event's.
func TestPushText(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	reply := textReply(openID, accountID, "you said: 你好")
	cb, url := newCallback(t, func(int, delivery) (int, string) { return http.StatusOK, encryptedReply(t, reply) })
	res, err := e.pusher(url, wechattest.PushSafe).Text(context.Background(), openID, "你好 <&>")
	if err != nil || res.Reply != reply {
		t.Fatalf("%+v %v", res, err)
	}
	prefix := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好 <&>]]></Content><MsgId>", accountID, openID, start.Unix())
	d := cb.deliveries()[0]
	if !strings.HasPrefix(d.plaintext, prefix) || !strings.HasSuffix(d.plaintext, "</MsgId></xml>") || d.query["openid"] != openID {
		t.Errorf("text push %s, query %v", d.plaintext, d.query)
	}
}

func TestPushCompatibleMode(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(tempBody)
	reply := textReply(openID, accountID, "感谢您的关注! 场景值: 7")
	cb, url := newCallback(t, func(int, delivery) (int, string) { return http.StatusOK, encryptedReply(t, reply) })
	res, err := e.pusher(url, wechattest.PushCompatible).Scan(context.Background(), ticket, openID, false)
	if err != nil || !res.Encrypted || res.Reply != reply || res.Acknowledged() {
		t.Fatalf("%+v %v", res, err)
	}
	d := cb.deliveries()[0]
	if d.plaintext != res.Sent || !strings.Contains(d.raw, "<FromUserName><![CDATA["+openID) || !strings.Contains(d.raw, "<Encrypt>") {
		t.Errorf("compatible mode carries the plaintext fields and Encrypt: %s", d.raw)
	}
	if d.query["encrypt_type"] != "aes" || d.query["msg_signature"] == "" {
		t.Errorf("query %v", d.query)
	}
}

func TestPushSafeMode(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(tempBody)
	answer := "success"
	cb, url := newCallback(t, func(int, delivery) (int, string) { return http.StatusOK, answer })
	p := e.pusher(url, wechattest.PushSafe)
	if _, err := p.Scan(context.Background(), ticket, openID, false); err != nil {
		t.Fatal(err)
	}
	d := cb.deliveries()[0]
	if strings.Contains(d.raw, "FromUserName") || !strings.Contains(d.raw, "<ToUserName><![CDATA["+accountID) {
		t.Errorf("safe mode sends only ToUserName and Encrypt: %s", d.raw)
	}
	if !strings.Contains(d.plaintext, "<EventKey><![CDATA[qrscene_7]]></EventKey>") {
		t.Errorf("decrypted push %s", d.plaintext)
	}
	answer = textReply(openID, accountID, "hi")
	if _, err := p.Scan(context.Background(), ticket, openID, false); err == nil {
		t.Error("a plaintext message reply in safe mode must be refused")
	}
	answer = encryptedReply(t, textReply(openID, accountID, "hi"))
	if res, err := p.Scan(context.Background(), ticket, openID, false); err != nil || res.Reply != textReply(openID, accountID, "hi") {
		t.Errorf("%+v %v", res, err)
	}
}

func TestPushBadReplies(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(tempBody)
	for name, body := range map[string]string{
		"malformed":     "<xml><Content>",
		"wrong user":    textReply("oSomeoneElse", accountID, "hi"),
		"bad signature": strings.Replace(encryptedReply(t, textReply(openID, accountID, "hi")), "<MsgSignature><![CDATA[", "<MsgSignature><![CDATA[0", 1),
	} {
		_, url := newCallback(t, func(int, delivery) (int, string) { return http.StatusOK, body })
		if _, err := e.pusher(url, wechattest.PushCompatible).Scan(context.Background(), ticket, openID, false); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// TestPushReplyMessages: an image and a link card reply are read as the user would see them,
// and one WeChat cannot show (no MediaId, an ArticleCount that lies, over 8 articles) is an error.
func TestPushReplyMessages(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(tempBody)
	head := fmt.Sprintf("<xml><ToUserName><![CDATA[%s]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName><CreateTime>1</CreateTime>", openID, accountID)
	item := func(title, url string) string {
		return "<item><Title><![CDATA[" + title + "]]></Title><Description><![CDATA[d]]></Description><PicUrl><![CDATA[https://p/x.png]]></PicUrl><Url><![CDATA[" + url + "]]></Url></item>"
	}
	news := func(count int, items ...string) string {
		return head + fmt.Sprintf("<MsgType><![CDATA[news]]></MsgType><ArticleCount>%d</ArticleCount><Articles>%s</Articles></xml>", count, strings.Join(items, ""))
	}
	for _, tc := range []struct {
		name, reply, want string
	}{
		{"text", textReply(openID, accountID, "你好"), `"你好"`},
		{"image", head + "<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[HIFbTu-MDPCEBX]]></MediaId></Image></xml>", "image media_id=HIFbTu-MDPCEBX"},
		{"link card", news(1, item("欢迎关注", "https://shop.example.com/w?a=1&b=2")), `link "欢迎关注" → https://shop.example.com/w?a=1&b=2`},
		{"image without MediaId", head + "<MsgType><![CDATA[image]]></MsgType><Image></Image></xml>", ""},
		{"ArticleCount that lies", news(2, item("t", "https://e.com")), ""},
		{"no article", news(0), ""},
		{"nine articles", news(9, slices.Repeat([]string{item("t", "https://e.com")}, 9)...), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, url := newCallback(t, func(int, delivery) (int, string) { return http.StatusOK, encryptedReply(t, tc.reply) })
			res, err := e.pusher(url, wechattest.PushSafe).Scan(context.Background(), ticket, openID, false)
			switch {
			case tc.want == "" && err == nil:
				t.Fatalf("accepted %s", tc.reply)
			case tc.want != "" && (err != nil || res.Message.String() != tc.want):
				t.Fatalf("got %q (%v), want %q", res.Message.String(), err, tc.want)
			}
		})
	}
}

func TestPushRetries(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	ticket := e.issue(tempBody)
	cb, url := newCallback(t, func(try int, _ delivery) (int, string) {
		if try == 1 {
			return 0, "" // no answer within the timeout
		}
		return http.StatusOK, ""
	})
	res, err := e.pusher(url, wechattest.PushSafe).Scan(context.Background(), ticket, openID, false)
	if err != nil || res.Tries != 2 || !res.Acknowledged() {
		t.Fatalf("%+v %v", res, err)
	}
	if got := cb.deliveries(); got[0].raw != got[1].raw || got[0].query["nonce"] != got[1].query["nonce"] {
		t.Error("a retry must carry the same message")
	}

	cb, url = newCallback(t, func(int, delivery) (int, string) { return http.StatusInternalServerError, "" })
	res, err = e.pusher(url, wechattest.PushPlaintext).Scan(context.Background(), ticket, openID, false)
	if err == nil || res.Tries != wechattest.PushTries || len(cb.deliveries()) != 3 || res.Status != 500 {
		t.Errorf("%+v %v: want 3 tries and an error", res, err)
	}
}

func TestPushUnsubscribeAndUnknownTickets(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	cb, url := newCallback(t, success)
	p := e.pusher(url, wechattest.PushPlaintext)
	if _, err := p.Push(context.Background(), wechattest.Event{FromUserName: openID, Event: "unsubscribe"}); err != nil {
		t.Fatal(err)
	}
	if raw := cb.deliveries()[0].raw; strings.Contains(raw, "EventKey") || strings.Contains(raw, "Ticket") {
		t.Errorf("unsubscribe carries no EventKey: %s", raw)
	}
	if _, err := p.Scan(context.Background(), "gQunknown==", openID, false); !errors.Is(err, wechattest.ErrUnknownTicket) {
		t.Errorf("unknown ticket: %v", err)
	}
	ticket := e.issue(tempBody)
	e.advance(600 * time.Second)
	if _, err := p.Scan(context.Background(), ticket, openID, false); !errors.Is(err, wechattest.ErrUnknownTicket) {
		t.Errorf("expired ticket: %v", err)
	}
}

func TestPushVerify(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	_, url := newCallback(t, success)
	p := e.pusher(url, wechattest.PushPlaintext)
	if ok, err := p.Verify(context.Background()); !ok || err != nil {
		t.Errorf("verify: %v %v", ok, err)
	}
	p.Token = "another-token"
	if ok, _ := p.Verify(context.Background()); ok {
		t.Error("verify with a wrong token must fail")
	}
}
