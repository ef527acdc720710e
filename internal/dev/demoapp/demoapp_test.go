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

package demoapp_test

import (
	"context"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/demoapp"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

const (
	token     = "demo-token"
	appID     = "wxdemo0000000001"
	accountID = "gh_demoaccount"
)

var (
	key      = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))[:43]
	otherKey = base64.StdEncoding.EncodeToString([]byte("fedcba9876543210fedcba9876543210"))[:43]
)

// lines collects what the application and the sink print.
type lines struct {
	mu sync.Mutex
	l  []string
}

func (l *lines) Printf(format string, v ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.l = append(l.l, fmt.Sprintf(format, v...))
}

func (l *lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.l)
}

// serveApp serves the application of an account with key ("" in plaintext mode) over HTTP.
func serveApp(t *testing.T, key string) (*lines, string) {
	t.Helper()
	out := &lines{}
	app, err := demoapp.NewApp(token, appID, key, clock.RealClock{}, out)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(app)
	t.Cleanup(srv.Close)
	return out, srv.URL + "/wx"
}

// wechat pushes to url as WeChat does, and checks the replies as WeChat does.
func wechat(url string, mode wechattest.PushMode, key string) *wechattest.Pusher {
	return &wechattest.Pusher{URL: url, Token: token, EncodingAESKey: key, AppID: appID, AccountID: accountID,
		Mode: mode, Tries: 1, Timeout: 5 * time.Second}
}

func content(t *testing.T, res wechattest.PushResult) string {
	t.Helper()
	var r struct{ Content string }
	if err := xml.Unmarshal([]byte(res.Reply), &r); err != nil {
		t.Fatalf("reply %q: %v", res.Reply, err)
	}
	return r.Content
}

// TestAppModes: in each of WeChat's three modes the application verifies the URL, echoes a text
// message, greets a follower who followed by scanning, and acknowledges an unfollow; WeChat
// accepts its replies (signed and encrypted with the account's key unless in plaintext mode).
func TestAppModes(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		mode wechattest.PushMode
		key  string
	}{{wechattest.PushPlaintext, ""}, {wechattest.PushCompatible, key}, {wechattest.PushSafe, key}} {
		t.Run(string(tc.mode), func(t *testing.T) {
			out, url := serveApp(t, tc.key)
			p := wechat(url, tc.mode, tc.key)
			if ok, err := p.Verify(ctx); !ok || err != nil {
				t.Fatalf("URL verification: %v %v", ok, err)
			}
			res, err := p.Text(ctx, "o-user", "你好 ]]> <&>")
			if err != nil || res.Encrypted != (tc.mode != wechattest.PushPlaintext) {
				t.Fatalf("text: %+v %v", res, err)
			}
			if got := content(t, res); got != "you said: 你好 ]]> <&>" {
				t.Errorf("text reply %q", got)
			}
			res, err = p.Push(ctx, wechattest.Event{FromUserName: "o-new", Event: "subscribe", EventKey: "qrscene_42", Ticket: "T"})
			if err != nil {
				t.Fatal(err)
			}
			if got := content(t, res); got != "welcome! you followed by scanning scene 42" {
				t.Errorf("subscribe reply %q", got)
			}
			res, err = p.Push(ctx, wechattest.Event{FromUserName: "o-new", Event: "unsubscribe"})
			if err != nil || res.Body != "success" {
				t.Errorf("unsubscribe: %+v %v", res, err)
			}
			want := []string{`"你好 ]]> <&>" from o-user: replied "you said: 你好 ]]> <&>"`,
				`subscribe "qrscene_42" from o-new: replied "welcome! you followed by scanning scene 42"`,
				`unsubscribe "" from o-new: success`}
			if got := out.all(); !slices.Equal(got, want) {
				t.Errorf("printed %q, want %q", got, want)
			}
		})
	}
}

