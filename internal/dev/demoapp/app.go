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

// Package demoapp is what `make dev` runs behind the dev account's spec.forward and as its sink:
// an ordinary WeChat application, written from WeChat's documented protocol
// (docs/wechat-platform.md §5 and §6) as an account's developer writes one, and a scan receiver
// written with the CloudEvents SDK. Neither knows it sits behind the operator, except that the
// application reads the headers the operator adds to a scan; so the dev stack shows what an
// existing application keeps doing once the operator is put in front of it.
package demoapp

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxreply"
)

// Printer is where the application and the sink say what they did, one line per message.
type Printer interface {
	Printf(format string, v ...any)
}

// maxBody is far above any push (WeChat's are a few KiB) and keeps a hostile body bounded.
const maxBody = 64 << 10

// App is the WeChat application of one account: it echoes text messages ("you said: …"), greets
// new followers and tells a scanner which code they scanned, like the seeds' handler. It checks
// every push as a WeChat SDK does, and answers an encrypted push with an encrypted reply.
type App struct {
	token string
	// cipher is nil in plaintext mode. With one, only encrypted pushes are accepted: in plaintext
	// mode WeChat's signature does not cover the body.
	cipher *wxcrypto.Cipher
	clock  clock.PassiveClock
	log    Printer
}

// NewApp returns the application of the account appID, with its push token and, for an account
// in compatible or safe mode, its EncodingAESKey ("" in plaintext mode).
func NewApp(token, appID, encodingAESKey string, clk clock.PassiveClock, log Printer) (*App, error) {
	if token == "" {
		return nil, errors.New("the application needs the account's token")
	}
	a := &App{token: token, clock: clk, log: log}
	if encodingAESKey != "" {
		c, err := wxcrypto.NewCipher(encodingAESKey, appID)
		if err != nil {
			return nil, err
		}
		a.cipher = c
	}
	return a, nil
}

// message is what the application reads of a push.
type message struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	MsgType      string `xml:"MsgType"`
	Content      string `xml:"Content"`
	Event        string `xml:"Event"`
	EventKey     string `xml:"EventKey"`
	Encrypt      string `xml:"Encrypt"`
}

// problem is a push the application refuses, with the status it answers.
type problem struct {
	status int
	why    string
}

func (a *App) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if !wxcrypto.VerifySignature(q.Get("signature"), a.token, q.Get("timestamp"), q.Get("nonce")) {
		a.refuse(w, problem{http.StatusForbidden, "bad signature"})
		return
	}
	switch r.Method {
	case http.MethodGet:
		_, _ = io.WriteString(w, q.Get("echostr"))
		return
	case http.MethodPost:
	default:
		a.refuse(w, problem{http.StatusMethodNotAllowed, "method " + r.Method})
		return
	}
	m, encrypted, p := a.open(r, q)
	if p != nil {
		a.refuse(w, *p)
		return
	}
	text := answer(m, r.Header)
	a.log.Printf("%s from %s: %s", describe(m), m.FromUserName, orSuccess(text))
	if text == "" {
		_, _ = io.WriteString(w, "success")
		return
	}
	body, err := a.reply(m, text, encrypted)
	if err != nil {
		a.refuse(w, problem{http.StatusInternalServerError, "sealing the reply: " + err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	_, _ = w.Write(body)
}

func (a *App) refuse(w http.ResponseWriter, p problem) {
	a.log.Printf("refused a push: %s", p.why)
	http.Error(w, p.why, p.status)
}

// open reads the push, checking msg_signature and decrypting it when it is encrypted.
func (a *App) open(r *http.Request, q url.Values) (*message, bool, *problem) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil || len(body) > maxBody {
		return nil, false, &problem{http.StatusBadRequest, "unreadable or oversized body"}
	}
	var m message
	if err := xml.Unmarshal(body, &m); err != nil {
		return nil, false, &problem{http.StatusBadRequest, "the body is not XML"}
	}
	encrypted := q.Get("encrypt_type") == "aes"
	switch {
	case encrypted && a.cipher == nil:
		return nil, false, &problem{http.StatusBadRequest, "an encrypted push, but the application has no EncodingAESKey"}
	case !encrypted && a.cipher != nil:
		return nil, false, &problem{http.StatusForbidden, "a plaintext push, but the account is in compatible or safe mode"}
	case !encrypted:
		return &m, false, nil
	}
	if !wxcrypto.VerifySignature(q.Get("msg_signature"), a.token, q.Get("timestamp"), q.Get("nonce"), m.Encrypt) {
		return nil, false, &problem{http.StatusForbidden, "bad msg_signature"}
	}
	plain, err := a.cipher.Decrypt(m.Encrypt)
	if err != nil {
		return nil, false, &problem{http.StatusBadRequest, err.Error()}
	}
	m = message{}
	if err := xml.Unmarshal(plain, &m); err != nil {
		return nil, false, &problem{http.StatusBadRequest, "the decrypted push is not XML"}
	}
	return &m, true, nil
}

// answer is the application's reply to m, "" for none. h carries what the operator says of a
// scan.
func answer(m *message, h http.Header) string {
	switch {
	case m.MsgType == "text":
		return "you said: " + m.Content
	case m.MsgType != "event":
		return ""
	case m.Event == "subscribe":
		scene, fromCode := strings.CutPrefix(m.EventKey, "qrscene_")
		if !fromCode {
			return "welcome!"
		}
		return "welcome! you followed by scanning scene " + scene + code(h)
	case m.Event == "SCAN":
		return "you scanned scene " + m.EventKey + code(h)
	}
	return ""
}

// code names the WeChatQRCode the operator says a scan is of.
func code(h http.Header) string {
	name := h.Get(forward.HeaderCodeName)
	if name == "" {
		return ""
	}
	return fmt.Sprintf(" (code %s/%s, %s scan)", h.Get(forward.HeaderCodeNamespace), name, h.Get(forward.HeaderScan))
}

func describe(m *message) string {
	switch m.MsgType {
	case "text":
		return strconv.Quote(m.Content)
	case "event":
		return m.Event + " " + strconv.Quote(m.EventKey)
	}
	return m.MsgType
}

func orSuccess(text string) string {
	if text == "" {
		return "success"
	}
	return "replied " + strconv.Quote(text)
}

// reply is text as a passive reply to m, encrypted and signed when the push was.
func (a *App) reply(m *message, text string, encrypted bool) ([]byte, error) {
	now := a.clock.Now().Unix()
	plain, err := wxreply.MarshalText(m.FromUserName, m.ToUserName, text, now)
	if err != nil || !encrypted {
		return plain, err
	}
	enc, err := a.cipher.Encrypt(plain)
	if err != nil {
		return nil, err
	}
	ts, nonce := strconv.FormatInt(now, 10), strconv.FormatInt(rand.Int64N(1e10), 10)
	return wxreply.MarshalEnvelope(enc, wxcrypto.Signature(a.token, ts, nonce, enc), ts, nonce)
}
