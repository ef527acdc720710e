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
	"crypto/aes"
	"crypto/cipher"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxreply"
)

func TestGreeting(t *testing.T) {
	text := func(s string) *qrv1alpha1.ReplyMessage { return &qrv1alpha1.ReplyMessage{Text: s} }
	image := &qrv1alpha1.ReplyMessage{Image: &qrv1alpha1.ReplyImage{MediaID: "m1"}}
	link := &qrv1alpha1.ReplyMessage{Link: &qrv1alpha1.ReplyLink{Title: "t", URL: "https://e.com"}}
	for _, tc := range []struct {
		name                  string
		reply                 *qrv1alpha1.Reply
		newFollower, follower *qrv1alpha1.ReplyMessage
	}{
		{"no reply", nil, nil, nil},
		{"one text for everyone", &qrv1alpha1.Reply{ReplyMessage: *text("hi")}, text("hi"), text("hi")},
		{"one image for everyone", &qrv1alpha1.Reply{ReplyMessage: *image}, image, image},
		{"new followers differ", &qrv1alpha1.Reply{ReplyMessage: *text("hi"), NewFollowers: link}, link, text("hi")},
		{"followers differ", &qrv1alpha1.Reply{ReplyMessage: *text("hi"), Followers: image}, text("hi"), image},
		{"each its own", &qrv1alpha1.Reply{ReplyMessage: *text("hi"), NewFollowers: link, Followers: image}, link, image},
		{"only new followers", &qrv1alpha1.Reply{NewFollowers: text("welcome")}, text("welcome"), nil},
		{"only followers", &qrv1alpha1.Reply{Followers: link}, nil, link},
		// The schema refuses an empty override; a stale object's falls back to everyone's.
		{"empty override", &qrv1alpha1.Reply{ReplyMessage: *text("hi"), Followers: &qrv1alpha1.ReplyMessage{}}, text("hi"), text("hi")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for kind, want := range map[string]*qrv1alpha1.ReplyMessage{kindQRSubscribe: tc.newFollower, kindQRScan: tc.follower} {
				got := greeting(tc.reply, kind)
				if (got == nil) != (want == nil) || got != nil && (got.Text != want.Text || got.Image != want.Image && *got.Image != *want.Image ||
					got.Link != want.Link && *got.Link != *want.Link) {
					t.Errorf("%s: got %+v, want %+v", kind, got, want)
				}
			}
		})
	}
}

// openAsWeChat opens an encrypted passive reply the way WeChat's documentation (and its sample
// code, WXBizMsgCrypt) describes, written out here rather than through wxcrypto: the signature
// is the SHA-1 of the sorted token, TimeStamp, Nonce and Encrypt; the key is the EncodingAESKey
// with "=" appended, base64-decoded; AES-256-CBC with the key's first 16 bytes as IV, PKCS#7
// padding to 32 bytes; the plaintext is 16 random bytes, the message's length (4 bytes, big
// endian), the message and the AppID.
func openAsWeChat(t *testing.T, token, encodingAESKey, appID, body string) []byte {
	t.Helper()
	var env wxreply.Envelope
	if err := xml.Unmarshal([]byte(body), &env); err != nil || env.Encrypt.Value == "" {
		t.Fatalf("not an encrypted reply: %q (%v)", body, err)
	}
	parts := []string{token, env.TimeStamp, env.Nonce.Value, env.Encrypt.Value}
	slices.Sort(parts)
	if sum := sha1.Sum([]byte(strings.Join(parts, ""))); hex.EncodeToString(sum[:]) != env.MsgSignature.Value {
		t.Fatal("the reply's MsgSignature is not WeChat's")
	}
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		t.Fatalf("EncodingAESKey: %v", err)
	}
	sealed, err := base64.StdEncoding.DecodeString(env.Encrypt.Value)
	if err != nil || len(sealed) == 0 || len(sealed)%32 != 0 {
		t.Fatalf("Encrypt is not base64 of whole 32-byte blocks: %v", err)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	plain := make([]byte, len(sealed))
	cipher.NewCBCDecrypter(block, key[:16]).CryptBlocks(plain, sealed)
	pad := int(plain[len(plain)-1])
	if pad < 1 || pad > 32 || !bytes.Equal(plain[len(plain)-pad:], bytes.Repeat([]byte{byte(pad)}, pad)) {
		t.Fatalf("padding %d is not PKCS#7 to 32 bytes", pad)
	}
	plain = plain[16 : len(plain)-pad]
	n := binary.BigEndian.Uint32(plain)
	if int(n) > len(plain)-4 || string(plain[4+n:]) != appID {
		t.Fatalf("the reply is not sealed for %s: %q", appID, plain)
	}
	return plain[4 : 4+n]
}

