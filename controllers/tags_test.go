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

package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/tagging"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

func taggedCode(ns, name string, tags ...string) v1alpha1.WeChatQRCode {
	c := v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, t := range tags {
		c.Spec.Tags = append(c.Spec.Tags, v1alpha1.TagName(t))
	}
	return c
}

func TestWantedTags(t *testing.T) {
	codes := []v1alpha1.WeChatQRCode{
		taggedCode("b", "z", "spring", "广东"),
		taggedCode("a", "y", "spring"),
		taggedCode("b", "a", "spring"),
		taggedCode("a", "x", "spring", "booth"),
		taggedCode("a", "w"),
	}
	got := wantedTags(codes)
	want := []tagWant{
		{name: "booth", codes: 1, codeNames: []string{"a/x"}},
		{name: "spring", codes: 4, codeNames: []string{"a/x", "a/y", "b/a"}},
		{name: "广东", codes: 1, codeNames: []string{"b/z"}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("wantedTags:\n got %+v\nwant %+v", got, want)
	}
	if got := wantedTags(nil); len(got) != 0 {
		t.Errorf("no codes: %+v", got)
	}
}

func names(n int, prefix string) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

func wants(names ...string) []tagWant {
	var out []tagWant
	for _, n := range names {
		out = append(out, tagWant{name: n, codes: 1})
	}
	return out
}

func snapshot(readAt time.Time, tags ...string) tagSnapshot {
	s := tagSnapshot{ids: map[string]int64{"星标组": 2}, readAt: readAt}
	for i, n := range tags {
		s.ids[n] = int64(100 + i)
		s.used++
	}
	return s
}

func TestTagsToCreateAndReadDue(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name            string
		want            []tagWant
		snap            tagSnapshot
		read            bool
		create, blocked []string
	}{
		{"never read", wants("a"), tagSnapshot{}, true, []string{"a"}, nil},
		{"all known, read recently", wants("a", "b"), snapshot(now.Add(-time.Minute), "a", "b"), false, nil, nil},
		{"all known, read an hour ago", wants("a"), snapshot(now.Add(-tagsRefresh), "a"), true, nil, nil},
		{"one missing", wants("a", "b", "c"), snapshot(now, "b"), true, []string{"a", "c"}, nil},
		{"the reserved tag is known", wants("星标组"), snapshot(now), false, nil, nil},
		{"room for one", wants("x", "y"), snapshot(now, names(99, "t")...), true, []string{"x"}, []string{"y"}},
		{"no room", wants("x"), snapshot(now, names(100, "t")...), true, nil, []string{"x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tagsReadDue(tc.want, tc.snap, now); got != tc.read {
				t.Errorf("tagsReadDue = %v, want %v", got, tc.read)
			}
			create, blocked := tagsToCreate(tc.want, tc.snap)
			if !slices.Equal(create, tc.create) || !slices.Equal(blocked, tc.blocked) {
				t.Errorf("tagsToCreate = %v, %v; want %v, %v", create, blocked, tc.create, tc.blocked)
			}
		})
	}
}

