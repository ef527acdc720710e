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

package wechattest

import (
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
)

// The user-tag endpoints (用户标签管理) and the fake's debug view of them.
const (
	EndpointTagsGet      = "/cgi-bin/tags/get"
	EndpointTagsCreate   = "/cgi-bin/tags/create"
	EndpointBatchTagging = "/cgi-bin/tags/members/batchtagging"
	EndpointGetIDList    = "/cgi-bin/tags/getidlist"
	// EndpointFollowerTags is the fake's own, not WeChat's: GET ?appid=&openid= answers the
	// follower's tags as {"tags":[{"id":..,"name":..}]}, so that `make scan` and the benchmarks can
	// show and count them. It is not counted as a call.
	EndpointFollowerTags = "/fake/follower-tags"
)

// WeChat's documented tag limits.
const (
	MaxTags          = 100 // tags an account may create
	MaxTagNameBytes  = 30  // bytes of UTF-8 in a tag name
	MaxBatchOpenIDs  = 50  // OpenIDs per batchtagging call
	MaxTagsPerFollow = 20  // tags one follower carries
	// FirstTagID is the id the fake gives the first tag an account creates; WeChat's examples
	// show ids in the hundreds (127, 134) beside the reserved ones.
	FirstTagID = 100
)

// StarTag is WeChat's reserved tag every account has (id 2, 星标组). Reserved tags are listed
// by tags/get; the fake does not count them against MaxTags (WeChat does not say).
var StarTag = Tag{ID: 2, Name: "星标组"}

// Tag is one of an account's tags.
type Tag struct {
	ID   int64  `json:"id"`
	Name string `json:"name"`
}

// tagState is an account's tags and which follower carries which.
type tagState struct {
	byID   map[int64]*tagRecord
	nextID int64
	// carried: OpenID → tag ids in the order they were given.
	carried map[string][]int64
}

type tagRecord struct {
	Tag
	members int
}

func newTagState() *tagState {
	return &tagState{
		byID:    map[int64]*tagRecord{StarTag.ID: {Tag: StarTag}},
		nextID:  FirstTagID,
		carried: map[string][]int64{},
	}
}

func (t *tagState) byName(name string) *tagRecord {
	for _, r := range t.byID {
		if r.Name == name {
			return r
		}
	}
	return nil
}

func (t *tagState) add(name string) Tag {
	tag := Tag{ID: t.nextID, Name: name}
	t.nextID++
	t.byID[tag.ID] = &tagRecord{Tag: tag}
	return tag
}

// created counts the tags the account made, the reserved one aside.
func (t *tagState) created() int { return len(t.byID) - 1 }

// AddFollower makes openID a follower of appID, as a scan or a message by that user does: from
// then on the tag endpoints accept it for appID (and answer 49003 for any other AppID).
func (s *Server) AddFollower(appID, openID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.followers[openID] = appID
}

// AddTag creates a tag as a human does in WeChat's admin console, without the API's checks, and
// returns it; an existing name returns the existing tag.
func (s *Server) AddTag(appID, name string) Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[appID]
	if t := a.tags.byName(name); t != nil {
		return t.Tag
	}
	return a.tags.add(name)
}

// Tags lists appID's tags by id, the reserved one included.
func (s *Server) Tags(appID string) []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	a := s.accounts[appID]
	if a == nil {
		return nil
	}
	out := make([]Tag, 0, len(a.tags.byID))
	for _, r := range a.tags.byID {
		out = append(out, r.Tag)
	}
	slices.SortFunc(out, func(x, y Tag) int { return int(x.ID - y.ID) })
	return out
}

// FollowerTags lists the tags openID carries at appID, in the order they were given.
func (s *Server) FollowerTags(appID, openID string) []Tag {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.followerTagsLocked(appID, openID)
}

func (s *Server) followerTagsLocked(appID, openID string) []Tag {
	a := s.accounts[appID]
	if a == nil {
		return nil
	}
	var out []Tag
	for _, id := range a.tags.carried[openID] {
		out = append(out, a.tags.byID[id].Tag)
	}
	return out
}

// followerLocked is the errcode for openID as a user of a: 40003 for an OpenID no account
// knows, 49003 for another AppID's.
func (s *Server) followerLocked(a *account, openID string) int {
	switch owner, ok := s.followers[openID]; {
	case !ok:
		return 40003
	case owner != a.appID:
		return 49003
	}
	return 0
}

