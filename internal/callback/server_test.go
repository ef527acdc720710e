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
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// TestModes counts a new follower's scan and a follower's scan in each of WeChat's three modes,
// and checks that the count is in the API server by the time WeChat gets its answer.
func TestModes(t *testing.T) {
	f := newFixture(t)
	plain := f.account("plain", "wxplain01", "tok-plain", "", "")
	safeP := f.account("safe", "wxsafe01", "tok-safe", testKey, "")
	compat := f.account("compat", "wxcompat01", "tok-compat", testOtherKey, "")
	compat.mode = compatible
	r := f.replica(Options{})
	for _, p := range []*pusher{plain, safeP, compat} {
		t.Run(p.mode, func(t *testing.T) {
			ticket := "gQH47joAAAAAAAAAASxodHRw/" + p.mode + "+=="
			code := f.Code(scantest.NewCode("", "code-"+p.mode, p.appID, ticket, 7, ""))
			decoy := f.Code(scantest.NewCode("", "decoy-"+p.mode, p.appID, "DECOY-"+p.mode, 8, ""))
			waitIndexed(t, []*replica{r}, p.appID, ticket)
			waitIndexed(t, []*replica{r}, p.appID, "DECOY-"+p.mode)
			start := time.Now()

			mustSend(t, p.build(t, scanXML("o-new", 1700000000, "subscribe", "qrscene_7", ticket)), r)
			f.wantCounts(code, "1", "1")

			req := p.build(t, scanXML("o-follower", 1700000001, "SCAN", "7", ticket))
			if p.mode == compatible {
				// Compatible mode repeats the fields in plaintext, unauthenticated: a forged
				// plaintext ticket must not redirect the count.
				req.body = []byte(strings.Replace(string(req.body), "<Ticket><![CDATA["+ticket, "<Ticket><![CDATA[DECOY-"+p.mode, 1))
			}
			status, body := req.send(t, r.url)
			wantOK(t, status, body, "success")
			f.wantCounts(code, "2", "1")
			f.wantCounts(decoy, "", "")

			var got qrv1alpha1.WeChatQRCode
			if err := f.C.Get(f.Ctx, client.ObjectKeyFromObject(code), &got); err != nil {
				t.Fatal(err)
			}
			last, err := time.Parse(time.RFC3339, got.Annotations[qrv1alpha1.AnnotationLastScanTime])
			if err != nil || last.Before(start.Truncate(time.Second)) || last.After(time.Now()) {
				t.Errorf("last scan time %q (%v), want between %v and now", got.Annotations[qrv1alpha1.AnnotationLastScanTime], err, start)
			}
		})
	}
}

// mustSend posts over HTTP and fails on anything but 200 "success".
func mustSend(t *testing.T, p *push, r *replica) {
	t.Helper()
	status, body := p.send(t, r.url)
	wantOK(t, status, body, "success")
}

// sendRetrying posts like WeChat: a 503 is tried again, up to three tries.
func sendRetrying(t *testing.T, p *push, r *replica) {
	t.Helper()
	status, body := p.send(t, r.url)
	for try := 1; try < 3 && status == http.StatusServiceUnavailable; try++ {
		status, body = p.send(t, r.url)
	}
	wantOK(t, status, body, "success")
}

// TestVerification is the GET WeChat sends when the server URL is configured.
func TestVerification(t *testing.T) {
	s, _, pushers := unitServer(t, newStubCounter())
	get := pushers[safe].build(t, "")
	get.method, get.body = http.MethodGet, nil
	get.query.Set("echostr", "8203487562034")
	status, body := get.serve(s)
	wantOK(t, status, body, "8203487562034")

	get.query.Set("signature", strings.Repeat("0", 40))
	if status, body := get.serve(s); status != http.StatusForbidden || strings.Contains(body, "8203487562034") {
		t.Fatalf("forged verification: %d %q", status, body)
	}
}

