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
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// DestinationRetry is when a reference that does not resolve is looked at again with nothing
// changed. Services are watched, so one that appears resolves at once; other Addressables (a
// Knative Broker becoming ready) are not, and a minute bounds how long their scans go nowhere.
const DestinationRetry = time.Minute

// Destination is where a reference (an account's spec.forward, an account's or a code's
// spec.sink) resolved to, or why it does not.
type Destination struct {
	URL     string
	Problem *Problem
}

// unresolved is the Event reason of each condition turning False.
var unresolved = map[string]string{
	v1alpha1.ConditionForwardResolved: v1alpha1.EventForwardUnresolved,
	v1alpha1.ConditionSinkResolved:    v1alpha1.EventSinkUnresolved,
}

// Resolved records d in the condition conditionType (ForwardResolved, SinkResolved) and returns
// the URL to send to: "" when it does not resolve, so that nothing goes to a stale address; a nil
// d (the spec names none) removes the condition. A reference that newly fails to resolve also
// gives a warning Event (reason ForwardUnresolved or SinkUnresolved), once per reason.
func Resolved(conds *[]metav1.Condition, conditionType string, d *Destination, generation int64, now time.Time) (string, *Event) {
	if d == nil {
		meta.RemoveStatusCondition(conds, conditionType)
		return "", nil
	}
	c := metav1.Condition{Type: conditionType, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonResolved,
		Message: "resolved to " + d.URL, ObservedGeneration: generation, LastTransitionTime: *stamp(now)}
	var e *Event
	if d.Problem != nil {
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, d.Problem.Reason, d.Problem.Message
		if old := meta.FindStatusCondition(*conds, conditionType); old == nil || old.Status != c.Status || old.Reason != c.Reason {
			e = &Event{corev1.EventTypeWarning, unresolved[conditionType], "Resolve", d.Problem.Message}
		}
	}
	meta.SetStatusCondition(conds, c)
	if d.Problem != nil {
		return "", e
	}
	return d.URL, nil
}

// Sink records spec.sink as it resolved (nil when the spec has none) in status.sinkURI, where
// the callback server reads it, and in the condition SinkResolved. It is not part of Ready, nor
// of Reconciling or Stalled, which kstatus, Flux and Argo CD read: the ticket is good whatever
// becomes of its scans' events, and a missing sink must not read as a failed code. The user sees
// it in its own condition and a warning Event.
func (a Action) Sink(d *Destination, now time.Time) Action {
	uri, e := Resolved(&a.Status.Conditions, v1alpha1.ConditionSinkResolved, d, a.d.Code.Generation, now)
	a.Status.SinkURI = uri
	a.Status.SinkMaxEvents = SinkMaxEvents(uri, a.d.Code.Spec.Sink)
	if e != nil {
		a.Events = append(a.Events, *e)
	}
	return a
}

// SinkMaxEvents is what status records beside the sink URL uri that spec resolved to: spec's
// batch size, 0 (binary mode) when there is no URL to send to.
func SinkMaxEvents(uri string, spec *v1alpha1.Destination) int32 {
	if uri == "" {
		return 0
	}
	return spec.MaxEvents()
}