// TestAppRefuses: the application refuses what a WeChat SDK refuses, and says why.
func TestAppRefuses(t *testing.T) {
	ctx := context.Background()
	_, safeApp := serveApp(t, key)
	out, plainApp := serveApp(t, "")
	forger := wechat(plainApp, wechattest.PushPlaintext, "")
	forger.Token = "not-the-token"
	otherKeyed := wechat(safeApp, wechattest.PushSafe, otherKey)
	for _, tc := range []struct {
		name   string
		p      *wechattest.Pusher
		status int
	}{
		{"bad signature", forger, http.StatusForbidden},
		{"plaintext push to an account in safe mode", wechat(safeApp, wechattest.PushPlaintext, ""), http.StatusForbidden},
		{"encrypted push to an account in plaintext mode", wechat(plainApp, wechattest.PushSafe, key), http.StatusBadRequest},
		{"another key", otherKeyed, http.StatusBadRequest},
	} {
		res, err := tc.p.Text(ctx, "o-user", "hi")
		if err == nil || res.Status != tc.status {
			t.Errorf("%s: %d %v, want %d", tc.name, res.Status, err, tc.status)
		}
	}
	if got := out.all(); len(got) != 2 || got[0] != "refused a push: bad signature" {
		t.Errorf("the plaintext application printed %q", got)
	}
}

// headers adds to every request what the operator tells the application of a scan.
type headers struct{ h http.Header }

func (a headers) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	for k, v := range a.h {
		r.Header[k] = v
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestAppNamesTheCode: behind the operator, a scan's reply names the code the operator says it is
// of.
func TestAppNamesTheCode(t *testing.T) {
	_, url := serveApp(t, key)
	p := wechat(url, wechattest.PushSafe, key)
	p.HTTPClient = &http.Client{Transport: headers{http.Header{
		forward.HeaderCodeNamespace: {"shop"}, forward.HeaderCodeName: {"login-7f3a9c"}, forward.HeaderScan: {"new"},
	}}}
	res, err := p.Push(context.Background(), wechattest.Event{FromUserName: "o-user", Event: "SCAN", EventKey: "7", Ticket: "T"})
	if err != nil {
		t.Fatal(err)
	}
	if got := content(t, res); got != "you scanned scene 7 (code shop/login-7f3a9c, new scan)" {
		t.Errorf("reply %q", got)
	}
}

// TestSink: a scan event sent as the operator sends it (CloudEvents SDK, binary mode) is printed
// as one line and acknowledged; another type of event is refused with a 400 and not printed.
func TestSink(t *testing.T) {
	out := &lines{}
	srv := httptest.NewServer(demoapp.NewSink(out))
	t.Cleanup(srv.Close)
	c, err := cloudevents.NewClientHTTP()
	if err != nil {
		t.Fatal(err)
	}
	ctx := cloudevents.ContextWithTarget(context.Background(), srv.URL)

	e := cloudevents.NewEvent()
	e.SetID("uMNcS1bz2qWL")
	e.SetType(delivery.EventType)
	e.SetSource("/wechat/wxdemo/namespaces/shop/wechatqrcodes/login-7f3a9c")
	if err := e.SetData(cloudevents.ApplicationJSON, delivery.ScanEvent{Namespace: "shop", Name: "login-7f3a9c",
		Scene: "login-7f3a9c", Ticket: "T", OpenID: "o6_bmjrPTlm6", Event: "SCAN"}); err != nil {
		t.Fatal(err)
	}
	if res := c.Send(ctx, e); !cloudevents.IsACK(res) {
		t.Fatalf("scan event: %v", res)
	}
	other := e.Clone()
	other.SetType("io.example.other")
	res := c.Send(ctx, other)
	var hr *cehttp.Result
	if cloudevents.IsACK(res) || !cloudevents.ResultAs(res, &hr) || hr.StatusCode != http.StatusBadRequest {
		t.Fatalf("another event: %v", res)
	}
	want := "scan of shop/login-7f3a9c: scene=login-7f3a9c openID=o6_bmjrPTlm6 event=SCAN id=uMNcS1bz2qWL"
	if got := out.all(); len(got) != 1 || got[0] != want || strings.Contains(got[0], "io.example") {
		t.Errorf("printed %q, want %q", got, want)
	}
}

// TestSinkBatch: a batch as the operator sends it (the SDK's batched content mode) is printed
// event by event and acknowledged once; a batch holding anything but scan events is refused
// whole with a 400, none of it printed.
func TestSinkBatch(t *testing.T) {
	out := &lines{}
	srv := httptest.NewServer(demoapp.NewSink(out))
	t.Cleanup(srv.Close)
	var events []cloudevents.Event
	var want []string
	for i := range 3 {
		e := cloudevents.NewEvent()
		e.SetID(fmt.Sprint("id-", i))
		e.SetType(delivery.EventType)
		e.SetSource("/wechat/wxdemo/namespaces/shop/wechatqrcodes/c")
		if err := e.SetData(cloudevents.ApplicationJSON, delivery.ScanEvent{Namespace: "shop", Name: "c", Scene: "7", OpenID: fmt.Sprint("o-", i), Event: "subscribe"}); err != nil {
			t.Fatal(err)
		}
		events = append(events, e)
		want = append(want, fmt.Sprintf("scan of shop/c: scene=7 openID=o-%d event=subscribe id=id-%d", i, i))
	}
	post := func(events []cloudevents.Event) int {
		t.Helper()
		req, err := cehttp.NewHTTPRequestFromEvents(context.Background(), srv.URL, events)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if status := post(events); status != http.StatusAccepted {
		t.Fatalf("a batch of scans answered %d", status)
	}
	other := events[0].Clone()
	other.SetType("io.example.other")
	if status := post([]cloudevents.Event{events[1], other}); status != http.StatusBadRequest {
		t.Fatalf("a batch with another event answered %d, want 400", status)
	}
	if got := out.all(); !slices.Equal(got, want) {
		t.Errorf("printed %q, want %q", got, want)
	}
}

// abandon sends the head of a binary-mode scan event, or of a batch, and the first bytes of its
// body, then closes the connection: a sender that gave up mid-body.
func abandon(t *testing.T, addr string, batch bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Error(err)
		return
	}
	defer func() { _ = conn.Close() }()
	head := fmt.Sprintf("Ce-Specversion: 1.0\r\nCe-Id: abandoned\r\nCe-Type: %s\r\nCe-Source: /wechat/wxdemo\r\n"+
		"Content-Type: application/json\r\nContent-Length: 200\r\n\r\n{\"namespace\":\"sh", delivery.EventType)
	if batch {
		head = "Content-Type: application/cloudevents-batch+json\r\nContent-Length: 400\r\n\r\n[{\"specversion\":\"1.0\",\"id\":\"aban"
	}
	if _, err := fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\n%s", addr, head); err != nil {
		t.Error(err)
	}
}

