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

package tagging

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// maxReports bounds the status writes of a round: at the default interval, 10 a second.
const maxReports = 100

// figures are what a code's status.tagging shows, comparable to tell a change.
type figures struct {
	tagged, invalid, foreign, limit int64
	lastError                       string
	lastErrorTime                   time.Time
}

func figuresOf(st CodeStats) figures {
	return figures{tagged: st.Tagged, invalid: st.Skipped[SkipInvalidOpenID], foreign: st.Skipped[SkipForeignOpenID],
		limit: st.Skipped[SkipFollowerAtLimit], lastError: st.LastError, lastErrorTime: st.LastErrorTime.Truncate(time.Second)}
}

// reporter writes the codes' status.tagging: the figures of this manager's term, each code when
// they changed, at most maxReports a round, the codes by name from where the last round stopped.
type reporter struct {
	status  client.SubResourceWriter
	since   metav1.Time
	written map[string]figures
}

func (r *reporter) round(ctx context.Context, stats map[string]CodeStats) {
	var due []string
	for code, st := range stats {
		if r.written[code] != figuresOf(st) {
			due = append(due, code)
		}
	}
	slices.Sort(due)
	for _, code := range due[:min(len(due), maxReports)] {
		f := figuresOf(stats[code])
		st := qrv1alpha1.TaggingStatus{Since: r.since, Tagged: f.tagged, InvalidOpenID: f.invalid, ForeignOpenID: f.foreign,
			FollowerTagLimit: f.limit, LastError: f.lastError}
		if !f.lastErrorTime.IsZero() {
			st.LastErrorTime = &metav1.Time{Time: f.lastErrorTime}
		}
		body := taggingPatch(st)
		ns, name, _ := strings.Cut(code, "/")
		obj := &qrv1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
		if err := r.status.Patch(ctx, obj, client.RawPatch(types.MergePatchType, body)); err != nil && !apierrors.IsNotFound(err) {
			continue
		}
		r.written[code] = f
	}
}

// taggingPatch is the merge patch that makes st the code's whole status.tagging: the fields st
// leaves out are null, removed, or a new term's figures would keep the last manager's error and
// skips (a merge patch keeps what it does not mention).
func taggingPatch(st qrv1alpha1.TaggingStatus) []byte {
	raw, err := json.Marshal(st)
	if err != nil {
		panic(err) // numbers, strings and times always marshal
	}
	fields := map[string]any{}
	if err := json.Unmarshal(raw, &fields); err != nil {
		panic(err)
	}
	for _, k := range []string{"invalidOpenID", "foreignOpenID", "followerTagLimit", "lastError", "lastErrorTime"} {
		if _, ok := fields[k]; !ok {
			fields[k] = nil
		}
	}
	body, err := json.Marshal(map[string]any{"status": map[string]any{"tagging": fields}})
	if err != nil {
		panic(err)
	}
	return body
}
