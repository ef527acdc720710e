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

package harness

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// WeChat is the fake WeChat of internal/wechattest mounted behind a recorder. The fake counts
// calls; the recorder adds what the fake does not keep: when each qrcode/create arrived (the
// renewal histogram is built from these, at the fake, not from the manager's claims), for which
// scene, which stable_token calls forced a refresh (a force-refresh loop is the classic way
// an operator locks every other user of an AppID out), and the batchtagging calls by tag with
// when each follower got each tag (the tagging lag is measured there, not from the manager's
// claims).
type WeChat struct {
	*wechattest.Server
	// URL is the recorder's address: give it to the manager, not Server.URL.
	URL string

	srv *httptest.Server

	mu             sync.Mutex
	creates        []time.Time
	byScene        map[string]int
	stableTokens   int
	forceRefreshes int
	hook           func(endpoint string, nth int)
	// tagCalls counts batchtagging calls by tag id, whatever their answer; tagged is when each
	// follower first got each tag: the answer (errcode 0) of the first call that gave it;
	// retagged counts the followers a call answered errcode 0 named who had the tag already;
	// tagErrcodes the calls answered another errcode, by errcode.
	tagCalls    map[int64]int
	tagged      map[FollowerTag]time.Time
	retagged    int
	tagErrcodes map[int]int
}

// FollowerTag is a follower (OpenID) and a tag id.
type FollowerTag struct {
	OpenID string
	TagID  int64
}

// NewWeChat starts a fake WeChat with opts and one account.
func NewWeChat(opts wechattest.Options, acct credentials.Account) (*WeChat, error) {
	fake, err := wechattest.NewServer(opts)
	if err != nil {
		return nil, err
	}
	fake.AddAccount(acct.AppID, acct.AppSecret)
	w := &WeChat{Server: fake, byScene: map[string]int{}, tagCalls: map[int64]int{}, tagged: map[FollowerTag]time.Time{}, tagErrcodes: map[int]int{}}
	w.srv = httptest.NewServer(http.HandlerFunc(w.serve))
	w.URL = w.srv.URL
	return w, nil
}

// Close stops the recorder and the fake.
func (w *WeChat) Close() {
	// The fake first: it releases requests it holds hanging, which the recorder's Close waits for.
	w.Server.Close()
	w.srv.Close()
}

// OnCall sets a function called before the fake serves each request, with the endpoint and how
// many requests to it arrived so far, this one included. Fault tests use it to act every nth call.
func (w *WeChat) OnCall(hook func(endpoint string, nth int)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.hook = hook
}

func (w *WeChat) serve(rw http.ResponseWriter, r *http.Request) {
	now := time.Now()
	var body struct {
		ForceRefresh bool   `json:"force_refresh"`
		ActionName   string `json:"action_name"`
		ActionInfo   struct {
			Scene struct {
				ID  *int64 `json:"scene_id"`
				Str string `json:"scene_str"`
			} `json:"scene"`
		} `json:"action_info"`
		OpenIDs []string `json:"openid_list"`
		TagID   int64    `json:"tagid"`
	}
	tagging := r.URL.Path == wechattest.EndpointBatchTagging
	if r.Body != nil && (r.URL.Path == wechattest.EndpointStableToken || r.URL.Path == wechattest.EndpointCreate || tagging) {
		b, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		r.Body = io.NopCloser(bytes.NewReader(b))
		_ = json.Unmarshal(b, &body)
	}
	w.mu.Lock()
	nth := 0
	switch r.URL.Path {
	case wechattest.EndpointCreate:
		w.creates = append(w.creates, now)
		nth = len(w.creates)
		scene := body.ActionInfo.Scene.Str
		if id := body.ActionInfo.Scene.ID; id != nil {
			scene = strconv.FormatInt(*id, 10)
		}
		w.byScene[body.ActionName+":"+scene]++
	case wechattest.EndpointStableToken:
		w.stableTokens++
		nth = w.stableTokens
		if body.ForceRefresh {
			w.forceRefreshes++
		}
	case wechattest.EndpointBatchTagging:
		w.tagCalls[body.TagID]++
	}
	hook := w.hook
	w.mu.Unlock()
	if hook != nil {
		hook(r.URL.Path, nth)
	}
	if !tagging {
		w.Server.ServeHTTP(rw, r)
		return
	}
	tee := &teeWriter{ResponseWriter: rw}
	w.Server.ServeHTTP(tee, r)
	var answer struct {
		Errcode int `json:"errcode"`
	}
	if json.Unmarshal(tee.body.Bytes(), &answer) != nil {
		return
	}
	answered := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if answer.Errcode != 0 {
		w.tagErrcodes[answer.Errcode]++
		return
	}
	for _, id := range body.OpenIDs {
		if k := (FollowerTag{id, body.TagID}); w.tagged[k].IsZero() {
			w.tagged[k] = answered
		} else {
			w.retagged++
		}
	}
}

// teeWriter keeps a copy of the answer it writes.
type teeWriter struct {
	http.ResponseWriter
	body bytes.Buffer
}

func (t *teeWriter) Write(b []byte) (int, error) {
	t.body.Write(b)
	return t.ResponseWriter.Write(b)
}

// Tagging is what the batchtagging calls did so far.
type Tagging struct {
	// Calls counts them by tag id, whatever their answer; Errcodes those answered another errcode
	// than 0, by errcode.
	Calls    map[int64]int
	Errcodes map[int]int
	// Tagged is how many (follower, tag) pairs they gave; Retagged how many times one answered
	// errcode 0 named a follower who carried the tag already: tagged twice for nothing.
	Tagged, Retagged int
}

// Tagging is what the batchtagging calls did so far, all of it at one moment.
func (w *WeChat) Tagging() Tagging {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Tagging{Calls: maps.Clone(w.tagCalls), Errcodes: maps.Clone(w.tagErrcodes), Tagged: len(w.tagged), Retagged: w.retagged}
}

// TaggedAt is when a batchtagging call first gave openID the tag tagID (its answer), and
// whether one did.
func (w *WeChat) TaggedAt(openID string, tagID int64) (time.Time, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	at, ok := w.tagged[FollowerTag{openID, tagID}]
	return at, ok
}

// CreateTimes returns the arrival time of every qrcode/create call so far, in arrival order.
func (w *WeChat) CreateTimes() []time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]time.Time(nil), w.creates...)
}

// CreatesOf counts the qrcode/create calls for action ("QR_LIMIT_SCENE", ...) and scene (the id
// in decimal, or the string), whatever their answer: the fake itself answers a permanent scene
// issued before with the same ticket, so only the calls say whether the manager asked twice.
func (w *WeChat) CreatesOf(action, scene string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.byScene[action+":"+scene]
}

// ForceRefreshes counts the stable_token calls that asked for force_refresh.
func (w *WeChat) ForceRefreshes() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.forceRefreshes
}
