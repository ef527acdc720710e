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
	"strconv"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types. Ready says whether status.ticket is a live ticket for the current spec.
// Reconciling and Stalled are the abnormal-true conditions kstatus (Flux, Argo CD, kubectl wait
// tooling) reads: each is present and True only while it holds, and both are absent once the
// code is Ready with nothing pending.
const (
	// ConditionReady is True when status.ticket is a live ticket for the current spec.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the operator works toward Ready by itself: a first
	// ticket pending, a transient failure or a spent quota backing off, a renewal due.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when only a human can make progress: an account's Secret missing
	// or invalid (a code's account missing or not Ready), a scene conflict, a terminal WeChat
	// errcode.
	ConditionStalled = "Stalled"
	// ConditionForwardResolved and ConditionSinkResolved are present while an account has
	// spec.forward, or an account or a code spec.sink: True with the URL resolved, False with
	// why it does not resolve (the reasons of internal/destination), in which case nothing is
	// sent there.
	ConditionForwardResolved = "ForwardResolved"
	ConditionSinkResolved    = "SinkResolved"
	// ConditionSinkDelivering is present while an account or a code has spec.sink: whether its
	// scan events reach the sink, from status.sinkDelivery (reasons in sinkdelivery_types.go).
	ConditionSinkDelivering = "SinkDelivering"
)

// Reasons of the conditions. A failed call to WeChat uses ReasonWeChatError(errcode).
const (
	ReasonIssued = "Issued"
	// ReasonResolved: ForwardResolved or SinkResolved is True.
	ReasonResolved = "Resolved"
	// ReasonRenewing: a renewal failed but the current ticket is still valid (Ready stays True).
	ReasonRenewing = "Renewing"
	// ReasonExpired: the ticket expired while the renewal was backing off.
	ReasonExpired              = "Expired"
	ReasonAccountSecretMissing = "AccountSecretMissing"
	ReasonAccountSecretInvalid = "AccountSecretInvalid"
	// ReasonAccountNotFound: the code's spec.accountRef names no account.
	ReasonAccountNotFound = "AccountNotFound"
	// ReasonAccountNotReady: the account exists but is not Ready; its own conditions say why.
	ReasonAccountNotReady = "AccountNotReady"
	// ReasonPermanentCodeLimit: a Permanent code would exceed the account's permanentCodeLimit.
	ReasonPermanentCodeLimit = "PermanentCodeLimitReached"
	ReasonSceneConflict      = "SceneConflict"
	ReasonQuotaExhausted     = "QuotaExhausted"
	// ReasonWeChatUnreachable: no answer from WeChat (network, timeout, HTTP error).
	ReasonWeChatUnreachable = "WeChatUnreachable"
	// ReasonTokenServiceUnreachable: no usable answer from the account's External token service
	// (spec.tokenSource.url: network, timeout, HTTP 5xx or 429); WeChat was not asked.
	ReasonTokenServiceUnreachable = "TokenServiceUnreachable"
	// ReasonIssueFailed: a failure that is neither WeChat's errcode nor the network's.
	ReasonIssueFailed = "IssueFailed"
)

// ReasonWeChatError is the reason for an errcode answer. Reasons may not contain '-', so WeChat's
// -1 ("system busy") becomes WeChatErrorMinus1.
func ReasonWeChatError(errcode int) string {
	if errcode < 0 {
		return "WeChatErrorMinus" + strconv.Itoa(-errcode)
	}
	return "WeChatError" + strconv.Itoa(errcode)
}

// Reasons of the Events recorded on a code. Other Events carry the Ready condition's reason.
const (
	EventIssued   = "Issued"
	EventRenewed  = "Renewed"
	EventReissued = "Reissued"
	// EventIssueFailed: an attempt at WeChat failed (warning).
	EventIssueFailed = "IssueFailed"
	// EventRenewRequestIgnored: the renew-requested-at annotation cannot be honoured (a
	// Permanent code, or not an RFC 3339 time); recorded once per value.
	EventRenewRequestIgnored = "RenewRequestIgnored"
	// EventForwardUnresolved and EventSinkUnresolved: an account's spec.forward, or an
	// account's or a code's spec.sink, stopped resolving (warning, once per reason).
	EventForwardUnresolved = "ForwardUnresolved"
	EventSinkUnresolved    = "SinkUnresolved"
)

// Reasons of an account's Ready condition, besides ReasonWeChatError, ReasonWeChatUnreachable,
// ReasonTokenServiceUnreachable and the Secret's (ReasonAccountSecretMissing, ReasonAccountSecretInvalid).
const (
	// ReasonTokenObtained: the credentials work; WeChat handed out an access token.
	ReasonTokenObtained = "TokenObtained"
	// ReasonDuplicateAppID: an older account has the same AppID; this one is not used.
	ReasonDuplicateAppID = "DuplicateAppID"
)

func findCondition(conditions []metav1.Condition, conditionType string) *metav1.Condition {
	return meta.FindStatusCondition(conditions, conditionType)
}

// Condition returns the condition of that type, or nil.
func (s *WeChatQRCodeStatus) Condition(conditionType string) *metav1.Condition {
	return findCondition(s.Conditions, conditionType)
}

// ReadyCondition returns the Ready condition, or nil before the first reconcile.
func (c *WeChatQRCode) ReadyCondition() *metav1.Condition {
	return c.Status.Condition(ConditionReady)
}

// IsReady reports whether Ready is True for the current generation of the spec.
func (c *WeChatQRCode) IsReady() bool {
	r := c.ReadyCondition()
	return r != nil && r.Status == metav1.ConditionTrue && r.ObservedGeneration == c.Generation
}
