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
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

func (e *env) post(endpoint, token, body string) map[string]any {
	return e.do(http.MethodPost, endpoint, url.Values{"access_token": {token}}, body)
}

func createTagBody(name string) string {
	b, _ := json.Marshal(map[string]any{"tag": map[string]string{"name": name}})
	return string(b)
}

func tagBody(tagID int64, openIDs ...string) string {
	b, _ := json.Marshal(map[string]any{"openid_list": openIDs, "tagid": tagID})
	return string(b)
}

// TestTagsCreate: names by bytes, duplicates (the reserved one included), the account's limit,
// and tags/get listing them with the reserved tag.
func TestTagsCreate(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	created := e.post(wechattest.EndpointTagsCreate, tok, createTagBody("广东"))
	wantCode(t, "create 广东", created, 0)
	if tag, _ := created["tag"].(map[string]any); tag["id"] != float64(wechattest.FirstTagID) || tag["name"] != "广东" {
		t.Errorf("create answered %v, want id %d name 广东", created, wechattest.FirstTagID)
	}
	for _, c := range []struct {
		what, body string
		want       int
	}{
		{"10 CJK characters are 30 bytes", createTagBody(strings.Repeat("渠", 10)), 0},
		{"11 CJK characters are 33 bytes", createTagBody(strings.Repeat("渠", 11)), 45158},
		{"31 ASCII bytes", createTagBody(strings.Repeat("a", 31)), 45158},
		{"the same name again", createTagBody("广东"), 45157},
		{"the reserved tag's name", createTagBody(wechattest.StarTag.Name), 45157},
		{"an empty name", createTagBody(""), 45157},
		{"no tag", `{}`, 47001},
		{"not JSON", `tag`, 47001},
	} {
		wantCode(t, c.what, e.post(wechattest.EndpointTagsCreate, tok, c.body), c.want)
	}
	wantCode(t, "a bad token", e.post(wechattest.EndpointTagsCreate, strings.Repeat("A", 136), createTagBody("x")), 40001)
	wantCode(t, "GET", e.do(http.MethodGet, wechattest.EndpointTagsCreate, url.Values{"access_token": {tok}}, ""), 43002)

	for i := 3; i <= wechattest.MaxTags; i++ {
		wantCode(t, fmt.Sprintf("tag %d", i), e.post(wechattest.EndpointTagsCreate, tok, createTagBody(fmt.Sprintf("t%d", i))), 0)
	}
	wantCode(t, "tag 101", e.post(wechattest.EndpointTagsCreate, tok, createTagBody("one too many")), 45056)
	listed := e.do(http.MethodGet, wechattest.EndpointTagsGet, url.Values{"access_token": {tok}}, "")
	tags, _ := listed["tags"].([]any)
	if len(tags) != wechattest.MaxTags+1 {
		t.Fatalf("tags/get lists %d tags, want %d and the reserved one", len(tags), wechattest.MaxTags)
	}
	first, _ := tags[0].(map[string]any)
	if first["id"] != float64(wechattest.StarTag.ID) || first["name"] != wechattest.StarTag.Name || first["count"] != float64(0) {
		t.Errorf("first tag %v, want the reserved %v with count 0", first, wechattest.StarTag)
	}
	if got := e.srv.CallsWithErrcode(wechattest.EndpointTagsCreate, 0); got != wechattest.MaxTags {
		t.Errorf("successful creates counted: %d, want %d", got, wechattest.MaxTags)
	}
}