// TestRefusals sends hostile and broken requests: each is refused with the expected 4xx and
// reason, nothing is counted, and nothing secret is logged.
func TestRefusals(t *testing.T) {
	counter := newStubCounter()
	s, clk, pushers := unitServer(t, counter)
	plain, safeP := pushers[plaintext], pushers[safe]

	plainScan := func() *push { return plain.build(t, scanXML("o1", 1, "SCAN", "1", "TICKET-P")) }
	safeScan := func() *push { return safeP.build(t, scanXML("o1", 1, "SCAN", "1", "TICKET-S")) }
	encryptFor := func(key, appID string, msg string) string {
		c, err := wxcrypto.NewCipher(key, appID)
		if err != nil {
			t.Fatal(err)
		}
		enc, err := c.Encrypt([]byte(msg))
		if err != nil {
			t.Fatal(err)
		}
		return enc
	}
	withEncrypt := func(enc string) *push {
		p := safeScan()
		p.body = []byte("<xml><ToUserName>gh</ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>")
		safeP.resign(p, enc)
		return p
	}
	ago := func(d time.Duration) *push {
		p := plainScan()
		p.query.Set("timestamp", strconv.FormatInt(clk.Now().Add(-d).Unix(), 10))
		plain.resign(p, "")
		return p
	}
	var signatures []string
	cases := []struct {
		name   string
		req    *push
		status int
		reason string
	}{
		{"forged signature", func() *push {
			p := plainScan()
			p.query.Set("signature", "5d197aaffba7e9b25a30732f161a50dee96bd5fa")
			return p
		}(), 403, "bad_signature"},
		{"nonce changed after signing", func() *push { p := plainScan(); p.query.Set("nonce", "other"); return p }(), 403, "bad_signature"},
		{"another account's token", func() *push {
			p := plainScan()
			p.path = PathPrefix + safeP.appID
			return p
		}(), 403, "bad_signature"},
		{"upper-case signature", func() *push {
			p := plainScan()
			p.query.Set("signature", strings.ToUpper(p.query.Get("signature")))
			return p
		}(), 403, "bad_signature"},
		{"stale timestamp", ago(6 * time.Minute), 403, "stale_timestamp"},
		{"future timestamp", ago(-6 * time.Minute), 403, "stale_timestamp"},
		{"timestamp not a number", func() *push {
			p := plainScan()
			p.query.Set("timestamp", "-1")
			plain.resign(p, "")
			return p
		}(), 400, "bad_timestamp"},
		{"no nonce", func() *push { p := plainScan(); p.query.Del("nonce"); return p }(), 400, "missing_parameter"},
		{"oversized body", func() *push {
			p := plainScan()
			p.body = []byte(scanXML(strings.Repeat("o", 70<<10), 1, "SCAN", "1", "TICKET-P"))
			return p
		}(), 413, "body_too_large"},
		{"garbage body", func() *push { p := plainScan(); p.body = []byte("\x00\xff{not xml"); return p }(), 400, "malformed_body"},
		{"unknown account", func() *push { p := plainScan(); p.path = PathPrefix + "wxnobody"; return p }(), 404, "unknown_account"},
		{"path outside the prefix", func() *push { p := plainScan(); p.path = "/" + plain.appID; return p }(), 404, "unknown_account"},
		{"PUT", func() *push { p := plainScan(); p.method = http.MethodPut; return p }(), 405, "method"},
		{"plaintext push to a safe-mode account", signedFor(plainScan(), safeP), 403, "encryption_required"},
		{"encrypted push to a plaintext account", signedFor(safeScan(), plain), 403, "no_encoding_aes_key"},
		{"unknown encrypt_type", func() *push { p := safeScan(); p.query.Set("encrypt_type", "des"); return p }(), 400, "bad_encrypt_type"},
		{"no msg_signature", func() *push { p := safeScan(); p.query.Del("msg_signature"); return p }(), 400, "missing_parameter"},
		{"tampered ciphertext", func() *push {
			p := safeScan()
			p.body = []byte(strings.Replace(string(p.body), "CDATA[", "CDATA[A", 2))
			return p
		}(), 403, "bad_msg_signature"},
		{"signed, another key", withEncrypt(encryptFor(testOtherKey, safeP.appID, scanXML("o1", 1, "SCAN", "1", "TICKET-S"))), 400, "decrypt_failed"},
		{"signed, another appid", withEncrypt(encryptFor(testKey, "wxsomeoneelse", scanXML("o1", 1, "SCAN", "1", "TICKET-S"))), 400, "appid_mismatch"},
		{"signed, not base64", withEncrypt("!!!!"), 400, "decrypt_failed"},
		{"signed, decrypts to garbage", withEncrypt(encryptFor(testKey, safeP.appID, "not xml")), 400, "malformed_body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			signatures = append(signatures, tc.req.query.Get("signature"), tc.req.query.Get("msg_signature"))
			before := refusalCount(tc.reason)
			status, body := tc.req.serve(s)
			if status != tc.status {
				t.Fatalf("status %d %q, want %d", status, body, tc.status)
			}
			if got := refusalCount(tc.reason); got != before+1 {
				t.Errorf("refusals{reason=%s} went from %v to %v", tc.reason, before, got)
			}
		})
	}
	if counter.scansOf("plain") != 0 || counter.scansOf("safe") != 0 {
		t.Error("a refused push was counted")
	}

	if !logs.Contains("push refused") {
		t.Fatal("refusals are not logged")
	}
	for _, secret := range append([]string{plain.token, safeP.token, testKey, testOtherKey}, signatures...) {
		if secret != "" && logs.Contains(secret) {
			t.Errorf("the log contains a secret or signature (%d characters)", len(secret))
		}
	}
}