func TestReportTags(t *testing.T) {
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.FixedZone("CST", 8*3600))
	busy := fmt.Errorf("tags/create: %w", &wechat.Error{Code: -1, Message: "system error", Class: wechat.ClassRetryable})
	quota := &wechat.Error{Code: 45009, Message: "reach max api daily quota limit", Class: wechat.ClassQuota}
	for _, tc := range []struct {
		name     string
		prior    *metav1.Condition
		want     []tagWant
		snap     tagSnapshot
		out      tagOutcome
		ready    bool
		status   metav1.ConditionStatus
		reason   string
		message  []string
		events   []string
		again    time.Duration
		noStatus bool
	}{
		{name: "no tags named", want: nil, ready: true, noStatus: true},
		{name: "not ready", want: wants("a"), ready: false, status: metav1.ConditionUnknown, reason: v1alpha1.ReasonTagsPending, noStatus: true},
		{name: "created", want: wants("a", "b"), snap: snapshot(now, "a", "b"), ready: true,
			out:    tagOutcome{created: []wechat.Tag{{ID: 100, Name: "a"}, {ID: 101, Name: "b"}}},
			status: metav1.ConditionTrue, reason: v1alpha1.ReasonTagsCreated, message: []string{"The 2 tags", "2 of its 100 tags"},
			events: []string{`Normal/TagCreated: Created at WeChat the tags "a" (id 100), "b" (id 101)`}, again: tagsRefresh},
		{name: "limit by count", want: wants("x", "y"), snap: snapshot(now, names(100, "t")...), ready: true,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonTagLimitReached,
			message: []string{"100 of WeChat's 100 tags", "2 more", `"x", "y"`, "Users > Tags", "never deletes"},
			events:  []string{"Warning/TagLimitReached"}, again: tagsRefresh},
		{name: "limit already reported: no second Event", want: wants("x"), snap: snapshot(now, names(100, "t")...), ready: true,
			prior:  &metav1.Condition{Type: v1alpha1.ConditionTagsReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTagLimitReached},
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonTagLimitReached, again: tagsRefresh},
		{name: "45056 from WeChat", want: wants("x"), snap: snapshot(now, "a"), out: tagOutcome{limit: true}, ready: true,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonTagLimitReached, events: []string{"Warning/TagLimitReached"}, again: tagsRefresh},
		{name: "busy", want: wants("a", "b"), snap: snapshot(now, "a"), out: tagOutcome{err: busy}, ready: true,
			status: metav1.ConditionFalse, reason: "WeChatErrorMinus1", message: []string{`Missing at WeChat: "b"`, "errcode -1"}, again: tagsTransientRetry},
		{name: "quota", want: wants("a"), snap: snapshot(now), out: tagOutcome{err: quota}, ready: true,
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonQuotaExhausted, again: 14 * time.Hour},
		{name: "a read failing after a restart keeps the last report", want: wants("a"), out: tagOutcome{err: busy}, ready: true,
			status: metav1.ConditionFalse, reason: "WeChatErrorMinus1", again: tagsTransientRetry, noStatus: true},
		{name: "a name WeChat refuses", want: wants("a", "bad"), snap: snapshot(now, "a"), ready: true,
			status: metav1.ConditionFalse, reason: "WeChatError45157", message: []string{`"bad"`, "rename them"}, again: tagsTerminalRetry},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &v1alpha1.WeChatAccountStatus{}
			if tc.prior != nil {
				st.Conditions = []metav1.Condition{*tc.prior}
			}
			events, again := reportTags(st, 3, tc.want, tc.snap, tc.out, tc.ready, now)
			c := st.Condition(v1alpha1.ConditionTagsReady)
			switch {
			case len(tc.want) == 0 && c != nil:
				t.Errorf("a condition without tags: %+v", c)
			case len(tc.want) > 0 && (c == nil || c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != 3 || !containsAll(c.Message, tc.message...)):
				t.Errorf("TagsReady %+v, want %s/%s with %q", c, tc.status, tc.reason, tc.message)
			}
			if again != tc.again {
				t.Errorf("again %v, want %v", again, tc.again)
			}
			var got []string
			for _, e := range events {
				got = append(got, e.Type+"/"+e.Reason+": "+e.Note)
			}
			if len(got) != len(tc.events) {
				t.Errorf("events %q, want %q", got, tc.events)
			}
			for i := range min(len(got), len(tc.events)) {
				if !strings.HasPrefix(got[i], tc.events[i]) {
					t.Errorf("event %q, want %q", got[i], tc.events[i])
				}
			}
			if (st.Tags == nil) != tc.noStatus {
				t.Errorf("status.tags %+v", st.Tags)
			}
		})
	}
}

// TestTagsStatusIsBounded: an account whose codes name many names lists the first 200, each with
// at most three code names.
func TestTagsStatusIsBounded(t *testing.T) {
	var codes, sharing []v1alpha1.WeChatQRCode
	for i := range 10 {
		codes = append(codes, taggedCode("ns", fmt.Sprint("c", i), names(25, fmt.Sprint("n", i, "-"))...))
		sharing = append(sharing, taggedCode("ns", fmt.Sprint("d", i), "shared"))
	}
	st := tagsStatus(wantedTags(append(codes, sharing...)), snapshot(time.Now(), "shared"))
	if st.Wanted != 251 || len(st.Tags) != v1alpha1.MaxStatusTags {
		t.Errorf("wanted %d, listed %d; want 251 and %d", st.Wanted, len(st.Tags), v1alpha1.MaxStatusTags)
	}
	shared := tagsStatus(wantedTags(sharing), snapshot(time.Now(), "shared")).Tags
	if len(shared) != 1 || shared[0].Codes != 10 || shared[0].ID != 100 || !slices.Equal(shared[0].CodeNames, []string{"ns/d0", "ns/d1", "ns/d2"}) {
		t.Errorf("shared: %+v, want 10 codes, the first three named", shared)
	}
}