// TestBatchTagging: WeChat's limits and errcodes, all or nothing, idempotent, per AppID, and
// getidlist and the debug view showing the result.
func TestBatchTagging(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	e.srv.AddAccount("wxother", "other-secret")
	tok := e.token(e.stable(false))
	tagID := func(name string) int64 {
		m := e.post(wechattest.EndpointTagsCreate, tok, createTagBody(name))
		tag, _ := m["tag"].(map[string]any)
		id, _ := tag["id"].(float64)
		return int64(id)
	}
	spring := tagID("spring")
	var fifty []string
	for i := range 51 {
		id := fmt.Sprintf("o-%02d", i)
		e.srv.AddFollower(appID, id)
		fifty = append(fifty, id)
	}
	e.srv.AddFollower("wxother", "o-foreign")
	for _, c := range []struct {
		what, body string
		want       int
	}{
		{"no OpenID", tagBody(spring), 40032},
		{"51 OpenIDs", tagBody(spring, fifty...), 40032},
		{"an unknown tag", tagBody(99999, "o-00"), 45159},
		{"an unknown OpenID among known ones", tagBody(spring, "o-00", "o-nobody"), 40003},
		{"another AppID's follower", tagBody(spring, "o-00", "o-foreign"), 49003},
		{"no tagid", `{"openid_list":["o-00"]}`, 47001},
	} {
		wantCode(t, c.what, e.post(wechattest.EndpointBatchTagging, tok, c.body), c.want)
	}
	if got := e.srv.FollowerTags(appID, "o-00"); len(got) != 0 {
		t.Errorf("a refused call tagged o-00 with %v: calls are all or nothing", got)
	}
	wantCode(t, "50 OpenIDs", e.post(wechattest.EndpointBatchTagging, tok, tagBody(spring, fifty[:50]...)), 0)
	wantCode(t, "again, and a duplicate in the list", e.post(wechattest.EndpointBatchTagging, tok, tagBody(spring, "o-00", "o-00")), 0)
	listed := e.do(http.MethodGet, wechattest.EndpointTagsGet, url.Values{"access_token": {tok}}, "")
	if tags, _ := listed["tags"].([]any); len(tags) != 2 || tags[1].(map[string]any)["count"] != float64(50) {
		t.Errorf("tags/get: %v, want spring with count 50", listed)
	}

	// The per-follower limit: o-00 carries spring and 19 more, then one more fails.
	for i := range wechattest.MaxTagsPerFollow - 1 {
		wantCode(t, "tag", e.post(wechattest.EndpointBatchTagging, tok, tagBody(tagID(fmt.Sprintf("t%d", i)), "o-00")), 0)
	}
	extra := tagID("one too many")
	wantCode(t, "a 21st tag", e.post(wechattest.EndpointBatchTagging, tok, tagBody(extra, "o-01", "o-00")), 45059)
	if got := e.srv.FollowerTags(appID, "o-01"); len(got) != 1 {
		t.Errorf("o-01 carries %v after a refused call, want spring alone", got)
	}

	ids := e.post(wechattest.EndpointGetIDList, tok, `{"openid":"o-01"}`)
	if got, _ := ids["tagid_list"].([]any); len(got) != 1 || got[0] != float64(spring) {
		t.Errorf("getidlist o-01: %v, want [%d]", ids, spring)
	}
	wantCode(t, "getidlist of an unknown OpenID", e.post(wechattest.EndpointGetIDList, tok, `{"openid":"o-nobody"}`), 40003)
	wantCode(t, "getidlist of a foreign OpenID", e.post(wechattest.EndpointGetIDList, tok, `{"openid":"o-foreign"}`), 49003)

	resp, err := http.Get(e.srv.URL + wechattest.EndpointFollowerTags + "?" + url.Values{"appid": {appID}, "openid": {"o-01"}}.Encode())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var view struct{ Tags []wechattest.Tag }
	if err := json.NewDecoder(resp.Body).Decode(&view); err != nil || len(view.Tags) != 1 || view.Tags[0] != (wechattest.Tag{ID: spring, Name: "spring"}) {
		t.Errorf("debug view: %+v (%v), want spring", view, err)
	}
	if e.srv.Calls(wechattest.EndpointFollowerTags) != 0 {
		t.Error("the debug view counts as a WeChat call")
	}
}

// TestTagsConcurrent: concurrent creates of one name make one tag; the others answer 45157.
func TestTagsConcurrent(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() { e.post(wechattest.EndpointTagsCreate, tok, createTagBody("race")) })
	}
	wg.Wait()
	if ok, taken := e.srv.CallsWithErrcode(wechattest.EndpointTagsCreate, 0), e.srv.CallsWithErrcode(wechattest.EndpointTagsCreate, 45157); ok != 1 || taken != 15 {
		t.Errorf("16 concurrent creates: %d made it, %d answered 45157; want 1 and 15", ok, taken)
	}
}

// TestPushMakesFollowers: a pushed scan makes its user a follower of the pushing account.
func TestPushMakesFollowers(t *testing.T) {
	e := newEnv(t, wechattest.Options{})
	tok := e.token(e.stable(false))
	wantCode(t, "getidlist before any push", e.post(wechattest.EndpointGetIDList, tok, `{"openid":"o-pushed"}`), 40003)
	_, url := newCallback(t, success)
	if _, err := e.pusher(url, wechattest.PushSafe).Push(t.Context(), wechattest.Event{FromUserName: "o-pushed", Event: "subscribe"}); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "getidlist of a pushed user", e.post(wechattest.EndpointGetIDList, tok, `{"openid":"o-pushed"}`), 0)
}
