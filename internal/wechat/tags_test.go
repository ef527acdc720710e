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

package wechat

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// TestTags: create, read, tag and read back a follower's tags over real HTTP, a revoked token
// replaced on the way.
func TestTags(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	before := testutil.ToFloat64(apiCalls.WithLabelValues(endpointTagsCreate, "0"))
	spring, err := f.c.CreateTag(ctx, f.creds, "春季海报")
	if err != nil || spring.Name != "春季海报" || spring.ID < 100 {
		t.Fatalf("CreateTag: %+v, %v", spring, err)
	}
	if got := testutil.ToFloat64(apiCalls.WithLabelValues(endpointTagsCreate, "0")) - before; got != 1 {
		t.Errorf("wechat_api_calls_total{endpoint=tags/create,errcode=0} rose by %v, want 1", got)
	}
	f.srv.InvalidateTokens(testAppID)
	tags, err := f.c.Tags(ctx, f.creds)
	if err != nil {
		t.Fatalf("Tags after a revoked token: %v", err)
	}
	if !slices.Contains(tags, Tag{ID: spring.ID, Name: spring.Name}) || !tags[0].Reserved() || tags[0].Name != wechattest.StarTag.Name {
		t.Errorf("Tags: %+v, want the reserved star tag first and %+v", tags, spring)
	}
	f.srv.AddFollower(testAppID, "o-a")
	f.srv.AddFollower(testAppID, "o-b")
	if err := f.c.BatchTag(ctx, f.creds, spring.ID, []string{"o-a", "o-b"}); err != nil {
		t.Fatalf("BatchTag: %v", err)
	}
	ids, err := f.c.FollowerTagIDs(ctx, f.creds, "o-b")
	if err != nil || !slices.Equal(ids, []int64{spring.ID}) {
		t.Errorf("FollowerTagIDs: %v, %v; want [%d]", ids, err, spring.ID)
	}
	tags, _ = f.c.Tags(ctx, f.creds)
	if i := slices.IndexFunc(tags, func(x Tag) bool { return x.ID == spring.ID }); i < 0 || tags[i].Count != 2 {
		t.Errorf("Tags after tagging two: %+v, want count 2", tags)
	}
}

// TestTagErrors: each documented errcode of the tag APIs arrives with its class and advice, and
// no OpenID in the message.
func TestTagErrors(t *testing.T) {
	f := newFixture(t, nil)
	ctx := t.Context()
	tag, err := f.c.CreateTag(ctx, f.creds, "spring")
	if err != nil {
		t.Fatal(err)
	}
	f.srv.AddFollower(testAppID, "o-mine")
	f.srv.AddAccount("wxother", "other")
	f.srv.AddFollower("wxother", "o-theirs")
	var fifty []string
	for i := range MaxBatchTagging {
		fifty = append(fifty, fmt.Sprintf("o-%d", i))
	}
	for _, tc := range []struct {
		name  string
		call  func() error
		code  int
		class Class
	}{
		{"a name taken", func() error { _, err := f.c.CreateTag(ctx, f.creds, "spring"); return err }, 45157, ClassTerminal},
		{"a tag id unknown", func() error { return f.c.BatchTag(ctx, f.creds, 99999, []string{"o-mine"}) }, 45159, ClassTerminal},
		{"an OpenID nobody has", func() error { return f.c.BatchTag(ctx, f.creds, tag.ID, []string{"o-mine", "o-stranger"}) }, 40003, ClassTerminal},
		{"another AppID's OpenID", func() error { return f.c.BatchTag(ctx, f.creds, tag.ID, []string{"o-theirs"}) }, 49003, ClassTerminal},
		{"getidlist of another AppID's", func() error { _, err := f.c.FollowerTagIDs(ctx, f.creds, "o-theirs"); return err }, 49003, ClassTerminal},
		{"busy", func() error {
			f.srv.FailNext(wechattest.EndpointBatchTagging, 1, wechattest.Fault{Errcode: -1})
			return f.c.BatchTag(ctx, f.creds, tag.ID, []string{"o-mine"})
		}, -1, ClassRetryable},
		{"quota", func() error {
			f.srv.FailNext(wechattest.EndpointTagsGet, 1, wechattest.Fault{Errcode: 45009})
			_, err := f.c.Tags(ctx, f.creds)
			return err
		}, 45009, ClassQuota},
		{"the account's limit", func() error {
			f.srv.FailNext(wechattest.EndpointTagsCreate, 1, wechattest.Fault{Errcode: 45056})
			_, err := f.c.CreateTag(ctx, f.creds, "autumn")
			return err
		}, 45056, ClassTerminal},
		{"a follower's limit", func() error {
			f.srv.FailNext(wechattest.EndpointBatchTagging, 1, wechattest.Fault{Errcode: 45059})
			return f.c.BatchTag(ctx, f.creds, tag.ID, []string{"o-mine"})
		}, 45059, ClassTerminal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			var we *Error
			if !errors.As(err, &we) || we.Code != tc.code || ClassOf(err) != tc.class || !strings.Contains(err.Error(), we.Advice()) || we.Advice() == unknownAdvice {
				t.Errorf("%v: want errcode %d of class %v with its advice", err, tc.code, tc.class)
			}
			if err != nil && strings.Contains(err.Error(), "o-") {
				t.Errorf("an OpenID in the error: %v", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		call func() error
	}{
		{"an empty name", func() error { _, err := f.c.CreateTag(ctx, f.creds, ""); return err }},
		{"11 CJK characters", func() error { _, err := f.c.CreateTag(ctx, f.creds, strings.Repeat("渠", 11)); return err }},
		{"no OpenID", func() error { return f.c.BatchTag(ctx, f.creds, tag.ID, nil) }},
		{"51 OpenIDs", func() error { return f.c.BatchTag(ctx, f.creds, tag.ID, append(fifty, "o-mine")) }},
	} {
		before := f.calls(wechattest.EndpointTagsCreate) + f.calls(wechattest.EndpointBatchTagging)
		if err := tc.call(); !errors.Is(err, ErrInvalidRequest) {
			t.Errorf("%s: %v, want ErrInvalidRequest", tc.name, err)
		}
		if f.calls(wechattest.EndpointTagsCreate)+f.calls(wechattest.EndpointBatchTagging) != before {
			t.Errorf("%s was sent to WeChat", tc.name)
		}
	}
}

// TestWithoutOpenIDs: an errmsg that echoes an OpenID loses it, and keeps its errcode and class.
func TestWithoutOpenIDs(t *testing.T) {
	err := withoutOpenIDs(newError(40003, "invalid openid hint: o-secret-person"), []string{"o-secret-person"})
	if ErrCode(err) != 40003 || ClassOf(err) != ClassTerminal || strings.Contains(err.Error(), "o-secret-person") {
		t.Errorf("got %v", err)
	}
}