func TestTaggingCondition(t *testing.T) {
	now := time.Now()
	acct := func(cond *metav1.Condition, tags ...v1alpha1.TagUsage) v1alpha1.Account {
		a := &v1alpha1.WeChatAccount{Status: v1alpha1.WeChatAccountStatus{Tags: &v1alpha1.AccountTags{Tags: tags}}}
		if cond != nil {
			a.Status.Conditions = []metav1.Condition{*cond}
		}
		return a
	}
	limit := &metav1.Condition{Type: v1alpha1.ConditionTagsReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTagLimitReached}
	busy := &metav1.Condition{Type: v1alpha1.ConditionTagsReady, Status: metav1.ConditionFalse, Reason: "WeChatErrorMinus1", Message: "WeChat is busy"}
	code := taggedCode("ns", "c", "spring", "广东")
	code.Generation = 4
	for _, tc := range []struct {
		name    string
		code    v1alpha1.WeChatQRCode
		acct    v1alpha1.Account
		status  metav1.ConditionStatus
		reason  string
		message []string
	}{
		{"no tags", taggedCode("ns", "c"), acct(nil), "", "", nil},
		{"no account", code, nil, metav1.ConditionUnknown, v1alpha1.ReasonTagsPending, []string{`"spring", "广东"`}},
		{"all exist", code, acct(nil, v1alpha1.TagUsage{Name: "spring", ID: 100}, v1alpha1.TagUsage{Name: "广东", ID: 101}),
			metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, []string{`"spring" (id 100), "广东" (id 101)`, "AllScanners"}},
		{"one pending", code, acct(nil, v1alpha1.TagUsage{Name: "spring", ID: 100}), metav1.ConditionUnknown, v1alpha1.ReasonTagsPending, []string{`"广东"`}},
		{"at the limit", code, acct(limit, v1alpha1.TagUsage{Name: "spring", ID: 100}, v1alpha1.TagUsage{Name: "广东"}),
			metav1.ConditionFalse, v1alpha1.ReasonTagLimitReached, []string{`not tagged with "广东"`, "limit of 100 tags"}},
		{"the account failing", code, acct(busy), metav1.ConditionFalse, v1alpha1.ReasonTagsNotCreated, []string{"WeChat is busy"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, after := taggingCondition(&tc.code, tc.acct, now)
			if after != 0 {
				t.Errorf("look again after %s, want never: no batchtagging error", after)
			}
			if tc.status == "" {
				if c != nil {
					t.Errorf("got %+v, want none", c)
				}
				return
			}
			if c == nil || c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != tc.code.Generation || !containsAll(c.Message, tc.message...) {
				t.Errorf("got %+v, want %s/%s with %q", c, tc.status, tc.reason, tc.message)
			}
		})
	}
}

// batchTaggingError is status.tagging with the tagger's text of a batchtagging call WeChat
// answered errcode, ago before now.
func batchTaggingError(errcode int, class wechat.Class, now time.Time, ago time.Duration) *v1alpha1.TaggingStatus {
	err := &tagging.CallError{Err: &wechat.Error{Code: errcode, Message: "errmsg of WeChat", Class: class}}
	return &v1alpha1.TaggingStatus{Since: metav1.NewTime(now.Add(-time.Hour)), Tagged: 10, LastError: err.Error(), LastErrorTime: &metav1.Time{Time: now.Add(-ago)}}
}

