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
	"crypto/rand"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// Modes an account's pushes are sent in.
const (
	plaintext  = "plaintext"
	compatible = "compatible"
	safe       = "safe"
)

// pusher plays WeChat pushing to one account, as docs/wechat-platform.md §5 and §6 describe.
type pusher struct {
	appID  string
	token  string
	mode   string
	cipher *wxcrypto.Cipher // the key WeChat encrypts with, in compatible and safe mode
}

// push is one request before it is sent; tests spoil it to make hostile variants.
type push struct {
	method string
	path   string
	query  url.Values
	body   []byte
}

// scanXML is the plaintext push of an event (section 5).
func scanXML(openid string, createTime int64, event, eventKey, ticket string) string {
	s := fmt.Sprintf("<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event>", openid, createTime, event)
	if eventKey != "-" {
		s += "<EventKey><![CDATA[" + eventKey + "]]></EventKey>"
	}
	if ticket != "" {
		s += "<Ticket><![CDATA[" + ticket + "]]></Ticket>"
	}
	return s + "</xml>"
}

// build signs msg as WeChat would in p's mode, now.
func (p *pusher) build(t testing.TB, msg string) *push {
	t.Helper()
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	nonce := rand.Text()[:10]
	q := url.Values{"timestamp": {ts}, "nonce": {nonce}, "openid": {"o-user"},
		"signature": {wxcrypto.Signature(p.token, ts, nonce)}}
	body := []byte(msg)
	if p.mode != plaintext {
		enc, err := p.cipher.Encrypt(body)
		if err != nil {
			t.Fatal(err)
		}
		q.Set("encrypt_type", "aes")
		q.Set("msg_signature", wxcrypto.Signature(p.token, ts, nonce, enc))
		envelope := "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
		if p.mode == compatible {
			// Compatible mode sends the plaintext fields beside Encrypt.
			envelope = msg[:len(msg)-len("</xml>")] + "<Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"
		}
		body = []byte(envelope)
	}
	return &push{method: http.MethodPost, path: PathPrefix + p.appID, query: q, body: body}
}

// resign recomputes the signatures after a test changed the query or the Encrypt element.
func (p *pusher) resign(r *push, encrypt string) {
	ts, nonce := r.query.Get("timestamp"), r.query.Get("nonce")
	r.query.Set("signature", wxcrypto.Signature(p.token, ts, nonce))
	if encrypt != "" {
		r.query.Set("msg_signature", wxcrypto.Signature(p.token, ts, nonce, encrypt))
	}
}

func (r *push) request() *http.Request {
	req := httptest.NewRequest(r.method, r.path+"?"+r.query.Encode(), bytes.NewReader(r.body))
	req.RemoteAddr = "203.0.113.7:4711"
	return req
}

// serve runs r through h in memory.
func (r *push) serve(h http.Handler) (int, string) {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r.request())
	return rec.Code, rec.Body.String()
}

// send posts r over real HTTP to base.
func (r *push) send(t testing.TB, base string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(r.method, base+r.path+"?"+r.query.Encode(), bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// openReply returns the text of a passive reply, checking its signature and decrypting it when
// the push was encrypted.
func (p *pusher) openReply(t testing.TB, body string) textReply {
	t.Helper()
	plain := []byte(body)
	if p.mode != plaintext {
		var env encryptedReply
		if err := xml.Unmarshal(plain, &env); err != nil {
			t.Fatalf("encrypted reply %q: %v", body, err)
		}
		if !wxcrypto.VerifySignature(env.MsgSignature.Value, p.token, env.TimeStamp, env.Nonce.Value, env.Encrypt.Value) {
			t.Fatal("the reply's MsgSignature does not verify")
		}
		var err error
		if plain, err = p.cipher.Decrypt(env.Encrypt.Value); err != nil {
			t.Fatalf("decrypting the reply: %v", err)
		}
	}
	var r textReply
	if err := xml.Unmarshal(plain, &r); err != nil {
		t.Fatalf("reply %q: %v", plain, err)
	}
	return r
}

func refusalCount(reason string) float64 { return testutil.ToFloat64(refusals.WithLabelValues(reason)) }

func eventCount(kind, result string) float64 {
	return testutil.ToFloat64(events.WithLabelValues(kind, result))
}

// receiver is a sink built with the CloudEvents SDK, as an application would build it.
type receiver struct {
	url string

	mu     sync.Mutex
	events []cloudevents.Event
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cloudevents.NewClientHTTP(cehttp.WithListener(l))
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + l.Addr().String() + "/"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.StartReceiver(ctx, func(e cloudevents.Event) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.events = append(r.events, e)
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return r
}

func (r *receiver) received() []cloudevents.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]cloudevents.Event(nil), r.events...)
}
