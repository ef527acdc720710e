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
	"errors"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

const (
	testKey      = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	testOtherKey = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
)

// previousTicket sets only the ticket and its AppID, whatever else PreviousTicket holds.
func previousTicket(appID, ticket string) qrv1alpha1.PreviousTicket {
	var p qrv1alpha1.PreviousTicket
	p.Ticket, p.AppID = ticket, appID
	return p
}

// unitServer is a Server with a plaintext account "wxplain" and a safe-mode account "wxsafe" and
// one code of each, and codes, indexed as the informer indexes them, on a fake clock, that counts
// with counter. It needs no API server, for the HTTP unit and fuzz tests.
func unitServer(t testing.TB, counter scanCounter, codes ...*qrv1alpha1.WeChatQRCode) (*Server, *clocktesting.FakeClock, map[string]*pusher) {
	t.Helper()
	plainCode := scantest.NewCode("ns", "plain", "wxplain", "TICKET-P", 1, "")
	safeCode := scantest.NewCode("ns", "safe", "wxsafe", "TICKET-S", 2, "thanks ]]> <b>&amp;</b>")
	opts := DefaultOptions()
	clk := clocktesting.NewFakeClock(time.Now())
	// The package's logger, which the tests read for secrets.
	s := newServer(opts, clk, nil, indexed(t, append(codes, plainCode, safeCode)...), nil, ctrl.Log.WithName("callback"))
	s.counter = counter
	cipher, err := wxcrypto.NewCipher(testKey, "wxsafe")
	if err != nil {
		t.Fatal(err)
	}
	s.keyring.byAppID.Store(&map[string]*pushKeys{
		"wxplain": {appID: "wxplain", token: "tok-plain"},
		"wxsafe":  {appID: "wxsafe", token: "tok-safe", ciphers: []*wxcrypto.Cipher{cipher}},
	})
	return s, clk, map[string]*pusher{
		plaintext: {appID: "wxplain", token: "tok-plain", mode: plaintext},
		safe:      {appID: "wxsafe", token: "tok-safe", mode: safe, cipher: cipher},
	}
}

// indexed is codes in a client-go indexer with the server's indexes, as the informer holds them.
func indexed(t testing.TB, codes ...*qrv1alpha1.WeChatQRCode) codeIndex {
	t.Helper()
	idx := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, indexers())
	for _, c := range codes {
		if err := idx.Add(c); err != nil {
			t.Fatal(err)
		}
	}
	return idx
}

// stubCounter stands for the counter in the HTTP unit tests: it counts every event once per
// code, in memory, unless fail (when set) returns an error first.
type stubCounter struct {
	fail func(ctx context.Context) error

	mu    sync.Mutex
	keys  map[string]bool
	scans map[string]int
}

func newStubCounter() *stubCounter {
	return &stubCounter{keys: map[string]bool{}, scans: map[string]int{}}
}

