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
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
)

// sinkDelivering records in conds whether the scan events reach spec.sink, from the
// deliverer's report (status.sinkDelivery) and the time: absent without spec.sink. Like
// SinkResolved it is not part of Ready, Reconciling or Stalled: the ticket works whatever
// becomes of the events. It returns a warning Event when the condition turns False or changes
// reason while False, and when to decide again with no new report (a report of a failing sink
// growing stale, an expiry ceasing to show); 0 for never.
func sinkDelivering(conds *[]metav1.Condition, declared bool, rep *v1alpha1.SinkDeliveryStatus, generation int64, now time.Time) (*issuance.Event, time.Duration) {
	if !declared {
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionSinkDelivering)
		return nil, 0
	}
	c := metav1.Condition{Type: v1alpha1.ConditionSinkDelivering, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now.Truncate(time.Second))}
	var after time.Duration
	switch {
	case rep == nil:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonAwaitingDeliverer
		c.Message = "No delivery report yet: the callback server's elected deliverer writes status.sinkDelivery within --sink-status-interval once spec.sink resolves (see SinkResolved)"
	case rep.Trouble() && now.Sub(rep.ObservedTime.Time) > v1alpha1.SinkDeliveryStaleAfter:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonAwaitingDeliverer
		c.Message = fmt.Sprintf("No deliverer has reported since %s, when %s. Check that the callback server's Pods run and that one holds the Lease wechat-qrcode-callback-delivery",
			format(rep.ObservedTime.Time), troubleOf(rep))
	case rep.Trouble():
		c.Status = metav1.ConditionFalse
		c.Reason = v1alpha1.ReasonSinkBehind
		if rep.LastError != "" {
			c.Reason = v1alpha1.ReasonSinkFailing
		}
		c.Message = troubleOf(rep) + ". " + remedy(c.Reason)
		after = rep.ObservedTime.Add(v1alpha1.SinkDeliveryStaleAfter + time.Second).Sub(now)
	case rep.Expired > 0 && rep.LastExpiredTime != nil && now.Before(rep.LastExpiredTime.Add(v1alpha1.SinkExpiryShownFor)):
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonEventsExpired
		c.Message = fmt.Sprintf("%d scan events for the sink were given up, the last at %s: they waited longer than spec.sink.retention, or were the oldest beyond the callback server's --sink-backlog-limit while sinks were down or slow. %s",
			rep.Expired, format(rep.LastExpiredTime.Time), remedy(c.Reason))
		after = rep.LastExpiredTime.Add(v1alpha1.SinkExpiryShownFor).Sub(now)
	default:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonDelivering
		// No figures: the message stays the same while the sink delivers, so the deliverer's
		// refreshes of status.sinkDelivery cost no write of the condition.
		c.Message = "The sink acknowledges the scan events (status.sinkDelivery has the figures)"
	}
	return setProblem(conds, c, "Deliver"), after
}

// setProblem sets c in conds and returns a Warning Event of action when c turns False or changes
// reason while False: one per new problem, not one per reconcile.
func setProblem(conds *[]metav1.Condition, c metav1.Condition, action string) *issuance.Event {
	var e *issuance.Event
	if old := meta.FindStatusCondition(*conds, c.Type); c.Status == metav1.ConditionFalse && (old == nil || old.Status != c.Status || old.Reason != c.Reason) {
		e = &issuance.Event{Type: corev1.EventTypeWarning, Reason: c.Reason, Action: action, Note: c.Message}
	}
	meta.SetStatusCondition(conds, c)
	return e
}

// troubleOf says what a report of a failing or lagging sink shows.
func troubleOf(rep *v1alpha1.SinkDeliveryStatus) string {
	var s string
	if rep.LastError != "" {
		s = "the sink fails: " + rep.LastError
		if rep.LastErrorTime != nil {
			s += " (failing since " + format(rep.LastErrorTime.Time) + ")"
		}
		s += "; "
	}
	s += fmt.Sprintf("%d scan events wait", rep.Backlog)
	if rep.OldestUndeliveredTime != nil {
		s += ", the oldest scanned at " + format(rep.OldestUndeliveredTime.Time)
	}
	if rep.RetryTime != nil {
		s += "; next try at " + format(rep.RetryTime.Time)
	}
	return s
}

// remedy is what to do about a SinkDelivering reason.
func remedy(reason string) string {
	switch reason {
	case v1alpha1.ReasonSinkFailing:
		return "Check the sink (its Service, Pods and logs): the callback server tries again with backoff, and events older than spec.sink.retention expire"
	case v1alpha1.ReasonSinkBehind:
		return "The sink takes events more slowly than they arrive: give it more capacity, or raise the callback server's --sink-workers or spec.sink.batch.maxEvents"
	default:
		return "They are not sent again: make the sink available, or raise spec.sink.retention or --sink-backlog-limit"
	}
}

// soonest is the shortest of the requeue delays ds that are set (> 0); 0 when none is.
func soonest(ds ...time.Duration) time.Duration {
	var out time.Duration
	for _, d := range ds {
		if d > 0 && (out == 0 || d < out) {
			out = d
		}
	}
	return out
}

// sinkDeliveryChanged passes the updates of an account or a code whose status.sinkDelivery
// changed other than in its observedTime alone, which the deliverer refreshes while a sink
// fails: the condition's staleness is a requeue, not a watch event.
var sinkDeliveryChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		a, b := sinkDeliveryOf(e.ObjectOld), sinkDeliveryOf(e.ObjectNew)
		if a == nil || b == nil {
			return a != b
		}
		a, b = a.DeepCopy(), b.DeepCopy()
		a.ObservedTime, b.ObservedTime = metav1.Time{}, metav1.Time{}
		return !equality.Semantic.DeepEqual(a, b)
	},
}

func sinkDeliveryOf(o client.Object) *v1alpha1.SinkDeliveryStatus {
	switch o := o.(type) {
	case *v1alpha1.WeChatQRCode:
		return o.Status.SinkDelivery
	case v1alpha1.Account:
		return o.AccountStatus().SinkDelivery
	}
	return nil
}

func format(t time.Time) string { return t.UTC().Format(time.RFC3339) }