// TestTaggingConditionBatchTaggingErrors: the code's tags all exist, and its status.tagging
// reports what its scans' batchtagging calls met: the errors a human must end turn Tagging False
// while they are current (refreshed within taggingErrorCurrentFor), with the errcode and what to
// do; those that pass by themselves, and those that are over, leave it True.
func TestTaggingConditionBatchTaggingErrors(t *testing.T) {
	now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	acct := &v1alpha1.WeChatAccount{Status: v1alpha1.WeChatAccountStatus{Tags: &v1alpha1.AccountTags{Tags: []v1alpha1.TagUsage{{Name: "spring", ID: 100}}}}}
	missing := &tagging.MissingTagsError{Names: []string{"spring"}}
	for _, tc := range []struct {
		name    string
		status  *v1alpha1.TaggingStatus
		want    metav1.ConditionStatus
		reason  string
		message []string
		after   time.Duration
	}{
		{"no figures yet", nil, metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, nil, 0},
		{"tagging", &v1alpha1.TaggingStatus{Tagged: 5}, metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, nil, 0},
		{"quota spent", batchTaggingError(45009, wechat.ClassQuota, now, 10*time.Second), metav1.ConditionFalse, v1alpha1.ReasonQuotaExhausted,
			[]string{"wechat errcode 45009", "midnight Beijing time", "tried again for an hour"}, 110 * time.Second},
		{"token refused", batchTaggingError(40001, wechat.ClassToken, now, time.Minute), metav1.ConditionFalse, "WeChatError40001",
			[]string{"wechat errcode 40001", "stable_token", "spec.tokenSource"}, time.Minute},
		{"not allowed", batchTaggingError(48001, wechat.ClassTerminal, now, 0), metav1.ConditionFalse, "WeChatError48001",
			[]string{"wechat errcode 48001", "verified service account", "No follower of the account is tagged"}, 2 * time.Minute},
		{"an errcode nobody documented", batchTaggingError(99999, wechat.ClassTerminal, now, 0), metav1.ConditionFalse, "WeChatError99999",
			[]string{"wechat errcode 99999"}, 2 * time.Minute},
		{"quota spent, over", batchTaggingError(45009, wechat.ClassQuota, now, 2*time.Minute), metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, nil, 0},
		{"busy", batchTaggingError(-1, wechat.ClassRetryable, now, 0), metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, nil, 0},
		{"the tag deleted at WeChat", batchTaggingError(45159, wechat.ClassTerminal, now, 0), metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, nil, 0},
		{"no errcode", &v1alpha1.TaggingStatus{LastError: missing.Error(), LastErrorTime: &metav1.Time{Time: now}}, metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := taggedCode("ns", "c", "spring")
			code.Status.Tagging = tc.status
			c, after := taggingCondition(&code, acct, now)
			if c == nil || c.Status != tc.want || c.Reason != tc.reason || !containsAll(c.Message, tc.message...) || after != tc.after {
				t.Errorf("got %+v, look again after %s; want %s/%s with %q, after %s", c, after, tc.want, tc.reason, tc.message, tc.after)
			}
		})
	}

	// A tag missing is the registry's to say, whatever the calls met.
	code := taggedCode("ns", "c", "spring", "广东")
	code.Status.Tagging = batchTaggingError(45009, wechat.ClassQuota, now, 0)
	if c, _ := taggingCondition(&code, acct, now); c.Reason != v1alpha1.ReasonTagsPending {
		t.Errorf("a tag missing and the quota spent: %s, want %s", c.Reason, v1alpha1.ReasonTagsPending)
	}
}

