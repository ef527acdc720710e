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
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// fakeWeChat starts the fake WeChat with one account.
func fakeWeChat(t *testing.T, appID string) *wechattest.Server {
	t.Helper()
	fw, err := wechattest.NewServer(wechattest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fw.Close)
	fw.AddAccount(appID, "secret-"+appID)
	return fw
}

// issue creates a permanent code at the fake WeChat through its public API, as the manager does,
// and returns its ticket.
func issue(t *testing.T, fw *wechattest.Server, appID string, sceneID int) string {
	t.Helper()
	call := func(path string, in any, out any) {
		body, _ := json.Marshal(in)
		resp, err := http.Post(fw.URL+path, "application/json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	var tok struct {
		AccessToken string `json:"access_token"`
		Errcode     int
	}
	call("/cgi-bin/stable_token", map[string]any{"grant_type": "client_credential", "appid": appID, "secret": "secret-" + appID}, &tok)
	var created struct {
		Ticket  string
		Errcode int
	}
	call("/cgi-bin/qrcode/create?access_token="+tok.AccessToken,
		map[string]any{"action_name": "QR_LIMIT_SCENE", "action_info": map[string]any{"scene": map[string]any{"scene_id": sceneID}}}, &created)
	if created.Ticket == "" {
		t.Fatalf("the fake WeChat issued no ticket (errcodes %d, %d)", tok.Errcode, created.Errcode)
	}
	return created.Ticket
}

// TestPushSimulator drives the server with the fake WeChat's push simulator in each mode: URL
// verification, a new follower's scan and a follower's scan of a code the fake issued, with the
// passive reply opened and checked by the simulator as WeChat would.
func TestPushSimulator(t *testing.T) {
	f := newFixture(t)
	modes := []struct {
		mode wechattest.PushMode
		key  string
	}{{wechattest.PushPlaintext, ""}, {wechattest.PushCompatible, testKey}, {wechattest.PushSafe, testOtherKey}}
	for _, m := range modes {
		t.Run(string(m.mode), func(t *testing.T) {
			p := f.account(string(m.mode), "wxsim"+string(m.mode), "tok-sim-"+string(m.mode), m.key, "")
			fw := fakeWeChat(t, p.appID)
			r := f.replica(Options{})
			ticket := issue(t, fw, p.appID, 77)
			code := f.Code(scantest.NewCode("", "sim-"+string(m.mode), p.appID, ticket, 77, "谢谢扫码"))
			waitIndexed(t, []*replica{r}, p.appID, ticket)
			sim := &wechattest.Pusher{URL: r.url + PathPrefix + p.appID, Token: p.token, EncodingAESKey: m.key,
				AppID: p.appID, AccountID: "gh_0123456789ab", Mode: m.mode, Server: fw}
			ctx := context.Background()
			if ok, err := sim.Verify(ctx); !ok || err != nil {
				t.Fatalf("URL verification: %v %v", ok, err)
			}
			for i, follower := range []bool{false, true} {
				res, err := sim.Scan(ctx, ticket, "o-sim-"+string(rune('a'+i)), follower)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(res.Reply, "谢谢扫码") || res.Encrypted != (m.mode != wechattest.PushPlaintext) || res.Tries != 1 {
					t.Fatalf("reply %+v", res)
				}
			}
			f.wantCounts(code, "2", "1")
		})
	}
}

// TestPushSimulatorGreetings: a code of the API server greets a new follower with a link card and
// a follower with an image; the fake WeChat's pusher opens each as WeChat would and reads it.
func TestPushSimulatorGreetings(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxsimgreet", "tok-sim-greet", testKey, "")
	fw := fakeWeChat(t, p.appID)
	r := f.replica(Options{})
	ticket := issue(t, fw, p.appID, 78)
	c := scantest.NewCode("", "greetings", p.appID, ticket, 78, "")
	c.Spec.Reply = &qrv1alpha1.Reply{
		NewFollowers: &qrv1alpha1.ReplyMessage{Link: &qrv1alpha1.ReplyLink{Title: "新人礼包", Description: "关注即领 20 元券",
			URL: "https://shop.example.com/welcome?from=qr&x=1", PicURL: "https://shop.example.com/w.png"}},
		Followers: &qrv1alpha1.ReplyMessage{Image: &qrv1alpha1.ReplyImage{MediaID: "HIFbTu-MDPCEBXvcSL9Ph5lRXa6HbO4ksApqsD4VUag"}},
	}
	code := f.Code(c)
	waitIndexed(t, []*replica{r}, p.appID, ticket)
	sim := &wechattest.Pusher{URL: r.url + PathPrefix + p.appID, Token: p.token, EncodingAESKey: testKey,
		AppID: p.appID, AccountID: "gh_0123456789ab", Mode: wechattest.PushSafe, Server: fw}
	got := map[bool]wechattest.Message{}
	for follower, want := range map[bool]string{
		false: `link "新人礼包" → https://shop.example.com/welcome?from=qr&x=1`,
		true:  "image media_id=HIFbTu-MDPCEBXvcSL9Ph5lRXa6HbO4ksApqsD4VUag",
	} {
		res, err := sim.Scan(context.Background(), ticket, "o-greet-"+strconv.FormatBool(follower), follower)
		if err != nil || !res.Encrypted || res.Message.String() != want {
			t.Fatalf("follower %v: %q (%v), want %q", follower, res.Message.String(), err, want)
		}
		got[follower] = res.Message
	}
	if card := got[false].Articles[0]; card.Description != "关注即领 20 元券" || card.PicURL != "https://shop.example.com/w.png" {
		t.Fatalf("the card %+v", card)
	}
	f.wantCounts(code, "2", "1")
}

// TestPushSimulatorRetry: the first answer reaches WeChat too late, after the count was
// persisted; the simulator retries the very same push and the scan is still counted once.
func TestPushSimulatorRetry(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxsimretry", "tok-sim-retry", testKey, "")
	fw := fakeWeChat(t, p.appID)
	r := f.replica(Options{})
	ticket := issue(t, fw, p.appID, 5)
	code := f.Code(scantest.NewCode("", "late", p.appID, ticket, 5, ""))
	waitIndexed(t, []*replica{r}, p.appID, ticket)

	const timeout = 300 * time.Millisecond
	var calls atomic.Int32
	late := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rec := httptest.NewRecorder()
		r.ServeHTTP(rec, req)
		if calls.Add(1) == 1 {
			<-req.Context().Done() // WeChat has stopped waiting and closed the connection
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(late.Close)
	sim := &wechattest.Pusher{URL: late.URL + PathPrefix + p.appID, Token: p.token, EncodingAESKey: testKey,
		AppID: p.appID, AccountID: "gh_0123456789ab", Mode: wechattest.PushSafe, Server: fw, Timeout: timeout}
	res, err := sim.Scan(context.Background(), ticket, "o-late", false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Tries != 2 || !res.Acknowledged() {
		t.Fatalf("result %+v, want acknowledged on the second try", res)
	}
	f.wantCounts(code, "1", "1")
}
