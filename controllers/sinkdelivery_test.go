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
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// TestSinkDelivering: the condition from spec.sink, the deliverer's report and the clock.
func TestSinkDelivering(t *testing.T) {
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	at := func(d time.Duration) *metav1.Time { return &metav1.Time{Time: t0.Add(d)} }
	healthy := &v1alpha1.SinkDeliveryStatus{LastDeliveryTime: at(-time.Minute), ObservedTime: *at(-time.Minute)}
	failing := &v1alpha1.SinkDeliveryStatus{Backlog: 12, OldestUndeliveredTime: at(-40 * time.Second), LastError: "answered 503 Service Unavailable",
		LastErrorTime: at(-40 * time.Second), RetryTime: at(8 * time.Second), ObservedTime: *at(-10 * time.Second)}
	behind := &v1alpha1.SinkDeliveryStatus{Backlog: 5000, OldestUndeliveredTime: at(-2 * time.Minute), ObservedTime: *at(-5 * time.Second)}
	expired := &v1alpha1.SinkDeliveryStatus{Expired: 7, LastExpiredTime: at(-10 * time.Minute), ObservedTime: *at(-10 * time.Minute)}
	for _, tc := range []struct {
		name     string
		declared bool
		rep      *v1alpha1.SinkDeliveryStatus
		old      *metav1.Condition
		status   metav1.ConditionStatus
		reason   string
		message  []string
		event    bool
		after    time.Duration
	}{
		{name: "no sink", rep: failing},
		{name: "no report yet", declared: true, status: metav1.ConditionUnknown, reason: v1alpha1.ReasonAwaitingDeliverer},
		{name: "delivering", declared: true, rep: healthy, status: metav1.ConditionTrue, reason: v1alpha1.ReasonDelivering},
		{name: "a healthy report does not go stale", declared: true, rep: &v1alpha1.SinkDeliveryStatus{ObservedTime: *at(-24 * time.Hour)},
			status: metav1.ConditionTrue, reason: v1alpha1.ReasonDelivering},
		{name: "failing", declared: true, rep: failing, status: metav1.ConditionFalse, reason: v1alpha1.ReasonSinkFailing, event: true,
			message: []string{"answered 503", "12 scan events wait", "2026-12-07T11:59:20Z", "next try at 2026-12-07T12:00:08Z", "Check the sink"},
			after:   51 * time.Second},
		{name: "still failing: no second Event", declared: true, rep: failing, status: metav1.ConditionFalse, reason: v1alpha1.ReasonSinkFailing,
			old: &metav1.Condition{Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonSinkFailing}, after: 51 * time.Second},
		{name: "behind", declared: true, rep: behind, status: metav1.ConditionFalse, reason: v1alpha1.ReasonSinkBehind, event: true,
			message: []string{"5000 scan events wait", "--sink-workers"}, after: 56 * time.Second},
		{name: "a failing sink's report gone stale", declared: true, status: metav1.ConditionUnknown, reason: v1alpha1.ReasonAwaitingDeliverer,
			rep:     &v1alpha1.SinkDeliveryStatus{Backlog: 1, LastError: "answered 500 Internal Server Error", ObservedTime: *at(-61 * time.Second)},
			message: []string{"since 2026-12-07T11:58:59Z", "answered 500", "wechat-qrcode-callback-delivery"}},
		{name: "events expired", declared: true, rep: expired, status: metav1.ConditionFalse, reason: v1alpha1.ReasonEventsExpired, event: true,
			message: []string{"7 scan events", "spec.sink.retention", "--sink-backlog-limit"}, after: 50 * time.Minute},
		{name: "expiry shown for an hour", declared: true, status: metav1.ConditionTrue, reason: v1alpha1.ReasonDelivering,
			rep: &v1alpha1.SinkDeliveryStatus{Expired: 7, LastExpiredTime: at(-time.Hour), ObservedTime: *at(-time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var conds []metav1.Condition
			if tc.old != nil {
				tc.old.Type = v1alpha1.ConditionSinkDelivering
				conds = append(conds, *tc.old)
			}
			e, after := sinkDelivering(&conds, tc.declared, tc.rep, 3, t0)
			c := meta.FindStatusCondition(conds, v1alpha1.ConditionSinkDelivering)
			switch {
			case !tc.declared:
				if c != nil || e != nil {
					t.Fatalf("condition %v, event %v without spec.sink", c, e)
				}
				return
			case c == nil:
				t.Fatal("no condition")
			}
			if c.Status != tc.status || c.Reason != tc.reason || c.ObservedGeneration != 3 {
				t.Errorf("%s %s (generation %d), want %s %s", c.Status, c.Reason, c.ObservedGeneration, tc.status, tc.reason)
			}
			for _, m := range tc.message {
				if !strings.Contains(c.Message, m) {
					t.Errorf("message %q lacks %q", c.Message, m)
				}
			}
			if (e != nil) != tc.event || e != nil && (e.Reason != tc.reason || e.Note != c.Message) {
				t.Errorf("event %+v, want one: %v", e, tc.event)
			}
			if after != tc.after {
				t.Errorf("decide again after %s, want %s", after, tc.after)
			}
		})
	}
}
