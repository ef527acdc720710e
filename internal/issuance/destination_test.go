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

package issuance

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// TestSink: a code's spec.sink as it resolves, whatever the ticket's state: the URL into
// status.sinkURI and SinkResolved True; one that does not resolve leaves no sinkURI, SinkResolved
// False with its reason, a warning Event the first time only, a look again in a minute, and Ready,
// Reconciling and Stalled as the ticket alone makes them.
func TestSink(t *testing.T) {
	missing := &Destination{Problem: &Problem{Reason: "NotFound", Message: "spec.sink.ref: Service ns/login not found: create it"}}
	resolved := &Destination{URL: "http://login.ns.svc/scans"}
	for _, tc := range []struct {
		name     string
		before   *Destination // the sink as the previous reconcile saw it
		sink     *Destination
		uri      string
		cond     metav1.ConditionStatus
		warnings int
	}{
		{name: "none"},
		{name: "resolves", sink: resolved, uri: resolved.URL, cond: metav1.ConditionTrue},
		{name: "missing", sink: missing, cond: metav1.ConditionFalse, warnings: 1},
		{name: "still missing", before: missing, sink: missing, cond: metav1.ConditionFalse},
		{name: "missing after resolving", before: resolved, sink: missing, cond: metav1.ConditionFalse, warnings: 1},
		{name: "removed", before: resolved},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code := temporary()
			code.Spec.Sink = &v1alpha1.Destination{URI: "http://login.ns.svc/scans", Batch: &v1alpha1.Batch{MaxEvents: 50}}
			if tc.before != nil {
				code.Status = Decide(in(code, t0)).Sink(tc.before, t0).Status
			}
			now := t0.Add(time.Minute)
			plain := Decide(in(code, now))
			act := plain.Sink(tc.sink, now)
			st := act.Status
			if st.SinkURI != tc.uri {
				t.Errorf("sinkURI %q, want %q", st.SinkURI, tc.uri)
			}
			if wantBatch := SinkMaxEvents(tc.uri, code.Spec.Sink); st.SinkMaxEvents != wantBatch {
				t.Errorf("sinkMaxEvents %d, want %d", st.SinkMaxEvents, wantBatch)
			}
			c := st.Condition(v1alpha1.ConditionSinkResolved)
			if (c == nil) != (tc.cond == "") || c != nil && c.Status != tc.cond {
				t.Fatalf("SinkResolved %+v, want %q", c, tc.cond)
			}
			if c != nil && c.Status == metav1.ConditionFalse && (c.Reason != "NotFound" || c.Message != missing.Problem.Message) {
				t.Errorf("SinkResolved %+v does not carry the problem", c)
			}
			warnings := 0
			for _, e := range act.Events {
				if e.Reason == v1alpha1.EventSinkUnresolved && e.Type == corev1.EventTypeWarning {
					warnings++
				}
			}
			if warnings != tc.warnings {
				t.Errorf("%d SinkUnresolved warnings, want %d", warnings, tc.warnings)
			}
			for _, typ := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionReconciling, v1alpha1.ConditionStalled} {
				if got, want := st.Condition(typ), plain.Status.Condition(typ); (got == nil) != (want == nil) || got != nil && *got != *want {
					t.Errorf("%s %+v, want %+v as without a sink", typ, got, want)
				}
			}
			wantRequeue := plain.RequeueAfter(now)
			if tc.cond == metav1.ConditionFalse {
				wantRequeue = DestinationRetry
			}
			if got := act.RequeueAfter(now); got != wantRequeue {
				t.Errorf("requeue after %s, want %s", got, wantRequeue)
			}
		})
	}
}

// TestSinkMaxEvents: status records spec's batch size only beside a URL to send to.
func TestSinkMaxEvents(t *testing.T) {
	batched := &v1alpha1.Destination{URI: "http://s/", Batch: &v1alpha1.Batch{MaxEvents: 100}}
	for _, tc := range []struct {
		name string
		uri  string
		spec *v1alpha1.Destination
		want int32
	}{
		{"batched", "http://s/", batched, 100},
		{"binary", "http://s/", &v1alpha1.Destination{URI: "http://s/"}, 0},
		{"unresolved", "", batched, 0},
		{"no spec", "http://s/", nil, 0},
	} {
		if got := SinkMaxEvents(tc.uri, tc.spec); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}