// TestSinkSurvivesAbandonedRequests: senders that give up mid-body, among concurrent deliveries,
// leave no delivery hanging. The SDK's receive handler hands each request's event to whichever
// request's callback takes it from one shared channel, and a callback whose request ended first
// leaves the next event there unread: a delivery then hung for good (cloudevents/sdk-go#1224), in
// three runs of this test in four.
func TestSinkSurvivesAbandonedRequests(t *testing.T) {
	out := &lines{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Not httptest's server, whose Close would wait for a hung request for good.
	srv := &http.Server{Handler: demoapp.NewSink(out), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	addr, url := l.Addr().String(), "http://"+l.Addr().String()
	c, err := cloudevents.NewClientHTTP()
	if err != nil {
		t.Fatal(err)
	}
	const senders, each = 8, 100
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for i := range each {
				abandon(t, addr, i%2 == 1)
				e := cloudevents.NewEvent()
				e.SetID(fmt.Sprintf("%d-%d", s, i))
				e.SetType(delivery.EventType)
				e.SetSource("/wechat/wxdemo/namespaces/shop/wechatqrcodes/login-7f3a9c")
				if err := e.SetData(cloudevents.ApplicationJSON, delivery.ScanEvent{Namespace: "shop", Name: "login-7f3a9c", OpenID: "o-after", Event: "SCAN"}); err != nil {
					t.Error(err)
					return
				}
				// The bound is a failure detector, not a synchronisation: a healthy sink answers
				// in milliseconds, a hung delivery never.
				ctx, cancel := context.WithTimeout(cloudevents.ContextWithTarget(context.Background(), url), 5*time.Second)
				res := c.Send(ctx, e)
				cancel()
				if !cloudevents.IsACK(res) {
					t.Errorf("delivery %s among abandoned requests: %v", e.ID(), res)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := out.all(); len(got) != senders*each {
		t.Errorf("printed %d lines, want one per delivery, %d", len(got), senders*each)
	}
}