// TestSetTaggingEvents: one Warning Event per new problem of the Tagging condition, none while it
// lasts or once it is over.
func TestSetTaggingEvents(t *testing.T) {
	now := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	acct := &v1alpha1.WeChatAccount{Status: v1alpha1.WeChatAccountStatus{Tags: &v1alpha1.AccountTags{Tags: []v1alpha1.TagUsage{{Name: "spring", ID: 100}}}}}
	code := taggedCode("ns", "c", "spring")
	var st v1alpha1.WeChatQRCodeStatus
	for _, step := range []struct {
		tagging *v1alpha1.TaggingStatus
		event   string
	}{
		{nil, ""},
		{batchTaggingError(45009, wechat.ClassQuota, now, 0), v1alpha1.ReasonQuotaExhausted},
		{batchTaggingError(45009, wechat.ClassQuota, now, 0), ""},
		{batchTaggingError(40001, wechat.ClassToken, now, 0), "WeChatError40001"},
		{batchTaggingError(40001, wechat.ClassToken, now, 5*time.Minute), ""},
		{batchTaggingError(40001, wechat.ClassToken, now, 0), "WeChatError40001"},
	} {
		code.Status.Tagging = step.tagging
		e, _ := setTagging(&st, &code, acct, now)
		switch {
		case step.event == "" && e != nil:
			t.Errorf("%+v: an event %+v, want none", step.tagging, e)
		case step.event != "" && (e == nil || e.Type != corev1.EventTypeWarning || e.Reason != step.event || !strings.Contains(e.Note, "batchtagging fails")):
			t.Errorf("%+v: event %+v, want a Warning %s", step.tagging, e, step.event)
		}
	}
}