func (c *stubCounter) Count(ctx context.Context, e qrv1alpha1.LedgerEntry, _ time.Time) (bool, error) {
	if c.fail != nil {
		if err := c.fail(ctx); err != nil {
			return false, err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if k := e.Code + " " + e.Key; !c.keys[k] {
		c.keys[k] = true
		_, name, _ := strings.Cut(e.Code, "/")
		c.scans[name]++
		return false, nil
	}
	return true, nil
}

func (c *stubCounter) Known(code, key string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.keys[code+" "+key]
}

func (c *stubCounter) scansOf(name string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.scans[name]
}

func TestClassify(t *testing.T) {
	cases := []struct {
		xml, kind, scene string
	}{
		{scanXML("o1", 1, "subscribe", "qrscene_123", "T"), kindQRSubscribe, "123"},
		{scanXML("o1", 1, "SCAN", "123", "T"), kindQRScan, "123"},
		{scanXML("o1", 1, "SCAN", "qrscene_123", "T"), kindQRScan, "qrscene_123"},
		{scanXML("o1", 1, "subscribe", "", ""), kindSubscribe, ""},
		{scanXML("o1", 1, "subscribe", "-", ""), kindSubscribe, ""},
		{scanXML("o1", 1, "subscribe", "qrscene_", "T"), kindSubscribe, ""},
		{scanXML("o1", 1, "unsubscribe", "-", ""), kindUnsubscribe, ""},
		{scanXML("o1", 1, "SCAN", "", "T"), kindEvent, ""},
		{scanXML("o1", 1, "CLICK", "menu", ""), kindEvent, ""},
		{"<xml><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>", kindMessage, ""},
	}
	for _, tc := range cases {
		m, err := pushwire.ParseMessage([]byte(tc.xml))
		if err != nil {
			t.Fatal(err)
		}
		s, kind := classify(m)
		if kind != tc.kind || (s == nil) != (tc.scene == "") || (s != nil && s.scene != tc.scene) {
			t.Errorf("%s: got %s %+v, want %s scene %q", tc.xml, kind, s, tc.kind, tc.scene)
		}
	}
	if _, err := pushwire.ParseMessage([]byte("<notxml><MsgType>event</MsgType></notxml>")); err == nil {
		t.Error("a root other than <xml> was accepted")
	}
}

func TestEventKey(t *testing.T) {
	base := &pushwire.Message{FromUserName: "o1", CreateTime: "100", Event: "SCAN", EventKey: "7"}
	k := eventKey(base)
	if len(k) != 12 || strings.ContainsAny(k, " \n") {
		t.Fatalf("key %q", k)
	}
	for _, m := range []*pushwire.Message{
		{FromUserName: "o2", CreateTime: "100", Event: "SCAN", EventKey: "7"},
		{FromUserName: "o1", CreateTime: "101", Event: "SCAN", EventKey: "7"},
		{FromUserName: "o1", CreateTime: "100", Event: "subscribe", EventKey: "7"},
		{FromUserName: "o1", CreateTime: "100", Event: "SCAN", EventKey: "8"},
		// Field boundaries matter: "o11"+"00" is not "o1"+"100".
		{FromUserName: "o11", CreateTime: "00", Event: "SCAN", EventKey: "7"},
	} {
		if eventKey(m) == k {
			t.Errorf("%+v has the key of %+v", m, base)
		}
	}
	// The ticket and the account's own fields are not part of WeChat's deduplication key.
	if eventKey(&pushwire.Message{FromUserName: "o1", CreateTime: "100", Event: "SCAN", EventKey: "7", Ticket: "x", ToUserName: "gh"}) != k {
		t.Error("key depends on fields outside FromUserName, CreateTime, Event, EventKey")
	}
}

// TestAttributeSharedTicket: while a permanent scene moves from one code to another, its ticket is
// the current ticket of the new holder and a previous ticket of the old one; the scan is the new
// holder's, whichever code the cache lists first. Two codes holding a ticket the same way still
// count for neither.
func TestAttributeSharedTicket(t *testing.T) {
	const appID = "wxshared"
	previousHolder := func(name string) *qrv1alpha1.WeChatQRCode {
		c := scantest.NewCode("ns", name, appID, "T-MOVED-ON-"+name, 8, "")
		c.Status.PreviousTickets = []qrv1alpha1.PreviousTicket{previousTicket(appID, "T-SHARED")}
		return c
	}
	for _, names := range [][2]string{{"a-old", "b-new"}, {"b-old", "a-new"}} {
		codes := indexed(t, previousHolder(names[0]), scantest.NewCode("ns", names[1], appID, "T-SHARED", 7, ""))
		got, why, err := attribute(codes, appID, &scan{ticket: "T-SHARED"})
		if err != nil || got == nil || got.Name != names[1] {
			t.Errorf("%v: attributed to %v (%q, %v), want the current holder %s", names, got, why, err, names[1])
		}
	}

	codes := indexed(t, previousHolder("x"), previousHolder("y"), scantest.NewCode("ns", "z", appID, "T-TWIN", 1, ""), scantest.NewCode("ns", "w", appID, "T-TWIN", 1, ""))
	for _, ticket := range []string{"T-SHARED", "T-TWIN"} {
		if got, why, err := attribute(codes, appID, &scan{ticket: ticket}); err != nil || got != nil || why != resultAmbiguous {
			t.Errorf("%s, held alike by two codes: attributed to %v (%q, %v), want ambiguous", ticket, got, why, err)
		}
	}
	// The current ticket of another account is not this account's.
	if got, _, _ := attribute(codes, "wxother", &scan{ticket: "T-TWIN"}); got != nil {
		t.Errorf("another account's ticket attributed to %s", got.Name)
	}
}

func TestOptionsValidate(t *testing.T) {
	ok := DefaultOptions()
	ok.Namespace, ok.Identity = "operator", "pod-0"
	if err := ok.validate(); err != nil {
		t.Fatal(err)
	}
	if ok.AccountGrace = 0; ok.validate() != nil {
		t.Error("--account-grace=0 refused: it turns the grace off")
	}
	for name, spoil := range map[string]func(*Options){
		"deadline over 5s":    func(o *Options) { o.ReplyDeadline = 5 * time.Second },
		"window > deadline":   func(o *Options) { o.CommitWindow = 4 * time.Second },
		"short dedupe window": func(o *Options) { o.Fold.DedupeWindow = 59 * time.Second },
		"no namespace":        func(o *Options) { o.Namespace = "" },
		"no identity":         func(o *Options) { o.Identity = "" },
		"negative fold":       func(o *Options) { o.Fold.Interval = -time.Second },
		"zero view rate":      func(o *Options) { o.Fold.ViewPatchRate = 0 },
		"negative view rate":  func(o *Options) { o.Fold.ViewPatchRate = -1 },
		"NaN view rate":       func(o *Options) { o.Fold.ViewPatchRate = math.NaN() },
		"infinite view rate":  func(o *Options) { o.Fold.ViewPatchRate = math.Inf(1) },
		"zero body":           func(o *Options) { o.MaxBodyBytes = 0 },
		"zero skew":           func(o *Options) { o.MaxClockSkew = 0 },
		"zero record":         func(o *Options) { o.RecordInterval = 0 },
		"negative window":     func(o *Options) { o.CommitWindow = -time.Millisecond },
		"deadline at window":  func(o *Options) { o.CommitWindow = o.ReplyDeadline },
		"no sink workers":     func(o *Options) { o.Delivery.Workers = 0 },
		"too many workers":    func(o *Options) { o.Delivery.Workers = 1025 },
		"no commit interval":  func(o *Options) { o.Delivery.CommitInterval = 0 },
		"no backlog":          func(o *Options) { o.Delivery.BacklogLimit = 0 },
		"negative grace":      func(o *Options) { o.AccountGrace = -time.Second },
	} {
		o := ok
		spoil(&o)
		if o.validate() == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestUnpersistedIsNotSuccess: when the scan could not be persisted, WeChat gets a 5xx (and
// retries), never "success".
func TestUnpersistedIsNotSuccess(t *testing.T) {
	counter := newStubCounter()
	counter.fail = func(context.Context) error { return errors.New("etcd is on fire") }
	s, _, pushers := unitServer(t, counter)
	before := eventCount(kindQRScan, "failed")
	code, body := pushers[plaintext].build(t, scanXML("o1", 1, "SCAN", "1", "TICKET-P")).serve(s)
	if code != http.StatusServiceUnavailable || body == "success" {
		t.Fatalf("got %d %q, want 503", code, body)
	}
	if eventCount(kindQRScan, "failed") != before+1 {
		t.Error("failure not counted in the metric")
	}
}

// TestDeadline: a write that outlasts the reply deadline is given up at the deadline, not before,
// and answered 503 then.
func TestDeadline(t *testing.T) {
	writing := make(chan context.Context, 1)
	counter := newStubCounter()
	counter.fail = func(ctx context.Context) error {
		writing <- ctx
		<-ctx.Done()
		return context.Cause(ctx)
	}
	s, clk, pushers := unitServer(t, counter)
	req := pushers[safe].build(t, scanXML("o1", 1, "SCAN", "2", "TICKET-S"))
	answered := make(chan int, 1)
	go func() {
		code, _ := req.serve(s)
		answered <- code
	}()
	ctx := <-writing
	clk.Step(s.opts.ReplyDeadline - time.Millisecond)
	if ctx.Err() != nil {
		t.Fatal("the write was given up before the reply deadline")
	}
	clk.Step(time.Millisecond)
	if code := <-answered; code != http.StatusServiceUnavailable {
		t.Fatalf("got %d, want 503", code)
	}
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Errorf("the write ended with %v, want the deadline", context.Cause(ctx))
	}
}

// TestReplyEscaping: the reply text is the user's, but it cannot break out of its CDATA.
func TestReplyEscaping(t *testing.T) {
	s, _, pushers := unitServer(t, newStubCounter())
	p := pushers[safe]
	code, body := p.build(t, scanXML("o-1<x>&amp;", 1, "subscribe", "qrscene_2", "TICKET-S")).serve(s)
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	r := p.openReply(t, body)
	if r.Content.Value != "thanks ]]> <b>&amp;</b>" || r.ToUserName.Value != "o-1<x>&amp;" || r.FromUserName.Value != "gh_account" || r.MsgType.Value != "text" {
		t.Fatalf("reply %+v", r)
	}
}

// FuzzPush sends correctly signed pushes with arbitrary content: whatever the body, the answer
// is 200 or a 4xx refusal, never a 5xx or a panic, a 200 is "success" or a well-formed reply, and
// a code's count moves by at most one.
func FuzzPush(f *testing.F) {
	f.Add([]byte(scanXML("o1", 1, "SCAN", "1", "TICKET-P")), false)
	f.Add([]byte(scanXML("o1", 1, "subscribe", "qrscene_2", "TICKET-S")), true)
	f.Add([]byte(scanXML("o1", 1, "SCAN", "2", "")), true)
	f.Add([]byte(scanXML("o1", 1, "unsubscribe", "-", "")), false)
	f.Add([]byte("<xml><MsgType>text</MsgType></xml>"), false)
	f.Add([]byte("<xml><Encrypt>AAAA</Encrypt></xml>"), false)
	f.Add([]byte("<!DOCTYPE xml [<!ENTITY a \"aaaa\">]><xml><Event>&a;</Event></xml>"), false)
	f.Add([]byte{}, true)
	counter := newStubCounter()
	s, _, pushers := unitServer(f, counter)
	f.Fuzz(func(t *testing.T, body []byte, encrypted bool) {
		p := pushers[plaintext]
		if encrypted {
			p = pushers[safe]
		}
		before := map[string]int{"plain": counter.scansOf("plain"), "safe": counter.scansOf("safe")}
		code, reply := p.build(t, string(body)).serve(s)
		switch {
		case code == http.StatusOK:
			if reply != "success" {
				p.openReply(t, reply)
			}
		case code >= 400 && code < 500:
		default:
			t.Fatalf("status %d for %q", code, body)
		}
		for name, was := range before {
			now := counter.scansOf(name)
			if now != was && (code != http.StatusOK || now != was+1) {
				t.Fatalf("%s scans went from %d to %d (status %d)", name, was, now, code)
			}
		}
	})
}

// FuzzRequest sends arbitrary, unsigned requests: all are refused with a 4xx and count nothing.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "/wechat/wxplain", "signature=x&timestamp=1&nonce=2&echostr=hi", []byte(nil))
	f.Add("POST", "/wechat/wxsafe", "signature=da39a3ee5e6b4b0d3255bfef95601890afd80709&timestamp=9999999999&nonce=", []byte("<xml/>"))
	f.Add("POST", "/wechat/wxplain", "encrypt_type=aes&msg_signature=0", []byte(scanXML("o1", 1, "SCAN", "1", "TICKET-P")))
	f.Add("DELETE", "/wechat/../wechat/wxplain", "", []byte(nil))
	f.Add("POST", "/", "", []byte(nil))
	counter := newStubCounter()
	s, _, _ := unitServer(f, counter)
	f.Fuzz(func(t *testing.T, method, path, query string, body []byte) {
		if !validMethod(method) || !strings.HasPrefix(path, "/") || strings.ContainsAny(path+query, " \t\r\n#") {
			return // not something net/http would hand to a handler
		}
		req, err := http.NewRequest(method, "http://callback"+path+"?"+query, bytes.NewReader(body))
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		if code := rec.Code; code < 400 || code >= 500 {
			t.Fatalf("%s %s?%s: status %d", method, path, query, rec.Code)
		}
		if counter.scansOf("plain") != 0 || counter.scansOf("safe") != 0 {
			t.Fatal("an unsigned request was counted")
		}
	})
}

func validMethod(m string) bool {
	if m == "" {
		return false
	}
	for _, r := range m {
		if r < 'A' || r > 'Z' {
			return false
		}
	}
	return true
}

// BenchmarkPush is the CPU cost of one push up to attribution (signatures, body, decryption,
// XML), per mode; the scan matches no code, so nothing is written.
func BenchmarkPush(b *testing.B) {
	s, _, pushers := unitServer(b, newStubCounter())
	for _, mode := range []string{plaintext, safe} {
		req := pushers[mode].build(b, scanXML("o1", 1, "SCAN", "1", "T-NONE"))
		b.Run(mode, func(b *testing.B) {
			for b.Loop() {
				if code, _ := req.serve(s); code != http.StatusOK {
					b.Fatal(code)
				}
			}
		})
	}
}

// TestReadBody: a declared length is read exactly and must be there; a body over the limit is
// refused as too large whether its length is declared or not.
func TestReadBody(t *testing.T) {
	const limit = 8
	for _, tc := range []struct {
		name     string
		body     string
		declared int64 // -1: not declared (chunked)
		want     string
		tooLarge bool
		fails    bool
	}{
		{name: "declared", body: "<xml/>", declared: 6, want: "<xml/>"},
		{name: "declared at the limit", body: "12345678", declared: 8, want: "12345678"},
		{name: "empty", body: "", declared: 0, want: ""},
		{name: "undeclared", body: "<xml/>", declared: -1, want: "<xml/>"},
		{name: "declared over the limit", body: "123456789", declared: 9, tooLarge: true},
		{name: "undeclared over the limit", body: "123456789", declared: -1, tooLarge: true},
		{name: "shorter than declared", body: "<x", declared: 6, fails: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tc.body))
			r.ContentLength = tc.declared
			got, err := readBody(httptest.NewRecorder(), r, limit)
			_, tooLarge := errors.AsType[*http.MaxBytesError](err)
			switch {
			case tooLarge != tc.tooLarge:
				t.Fatalf("too large %v (%v), want %v", tooLarge, err, tc.tooLarge)
			case (err != nil) != (tc.tooLarge || tc.fails):
				t.Fatalf("error %v, want one: %v", err, tc.tooLarge || tc.fails)
			case err == nil && string(got) != tc.want:
				t.Fatalf("read %q, want %q", got, tc.want)
			}
		})
	}
}