// authorizedJSON checks the method, the token and then decodes a JSON body into in: the
// account, or the errcode to answer (43002, the token's, 47001).
func (s *Server) authorizedJSON(r *http.Request, method string, in any) (*account, int) {
	if r.Method != method {
		return nil, 43002
	}
	s.mu.Lock()
	a, code := s.checkTokenLocked(r.URL.Query().Get("access_token"))
	s.mu.Unlock()
	if code != 0 || in == nil {
		return a, code
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil || json.Unmarshal(body, in) != nil {
		return nil, 47001
	}
	return a, 0
}

// finish answers code's error, or body when code is 0.
func (s *Server) finish(w http.ResponseWriter, r *http.Request, code int, body any) {
	if code != 0 {
		s.fail(w, r, code)
		return
	}
	s.answer(w, r, 0, body)
}

// serveTagsGet is GET /cgi-bin/tags/get: every tag with its follower count, by id.
func (s *Server) serveTagsGet(w http.ResponseWriter, r *http.Request) {
	a, code := s.authorizedJSON(r, http.MethodGet, nil)
	if code != 0 {
		s.fail(w, r, code)
		return
	}
	type listed struct {
		Tag
		Count int `json:"count"`
	}
	s.mu.Lock()
	out := make([]listed, 0, len(a.tags.byID))
	for _, t := range a.tags.byID {
		out = append(out, listed{t.Tag, t.members})
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(x, y listed) int { return int(x.ID - y.ID) })
	s.answer(w, r, 0, map[string]any{"tags": out})
}

// serveTagsCreate is POST /cgi-bin/tags/create {"tag":{"name":...}}: 45158 for a name over 30
// bytes, 45157 for an empty name or one the account already has (the reserved one included),
// 45056 when the account has created MaxTags.
func (s *Server) serveTagsCreate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Tag *struct {
			Name *string `json:"name"`
		} `json:"tag"`
	}
	a, code := s.authorizedJSON(r, http.MethodPost, &in)
	if code == 0 && (in.Tag == nil || in.Tag.Name == nil) {
		code = 47001
	}
	var t Tag
	if code == 0 {
		s.mu.Lock()
		name := *in.Tag.Name
		switch {
		case len(name) > MaxTagNameBytes:
			code = 45158
		case strings.TrimSpace(name) == "" || a.tags.byName(name) != nil:
			code = 45157
		case a.tags.created() >= MaxTags:
			code = 45056
		default:
			t = a.tags.add(name)
		}
		s.mu.Unlock()
	}
	s.finish(w, r, code, map[string]any{"tag": t})
}

// serveBatchTagging is POST /cgi-bin/tags/members/batchtagging {"openid_list":[...],"tagid":N}.
// The call is all or nothing: 40032 for an empty list or one over MaxBatchOpenIDs, 45159 for a
// tag the account does not have, 40003 or 49003 for the first OpenID that is not the account's
// follower, 45059 for the first follower who would carry more than MaxTagsPerFollow. A follower
// who already carries the tag is left as is.
func (s *Server) serveBatchTagging(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OpenIDs []string `json:"openid_list"`
		TagID   *int64   `json:"tagid"`
	}
	a, code := s.authorizedJSON(r, http.MethodPost, &in)
	if code == 0 && in.TagID == nil {
		code = 47001
	}
	if code == 0 {
		s.mu.Lock()
		code = s.tagLocked(a, in.OpenIDs, *in.TagID)
		s.mu.Unlock()
	}
	s.finish(w, r, code, map[string]any{"errcode": 0, "errmsg": "ok"})
}

func (s *Server) tagLocked(a *account, openIDs []string, tagID int64) int {
	if len(openIDs) == 0 || len(openIDs) > MaxBatchOpenIDs {
		return 40032
	}
	tag := a.tags.byID[tagID]
	if tag == nil {
		return 45159
	}
	var add []string
	for _, id := range openIDs {
		if code := s.followerLocked(a, id); code != 0 {
			return code
		}
		carried := a.tags.carried[id]
		if slices.Contains(carried, tagID) || slices.Contains(add, id) {
			continue
		}
		if len(carried) >= MaxTagsPerFollow {
			return 45059
		}
		add = append(add, id)
	}
	for _, id := range add {
		a.tags.carried[id] = append(a.tags.carried[id], tagID)
		tag.members++
	}
	return 0
}

// serveGetIDList is POST /cgi-bin/tags/getidlist {"openid":...}: the tag ids the follower
// carries.
func (s *Server) serveGetIDList(w http.ResponseWriter, r *http.Request) {
	var in struct {
		OpenID string `json:"openid"`
	}
	a, code := s.authorizedJSON(r, http.MethodPost, &in)
	ids := []int64{}
	if code == 0 {
		s.mu.Lock()
		if code = s.followerLocked(a, in.OpenID); code == 0 {
			ids = append(ids, a.tags.carried[in.OpenID]...)
		}
		s.mu.Unlock()
	}
	s.finish(w, r, code, map[string]any{"tagid_list": ids})
}

// serveFollowerTags is the debug view EndpointFollowerTags.
func (s *Server) serveFollowerTags(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	tags := s.followerTagsLocked(q.Get("appid"), q.Get("openid"))
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"tags": append([]Tag{}, tags...)})
}