// TestGreetingsByFollowerKind: a code's reply differs for a new follower (subscribe) and a
// follower (SCAN), as a link card, an image or a text; each decrypts as WeChat decrypts it, a
// retry gets the same, and no scan of the code reaches the account's application, not even of a
// kind the reply has no message for.
func TestGreetingsByFollowerKind(t *testing.T) {
	link := &qrv1alpha1.ReplyLink{Title: "欢迎关注 ]]> <b>", Description: "新人礼包 & more", URL: "https://shop.example.com/welcome?from=qr&x=1",
		PicURL: "http://img.example.com/w.png"}
	greet := scantest.NewCode("ns", "greet", "wxsafe", "TICKET-G", 7, "")
	greet.Spec.Reply = &qrv1alpha1.Reply{ReplyMessage: qrv1alpha1.ReplyMessage{Image: &qrv1alpha1.ReplyImage{MediaID: "HIFbTu-MDPCEBXvcSL9Ph5lRXa6HbO4ksApqsD4VUag"}},
		NewFollowers: &qrv1alpha1.ReplyMessage{Link: link}}
	newOnly := scantest.NewCode("ns", "new-only", "wxplain", "TICKET-N", 8, "")
	newOnly.Spec.Reply = &qrv1alpha1.Reply{NewFollowers: &qrv1alpha1.ReplyMessage{Text: "欢迎"}}
	counter := newStubCounter()
	s, _, pushers := unitServer(t, counter, greet, newOnly)
	// Both accounts forward: the codes' replies must keep their scans from the applications.
	keys := map[string]*pushKeys{}
	var apps []*application
	for _, p := range pushers {
		app := newApplication(t, p.token, p.cipher)
		apps = append(apps, app)
		k := &pushKeys{appID: p.appID, token: p.token, account: pushconfig.Account{AppID: p.appID, ForwardURL: app.srv.URL, ForwardTimeout: time.Second}}
		if p.cipher != nil {
			k.ciphers = []*wxcrypto.Cipher{p.cipher}
		}
		keys[p.appID] = k
	}
	s.keyring.byAppID.Store(&keys)

	p := pushers[safe]
	before := time.Now().Add(-time.Minute).Unix()
	subscribe := p.build(t, scanXML("o-new", 1700000500, "subscribe", "qrscene_7", "TICKET-G"))
	for try := range 2 { // the original and a retry
		status, body := subscribe.serve(s)
		wantOK(t, status, body, "")
		var news wxreply.News
		if err := xml.Unmarshal(openAsWeChat(t, p.token, testKey, p.appID, body), &news); err != nil {
			t.Fatal(err)
		}
		want := wxreply.Article{Title: wxreply.CDATA{Value: link.Title}, Description: wxreply.CDATA{Value: link.Description},
			PicURL: wxreply.CDATA{Value: link.PicURL}, URL: wxreply.CDATA{Value: link.URL}}
		if news.MsgType.Value != "news" || news.ArticleCount != 1 || len(news.Articles) != 1 || news.Articles[0] != want ||
			news.ToUserName.Value != "o-new" || news.FromUserName.Value != "gh_account" || news.CreateTime < before {
			t.Fatalf("try %d: the new follower got %+v", try, news)
		}
	}
	status, body := p.build(t, scanXML("o-old", 1700000501, "SCAN", "7", "TICKET-G")).serve(s)
	wantOK(t, status, body, "")
	var image wxreply.Image
	if err := xml.Unmarshal(openAsWeChat(t, p.token, testKey, p.appID, body), &image); err != nil {
		t.Fatal(err)
	}
	if image.MsgType.Value != "image" || image.MediaID.Value != greet.Spec.Reply.Image.MediaID || image.ToUserName.Value != "o-old" {
		t.Fatalf("the follower got %+v", image)
	}

	plain := pushers[plaintext]
	status, body = plain.build(t, scanXML("o-new", 1700000502, "subscribe", "qrscene_8", "TICKET-N")).serve(s)
	wantOK(t, status, body, "")
	if r := plain.openReply(t, body); r.MsgType.Value != "text" || r.Content.Value != "欢迎" {
		t.Fatalf("the new follower got %+v", r)
	}
	status, body = plain.build(t, scanXML("o-old", 1700000503, "SCAN", "8", "TICKET-N")).serve(s)
	wantOK(t, status, body, "success")

	for _, app := range apps {
		if n := len(app.requests()); n != 0 {
			t.Fatalf("an application got %d scans of codes with a reply", n)
		}
	}
	if counter.scansOf("greet") != 2 || counter.scansOf("new-only") != 2 {
		t.Fatalf("counted %d and %d scans, want 2 and 2", counter.scansOf("greet"), counter.scansOf("new-only"))
	}
}

// BenchmarkPushGreeting is the CPU cost of a safe-mode scan answered with an encrypted link
// card, beside BenchmarkPushReply's text.
func BenchmarkPushGreeting(b *testing.B) {
	greet := scantest.NewCode("ns", "greet", "wxsafe", "TICKET-G", 7, "")
	greet.Spec.Reply = &qrv1alpha1.Reply{ReplyMessage: qrv1alpha1.ReplyMessage{Link: &qrv1alpha1.ReplyLink{
		Title: "欢迎关注", Description: "新人礼包", URL: "https://shop.example.com/welcome?from=qr", PicURL: "https://img.example.com/w.png"}}}
	s, _, pushers := unitServer(b, newStubCounter(), greet)
	req := pushers[safe].build(b, scanXML("o1", 1, "SCAN", "7", "TICKET-G"))
	for b.Loop() {
		if code, reply := req.serve(s); code != http.StatusOK || reply == "success" {
			b.Fatal(code, reply)
		}
	}
}