// signedFor sends p to another account's path, signed with that account's token.
func signedFor(p *push, to *pusher) *push {
	p.path = PathPrefix + to.appID
	to.resign(p, "")
	return p
}

// TestRetries: WeChat's retries of an event are not counted again, whichever replica they reach,
// including when the replica that counted the original died before answering.
func TestRetries(t *testing.T) {
	f := newFixture(t)
	p, rs, code := f.threeReplicasOneCode("wxretry01", "T-RETRY", 5, "")

	// A retry carries the same event; WeChat signs it anew.
	first := scanXML("o-1", 1700000100, "subscribe", "qrscene_5", "T-RETRY")
	dupBefore := eventCount(kindQRSubscribe, "duplicate")
	mustSend(t, p.build(t, first), rs[0])
	mustSend(t, p.build(t, first), rs[0]) // this replica remembers it
	mustSend(t, p.build(t, first), rs[1]) // another one appends it again; the fold drops it
	mustSend(t, p.build(t, first), rs[2])
	f.wantCounts(code, "1", "1")
	if got := eventCount(kindQRSubscribe, "duplicate") - dupBefore; got != 1 {
		t.Errorf("%v retries answered as known duplicates, want 1 (the replica that took the original)", got)
	}

	// A replica persists a scan and dies before answering: WeChat's retry reaches a survivor.
	doomed := f.replica(Options{})
	waitIndexed(t, []*replica{doomed}, p.appID, "T-RETRY")
	second := scanXML("o-2", 1700000200, "SCAN", "5", "T-RETRY")
	m, _ := pushwire.ParseMessage([]byte(second))
	sc, _ := classify(m)
	if _, err := doomed.count(context.Background(), doomed.keyring.lookup(p.appID), code, sc, m, time.Now(), time.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	doomed.stop()
	f.wantCounts(code, "2", "1")
	mustSend(t, p.build(t, second), rs[1])
	f.wantCounts(code, "2", "1")

	// Retries racing the original across replicas.
	third := scanXML("o-3", 1700000300, "SCAN", "5", "T-RETRY")
	var wg sync.WaitGroup
	for i := range 9 {
		wg.Go(func() { mustSend(t, p.build(t, third), rs[i%3]) })
	}
	wg.Wait()
	f.wantCounts(code, "3", "1")
}

// TestPreviousKey: during a key rotation pushes encrypted with the previous key still count,
// and the reply is encrypted with the key the push came with.
func TestPreviousKey(t *testing.T) {
	f := newFixture(t)
	current := f.account("a", "wxrotate01", "tok-rotate", testOtherKey, testKey)
	previous := &pusher{appID: current.appID, token: current.token, mode: safe, cipher: f.cipher(testKey, current.appID)}
	stranger := &pusher{appID: current.appID, token: current.token, mode: safe, cipher: f.cipher(strings.Repeat("k", 43), current.appID)}
	r := f.replica(Options{})
	code := f.Code(scantest.NewCode("", "rotating", current.appID, "T-ROT", 3, "欢迎"))
	waitIndexed(t, []*replica{r}, current.appID, "T-ROT")

	for i, p := range []*pusher{previous, current} {
		status, body := p.build(t, scanXML("o-"+strconv.Itoa(i), 1700000000, "SCAN", "3", "T-ROT")).send(t, r.url)
		wantOK(t, status, body, "")
		if reply := p.openReply(t, body); reply.Content.Value != "欢迎" {
			t.Fatalf("reply %+v", reply)
		}
	}
	f.wantCounts(code, "2", "0")
	if status, _ := stranger.build(t, scanXML("o-x", 1700000000, "SCAN", "3", "T-ROT")).send(t, r.url); status != http.StatusBadRequest {
		t.Fatalf("a third key: status %d", status)
	}
	f.wantCounts(code, "2", "0")
}

// TestPassiveReply: a code's reply reaches the scanner in plaintext and in safe mode, for a retry
// too; a code without reply answers "success".
func TestPassiveReply(t *testing.T) {
	f := newFixture(t)
	plain := f.account("plain", "wxreply01", "tok-reply-p", "", "")
	safeP := f.account("safe", "wxreply02", "tok-reply-s", testKey, "")
	r := f.replica(Options{})
	const text = "感谢您的关注! 场景值: spring ]]> & <sale>"
	for _, p := range []*pusher{plain, safeP} {
		f.Code(scantest.NewCode("", "reply-"+p.mode, p.appID, "T-REPLY-"+p.mode, 9, text))
		waitIndexed(t, []*replica{r}, p.appID, "T-REPLY-"+p.mode)
		msg := scanXML("o-scanner", 1700000000, "subscribe", "qrscene_9", "T-REPLY-"+p.mode)
		for range 2 { // the original and a retry
			status, body := p.build(t, msg).send(t, r.url)
			wantOK(t, status, body, "")
			reply := p.openReply(t, body)
			if reply.Content.Value != text || reply.ToUserName.Value != "o-scanner" || reply.FromUserName.Value != "gh_account" || reply.MsgType.Value != "text" {
				t.Fatalf("%s reply %+v", p.mode, reply)
			}
			if reply.CreateTime < time.Now().Add(-time.Minute).Unix() {
				t.Errorf("reply CreateTime %d", reply.CreateTime)
			}
		}
	}
}

// TestNotCounted: pushes that are not scans of a known code are acknowledged and only metered;
// the reply of a code that was not scanned is not sent.
func TestNotCounted(t *testing.T) {
	counter := newStubCounter()
	s, _, pushers := unitServer(t, counter)
	cases := []struct {
		msg, kind, result string
	}{
		{scanXML("o1", 1, "unsubscribe", "-", ""), kindUnsubscribe, "acknowledged"},
		{scanXML("o1", 2, "subscribe", "", ""), kindSubscribe, "acknowledged"},
		{"<xml><ToUserName>gh</ToUserName><FromUserName>o1</FromUserName><CreateTime>3</CreateTime><MsgType>text</MsgType><Content>hi</Content><MsgId>1</MsgId></xml>", kindMessage, "acknowledged"},
		{scanXML("o1", 4, "SCAN", "2", "T-UNKNOWN"), kindQRScan, resultUnmatched},
		// Another account's ticket: attribution is per account.
		{scanXML("o1", 5, "SCAN", "1", "TICKET-P"), kindQRScan, resultUnmatched},
		{scanXML("o1", 6, "subscribe", "qrscene_999", ""), kindQRSubscribe, resultUnmatched},
	}
	for _, tc := range cases {
		before := eventCount(tc.kind, tc.result)
		status, body := pushers[safe].build(t, tc.msg).serve(s)
		wantOK(t, status, body, "success")
		if got := eventCount(tc.kind, tc.result); got != before+1 {
			t.Errorf("%s: events{%s,%s} went from %v to %v", tc.msg, tc.kind, tc.result, before, got)
		}
	}
	if counter.scansOf("plain") != 0 || counter.scansOf("safe") != 0 {
		t.Error("a push that is no scan of a known code was counted")
	}
}

// TestAttribution: previous tickets still count, also after the code moved to another account, a
// push without Ticket is attributed by scene, and a scene shared by two codes of one account
// counts for neither.
func TestAttribution(t *testing.T) {
	const appID = "wxplain"
	renewed := scantest.NewCode("ns", "renewed", appID, "T-NEW", 11, "")
	renewed.Status.PreviousTickets = []qrv1alpha1.PreviousTicket{previousTicket(appID, "T-OLD")}
	moved := scantest.NewCode("ns", "moved", "wxelsewhere", "T-ELSEWHERE", 13, "")
	moved.Status.PreviousTickets = []qrv1alpha1.PreviousTicket{previousTicket(appID, "T-MOVED")}
	strScene := scantest.NewCode("ns", "str-scene", appID, "T-STR", 0, "")
	strScene.Spec.Scene = qrv1alpha1.Scene{Str: ptr.To("spring-sale")}
	strScene.Status.IssuedFor.Scene = strScene.Spec.Scene
	counter := newStubCounter()
	s, _, pushers := unitServer(t, counter, renewed, moved, strScene,
		scantest.NewCode("ns", "twin-a", appID, "T-TWIN-A", 12, ""), scantest.NewCode("ns", "twin-b", appID, "T-TWIN-B", 12, ""))
	send := func(msg string) {
		t.Helper()
		status, body := pushers[plaintext].build(t, msg).serve(s)
		wantOK(t, status, body, "success")
	}

	send(scanXML("o1", 1, "SCAN", "11", "T-OLD"))
	send(scanXML("o2", 1, "SCAN", "11", ""))
	send(scanXML("o1", 1, "SCAN", "13", "T-MOVED"))
	send(scanXML("o1", 1, "subscribe", "qrscene_spring-sale", ""))
	for name, want := range map[string]int{"renewed": 2, "moved": 1, "str-scene": 1} {
		if got := counter.scansOf(name); got != want {
			t.Errorf("%s: %d scans, want %d", name, got, want)
		}
	}
	before := eventCount(kindQRScan, resultAmbiguous)
	send(scanXML("o1", 1, "SCAN", "12", ""))
	if eventCount(kindQRScan, resultAmbiguous) != before+1 || counter.scansOf("twin-a")+counter.scansOf("twin-b") != 0 {
		t.Error("an ambiguous scene was not reported as such")
	}
}

// TestHotCodeThreeReplicas: three replicas count one hot code under concurrent scans, with
// WeChat-style retries sprinkled in and 503s retried like WeChat does, to the exact total.
func TestHotCodeThreeReplicas(t *testing.T) {
	f := newFixture(t)
	p, rs, code := f.threeReplicasOneCode("wxhot01", "T-HOT", 1, "thanks")

	const scans, workers = 600, 24
	var subscribes int
	for i := range scans {
		if i%3 == 0 {
			subscribes++
		}
	}
	appendsBefore := okAppends(t)
	var next, retried, unavailable atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= scans {
					return
				}
				msg := scanXML("o-"+strconv.Itoa(i), 1700000000+int64(i%7), "SCAN", "1", "T-HOT")
				if i%3 == 0 {
					msg = scanXML("o-"+strconv.Itoa(i), 1700000000+int64(i%7), "subscribe", "qrscene_1", "T-HOT")
				}
				// Every fifth scan is pushed again to another replica, as WeChat does when an
				// answer is late; a 503 is retried the same way, up to WeChat's three tries.
				sends := 1 + boolInt(i%5 == 0)
				for try := 0; try < 3 && sends > 0; try++ {
					status, body := p.build(t, msg).send(t, rs[(i+w+try)%3].url)
					switch {
					case status == http.StatusOK && strings.HasPrefix(body, "<xml>"):
						sends--
						if try > 0 {
							retried.Add(1)
						}
					case status == http.StatusServiceUnavailable:
						unavailable.Add(1)
					default:
						t.Errorf("scan %d: %d %q", i, status, body)
						return
					}
				}
				if sends > 0 {
					t.Errorf("scan %d: not acknowledged in three tries", i)
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	f.wantCounts(code, strconv.Itoa(scans), strconv.Itoa(subscribes))
	writes := okAppends(t) - appendsBefore
	t.Logf("%d scans (+%d retries, %d answered 503) through 3 replicas in %v (%.0f/s): %.0f ledger writes",
		scans, retried.Load(), unavailable.Load(), elapsed.Round(time.Millisecond), float64(scans)/elapsed.Seconds(), writes)
	if writes >= scans {
		t.Errorf("%.0f ledger writes for %d scans: no group commit", writes, scans)
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestListeners runs NewManager's own listeners: pushes, probes and metrics on three ports.
func TestListeners(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxlisten01", "tok-listen", "", "")
	cfg := Config{Options: DefaultOptions(), BindAddress: freeAddr(t), HealthProbeBindAddress: freeAddr(t), MetricsBindAddress: freeAddr(t)}
	cfg.Namespace, cfg.Identity = f.NS, "listener"
	mgr, _, err := NewManager(env.Get(t).Config, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer func() { _ = resp.Body.Close() }()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	scantest.WaitFor(t, "/readyz", func() bool {
		status, _ := get("http://" + cfg.HealthProbeBindAddress + "/readyz")
		return status == http.StatusOK
	})
	mustSend(t, p.build(t, scanXML("o1", 1, "unsubscribe", "-", "")), &replica{url: "http://" + cfg.BindAddress})
	if status, _ := get("http://" + cfg.BindAddress + "/metrics"); status != http.StatusNotFound {
		t.Errorf("the push port serves /metrics: %d", status)
	}
	status, body := get("http://" + cfg.MetricsBindAddress + "/metrics")
	if status != http.StatusOK || !strings.Contains(body, "wechat_qrcode_operator_callback_events_total") {
		t.Errorf("metrics: %d, callback metrics missing", status)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// okAppends is how many ledger writes this process made.
func okAppends(t *testing.T) float64 {
	return scantest.Sample(t, metricnames.Namespace+"_callback_ledger_appends_total", map[string]string{"result": "ok"})
}