// TestTaggingErrorChanged: a code is reconciled when its status.tagging reports another error, or
// the same one after a pause, not at each refresh of a lasting one.
func TestTaggingErrorChanged(t *testing.T) {
	now := time.Now()
	code := func(st *v1alpha1.TaggingStatus) *v1alpha1.WeChatQRCode {
		c := taggedCode("ns", "c", "spring")
		c.Status.Tagging = st
		return &c
	}
	quota := func(ago time.Duration) *v1alpha1.TaggingStatus {
		return batchTaggingError(45009, wechat.ClassQuota, now, ago)
	}
	for _, tc := range []struct {
		name     string
		old, new *v1alpha1.TaggingStatus
		want     bool
	}{
		{"figures only", &v1alpha1.TaggingStatus{Tagged: 1}, &v1alpha1.TaggingStatus{Tagged: 2}, false},
		{"an error appears", &v1alpha1.TaggingStatus{Tagged: 1}, quota(0), true},
		{"the error refreshed", quota(10 * time.Second), quota(0), false},
		{"the same errcode, WeChat's errmsg with another request id", quota(0), &v1alpha1.TaggingStatus{LastError: strings.Replace(quota(0).LastError, "errmsg of WeChat", "errmsg rid: 6566", 1), LastErrorTime: quota(0).LastErrorTime}, false},
		{"the error again after a pause", quota(3 * time.Minute), quota(0), true},
		{"another error", quota(0), batchTaggingError(40001, wechat.ClassToken, now, 0), true},
		{"a new term", quota(0), &v1alpha1.TaggingStatus{}, true},
	} {
		if got := taggingErrorChanged.Update(event.UpdateEvent{ObjectOld: code(tc.old), ObjectNew: code(tc.new)}); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

// takingClient creates each name at the fake WeChat itself right before the client's own
// create, as another system doing the same at the same moment would.
type takingClient struct {
	*wechat.Client
	fake  *wechattest.Server
	appID string
}

func (c takingClient) CreateTag(ctx context.Context, creds wechat.Credentials, name string) (wechat.Tag, error) {
	c.fake.AddTag(c.appID, name)
	return c.Client.CreateTag(ctx, creds, name)
}

// TestTagSyncOverHTTP: the registry against the fake WeChat over real HTTP: a name taken
// meanwhile is read again, not a failure; WeChat's 45056 and -1 stop the sync; nothing is created
// twice, and a second sync with nothing new costs no call.
func TestTagSyncOverHTTP(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	fake, err := wechattest.NewServer(wechattest.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	const appID, secret = "wxtags0000000001", "tags-secret"
	fake.AddAccount(appID, secret)
	client := wechat.New(wechat.Options{APIBaseURL: fake.URL, ImageBaseURL: fake.URL, Clock: clk})
	creds := wechat.Credentials{AppID: appID, AppSecret: secret}
	ctx := t.Context()
	var g tagRegistry

	s, out := g.sync(ctx, client, creds, wants("a", "b"), clk.Now)
	if out.err != nil || len(out.created) != 2 || s.ids["a"] == 0 || s.ids["b"] == 0 || s.used != 2 {
		t.Fatalf("first sync: %+v %+v", s, out)
	}
	calls := fake.Calls(wechattest.EndpointTagsGet) + fake.Calls(wechattest.EndpointTagsCreate)
	if _, out := g.sync(ctx, client, creds, wants("a", "b"), clk.Now); out.err != nil || len(out.created) != 0 ||
		fake.Calls(wechattest.EndpointTagsGet)+fake.Calls(wechattest.EndpointTagsCreate) != calls {
		t.Errorf("a sync with nothing new called WeChat: %+v", out)
	}

	taking := takingClient{Client: client, fake: fake, appID: appID}
	s, out = g.sync(ctx, taking, creds, wants("a", "b", "c"), clk.Now)
	if out.err != nil || len(out.created) != 0 || s.ids["c"] == 0 || len(s.missing(wants("a", "b", "c"))) != 0 {
		t.Errorf("a name taken meanwhile: %+v %+v, want it read again", s, out)
	}
	if got := fake.CallsWithErrcode(wechattest.EndpointTagsCreate, 45157); got != 1 {
		t.Errorf("45157 answers: %d, want 1", got)
	}

	fake.FailNext(wechattest.EndpointTagsCreate, 1, wechattest.Fault{Errcode: -1})
	_, out = g.sync(ctx, client, creds, wants("a", "d", "e"), clk.Now)
	if wechat.ErrCode(out.err) != -1 || len(out.created) != 0 {
		t.Errorf("busy: %+v, want errcode -1 and nothing created after it", out)
	}
	fake.FailNext(wechattest.EndpointTagsCreate, 1, wechattest.Fault{Errcode: 45056})
	_, out = g.sync(ctx, client, creds, wants("d", "e"), clk.Now)
	if !out.limit || out.err != nil || len(out.created) != 0 {
		t.Errorf("45056: %+v, want the limit and nothing more", out)
	}
	s, out = g.sync(ctx, client, creds, wants("d", "e"), clk.Now)
	if out.err != nil || len(out.created) != 2 {
		t.Errorf("after the failures: %+v %+v", s, out)
	}
	if n := fake.CallsWithErrcode(wechattest.EndpointTagsCreate, 0); n != 4 {
		t.Errorf("%d tags created, want 4 (a, b, d, e): none twice", n)
	}
}

// TestTagsCreatedOnce: codes created at once by four workers, naming overlapping tags, create
// each tag once; a restarted manager reads WeChat's list and creates only the new name; the
// account shows its registry and each code its Tagging condition.
func TestTagsCreatedOnce(t *testing.T) {
	h := newHarnessWorkers(t, 1, 4)
	ns := h.ns[0]
	appID, _ := h.accountSecret(ns, "acct")
	specs := map[string][]string{"c0": {"广东", "spring"}, "c1": {"spring", "booth"}, "c2": {"booth"}, "c3": {"spring"}}
	var wg sync.WaitGroup
	for name, tags := range specs {
		wg.Go(func() {
			spec := temporarySpec("acct", strScene(name), time.Hour, 0)
			for _, t := range tags {
				spec.Tags = append(spec.Tags, v1alpha1.TagName(t))
			}
			h.create(ns, name, spec)
		})
	}
	wg.Wait()
	acct := &v1alpha1.WeChatAccount{}
	registryIs := func(wanted int32, codes map[string]int32) func(v1alpha1.Account) bool {
		return func(a v1alpha1.Account) bool {
			st := a.AccountStatus()
			c := st.Condition(v1alpha1.ConditionTagsReady)
			if st.Tags == nil || st.Tags.Wanted != wanted || c == nil || c.Status != metav1.ConditionTrue {
				return false
			}
			for _, u := range st.Tags.Tags {
				if u.ID == 0 || u.Codes != codes[u.Name] {
					return false
				}
			}
			return len(st.Tags.Tags) == len(codes)
		}
	}
	h.waitAccount(key(ns, "acct"), acct, "showing its 3 tags", registryIs(3, map[string]int32{"广东": 1, "spring": 3, "booth": 2}))
	if n, ok := h.fake.Calls(wechattest.EndpointTagsCreate), h.fake.CallsWithErrcode(wechattest.EndpointTagsCreate, 0); n != 3 || ok != 3 {
		t.Errorf("tags/create called %d times (%d created), want 3 and 3", n, ok)
	}
	if acct.Status.Tags.Used != 3 || acct.Status.Tags.Limit != 100 {
		t.Errorf("used %d of %d, want 3 of 100", acct.Status.Tags.Used, acct.Status.Tags.Limit)
	}
	spring := acct.Status.Tags.Tags[slices.IndexFunc(acct.Status.Tags.Tags, func(u v1alpha1.TagUsage) bool { return u.Name == "spring" })]
	if !slices.Equal(spring.CodeNames, []string{ns + "/c0", ns + "/c1", ns + "/c3"}) {
		t.Errorf("spring's codes %v", spring.CodeNames)
	}
	atWeChat := map[string]int64{}
	for _, tag := range h.fake.Tags(appID) {
		atWeChat[tag.Name] = tag.ID
	}
	for _, u := range acct.Status.Tags.Tags {
		if atWeChat[u.Name] != u.ID {
			t.Errorf("%s: id %d in status, %d at WeChat", u.Name, u.ID, atWeChat[u.Name])
		}
	}
	h.waitFor(key(ns, "c1"), 30*time.Second, "Tagging True", func(c *v1alpha1.WeChatQRCode) bool {
		cond := c.Status.Condition(v1alpha1.ConditionTagging)
		return cond != nil && cond.Status == metav1.ConditionTrue && containsAll(cond.Message, `"spring" (id`, `"booth" (id`)
	})
	// One Event a sync that created tags (how many syncs did depends on when the cache saw the
	// codes), and Events of one reason within minutes may fold into a series.
	h.waitAccountEvents(key(ns, "acct"), v1alpha1.EventTagCreated, 1, false)

	h.stop()
	h.start()
	spec := temporarySpec("acct", strScene("c4"), time.Hour, 0)
	spec.Tags = []v1alpha1.TagName{"spring", "autumn"}
	h.create(ns, "c4", spec)
	h.waitAccount(key(ns, "acct"), acct, "showing autumn after the restart", registryIs(4, map[string]int32{"广东": 1, "spring": 4, "booth": 2, "autumn": 1}))
	if n := h.fake.Calls(wechattest.EndpointTagsCreate); n != 4 {
		t.Errorf("tags/create called %d times after the restart, want 4: the restarted manager created a tag again", n)
	}

	// A code's tags edited: the new name is created, the one no code names any more stays at WeChat.
	c := &v1alpha1.WeChatQRCode{}
	h.must(h.c.Get(context.Background(), key(ns, "c0"), c))
	c.Spec.Tags = []v1alpha1.TagName{"spring", "winter"}
	h.must(h.c.Update(context.Background(), c))
	h.waitAccount(key(ns, "acct"), acct, "showing winter, and 广东 no more", registryIs(4, map[string]int32{"winter": 1, "spring": 4, "booth": 2, "autumn": 1}))
	if !slices.ContainsFunc(h.fake.Tags(appID), func(t wechattest.Tag) bool { return t.Name == "广东" }) || acct.Status.Tags.Used != 5 {
		t.Errorf("广东 must stay at WeChat, and count: used %d, tags %v", acct.Status.Tags.Used, h.fake.Tags(appID))
	}
}

// TestTagLimitReached: an account with 99 tags at WeChat gets one more; the code naming a
// second is told why its scanners are not tagged, with no call for it.
func TestTagLimitReached(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, _ := h.accountSecret(ns, "acct")
	for _, n := range names(99, "console-") {
		h.fake.AddTag(appID, n)
	}
	spec := permanentSpec("acct", idScene(7))
	spec.Tags = []v1alpha1.TagName{"x", "y"}
	h.create(ns, "c", spec)
	acct := &v1alpha1.WeChatAccount{}
	h.waitAccount(key(ns, "acct"), acct, "TagsReady False TagLimitReached", func(a v1alpha1.Account) bool {
		c := a.AccountStatus().Condition(v1alpha1.ConditionTagsReady)
		return c != nil && c.Status == metav1.ConditionFalse && c.Reason == v1alpha1.ReasonTagLimitReached && containsAll(c.Message, `"y"`, "100 of WeChat's 100")
	})
	if n := h.fake.Calls(wechattest.EndpointTagsCreate); n != 1 {
		t.Errorf("tags/create called %d times, want 1 (x; y has no room)", n)
	}
	h.waitFor(key(ns, "c"), 30*time.Second, "Tagging False TagLimitReached", func(c *v1alpha1.WeChatQRCode) bool {
		cond := c.Status.Condition(v1alpha1.ConditionTagging)
		return cond != nil && cond.Status == metav1.ConditionFalse && cond.Reason == v1alpha1.ReasonTagLimitReached && strings.Contains(cond.Message, `"y"`)
	})
	h.waitAccountEvents(key(ns, "acct"), v1alpha1.ReasonTagLimitReached, 1, true)
}

// waitAccountEvents waits until the account has n Events of that reason (they are sent
// asynchronously), and fails if it has more when exact.
func (h *harness) waitAccountEvents(k types.NamespacedName, reason string, n int, exact bool) {
	h.t.Helper()
	var got int
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		got = len(h.accountEvents(k, reason))
		return got >= n, nil
	})
	if err != nil || exact && got != n {
		h.t.Errorf("%d %s Events about %s, want %d", got, reason, k, n)
	}
}

// BenchmarkWantedTags: what an account reconcile spends on the registry's input for an account
// whose 100,000 codes each name 3 of 150 tags (a sync with nothing to create makes no call).
func BenchmarkWantedTags(b *testing.B) {
	codes := make([]v1alpha1.WeChatQRCode, 100000)
	for i := range codes {
		codes[i] = taggedCode(fmt.Sprint("ns", i%50), fmt.Sprint("code-", i), fmt.Sprint("t", i%150), fmt.Sprint("t", (i+1)%150), fmt.Sprint("t", (i+2)%150))
	}
	b.ResetTimer()
	for b.Loop() {
		if len(wantedTags(codes)) != 150 {
			b.Fatal("want 150 names")
		}
	}
}

// TestTaggingShowsBatchTaggingErrors: the manager's tagging endpoint writes a code's
// status.tagging as WeChat answers its batchtagging calls (here as its reporter does, a merge
// patch of status.tagging, with the tagger's text of the error); the code reconciler, watching
// for it, turns Tagging False with the errcode and records a Warning Event, at each new error.
func TestTaggingShowsBatchTaggingErrors(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	spec := temporarySpec("acct", strScene("c"), time.Hour, 0)
	spec.Tags = []v1alpha1.TagName{"spring"}
	h.create(ns, "c", spec)
	k := key(ns, "c")
	tagging := func(status metav1.ConditionStatus, reason string) func(*v1alpha1.WeChatQRCode) bool {
		return func(c *v1alpha1.WeChatQRCode) bool {
			cond := c.Status.Condition(v1alpha1.ConditionTagging)
			return cond != nil && cond.Status == status && cond.Reason == reason
		}
	}
	h.waitFor(k, 30*time.Second, "Tagging True", tagging(metav1.ConditionTrue, v1alpha1.ReasonTagsCreated))
	report := func(st *v1alpha1.TaggingStatus) {
		body, err := json.Marshal(map[string]any{"status": map[string]any{"tagging": st}})
		h.must(err)
		h.must(h.c.Status().Patch(context.Background(), &v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c"}},
			client.RawPatch(types.MergePatchType, body)))
	}

	report(batchTaggingError(45009, wechat.ClassQuota, h.clock.Now(), 0))
	c := h.waitFor(k, 30*time.Second, "Tagging False QuotaExhausted", tagging(metav1.ConditionFalse, v1alpha1.ReasonQuotaExhausted))
	if msg := c.Status.Condition(v1alpha1.ConditionTagging).Message; !containsAll(msg, "wechat errcode 45009", "midnight Beijing time") {
		t.Errorf("message %q, want the errcode and what to do", msg)
	}
	h.waitEvent(k, corev1.EventTypeWarning, v1alpha1.ReasonQuotaExhausted, "wechat errcode 45009")

	report(batchTaggingError(40001, wechat.ClassToken, h.clock.Now(), 0))
	h.waitFor(k, 30*time.Second, "Tagging False WeChatError40001", tagging(metav1.ConditionFalse, "WeChatError40001"))
	h.waitEvent(k, corev1.EventTypeWarning, "WeChatError40001", "stable_token")
}
