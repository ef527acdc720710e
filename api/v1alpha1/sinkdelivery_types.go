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

package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SinkDeliveryStatus is how the scan events of an account or a code reach its spec.sink, as the
// callback server's deliverer reports it. The figures are the sink's: when several accounts or
// codes send to one address, each shows that address's delivery. The manager reads it into the
// condition SinkDelivering.
type SinkDeliveryStatus struct {
	// LastDeliveryTime is when the sink last acknowledged an event: refreshed at most every
	// minute and every 50 events while it delivers (hourly for fewer), so it may lag the last acknowledgement.
	// +optional
	LastDeliveryTime *metav1.Time `json:"lastDeliveryTime,omitempty"`
	// Backlog is how many events for the sink are retained and not yet acknowledged.
	// +optional
	Backlog int64 `json:"backlog,omitempty"`
	// OldestUndeliveredTime is when the oldest of them was scanned.
	// +optional
	OldestUndeliveredTime *metav1.Time `json:"oldestUndeliveredTime,omitempty"`
	// Expired counts the events given up because they waited longer than spec.sink.retention,
	// or were the oldest beyond the callback server's --sink-backlog-limit: cumulative, across
	// restarts of the deliverer.
	// +optional
	Expired int64 `json:"expired,omitempty"`
	// LastExpiredTime is when Expired last grew.
	// +optional
	LastExpiredTime *metav1.Time `json:"lastExpiredTime,omitempty"`
	// LastError is why the last try failed, while the sink fails: its HTTP status, or the
	// error with the sink's host alone (never its URL, which may carry a token).
	// +optional
	LastError string `json:"lastError,omitempty"`
	// LastErrorTime is when the sink began to fail.
	// +optional
	LastErrorTime *metav1.Time `json:"lastErrorTime,omitempty"`
	// RetryTime is when the failing sink is tried again.
	// +optional
	RetryTime *metav1.Time `json:"retryTime,omitempty"`
	// ObservedTime is when the deliverer wrote this. While the sink fails or falls behind it
	// writes every --sink-status-interval: a report older than SinkDeliveryStaleAfter then means
	// that no deliverer runs.
	ObservedTime metav1.Time `json:"observedTime"`
}

// The timing the deliverer and the manager agree on for status.sinkDelivery.
const (
	// SinkDeliveryLagThreshold is how long an event may wait for its sink before the sink counts
	// as behind.
	SinkDeliveryLagThreshold = 30 * time.Second
	// SinkDeliveryStaleAfter is how old a report of a failing or lagging sink may grow before
	// SinkDelivering turns Unknown: three times the longest --sink-status-interval.
	SinkDeliveryStaleAfter = time.Minute
	// SinkExpiryShownFor is how long after events expired SinkDelivering stays False with
	// reason EventsExpired.
	SinkExpiryShownFor = time.Hour
)

// Trouble is whether the report shows a sink that fails or falls behind: the deliverer then
// refreshes it every interval.
func (s *SinkDeliveryStatus) Trouble() bool {
	return s.LastError != "" || s.Lagging()
}

// Lagging is whether the oldest event waiting had waited longer than SinkDeliveryLagThreshold
// when the report was written.
func (s *SinkDeliveryStatus) Lagging() bool {
	return s.Backlog > 0 && s.OldestUndeliveredTime != nil &&
		s.ObservedTime.Sub(s.OldestUndeliveredTime.Time) > SinkDeliveryLagThreshold
}

// Reasons of the condition SinkDelivering.
const (
	// ReasonDelivering: True, the sink acknowledges the events and none waits long.
	ReasonDelivering = "Delivering"
	// ReasonAwaitingDeliverer: Unknown, no deliverer has reported on the sink yet, or the report
	// of a failing or lagging sink is older than SinkDeliveryStaleAfter.
	ReasonAwaitingDeliverer = "AwaitingDeliverer"
	// ReasonSinkFailing: False, the last try failed (status.sinkDelivery.lastError).
	ReasonSinkFailing = "SinkFailing"
	// ReasonSinkBehind: False, the sink answers but an event has waited longer than
	// SinkDeliveryLagThreshold.
	ReasonSinkBehind = "SinkBehind"
	// ReasonEventsExpired: False, events were given up within the last SinkExpiryShownFor.
	ReasonEventsExpired = "EventsExpired"
)
