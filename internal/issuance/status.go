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
	"fmt"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Reasons of the Ready condition. A failed call to WeChat uses ReasonWeChatError(errcode).
const (
	ReasonIssued = "Issued"
	// ReasonRenewing: a renewal failed but the current ticket is still valid (Ready stays True).
	ReasonRenewing = "Renewing"
	// ReasonExpired: the ticket expired while the renewal was backing off.
	ReasonExpired              = "Expired"
	ReasonAccountSecretMissing = "AccountSecretMissing"
	ReasonAccountSecretInvalid = "AccountSecretInvalid"
	ReasonSceneConflict        = "SceneConflict"
	ReasonQuotaExhausted       = "QuotaExhausted"
	// ReasonWeChatUnreachable: no answer from WeChat (network, timeout, HTTP error).
	ReasonWeChatUnreachable = "WeChatUnreachable"
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

// Failure is a failed attempt as the Ready condition reports it.
type Failure struct {
	Kind   FailureKind
	Reason string
	// Message carries WeChat's errcode, errmsg and advice; never a credential.
	Message string
}

// Ticket is a successful answer of WeChat.
type Ticket struct {
	Ticket, URL, ImageURL string
	// ExpireSeconds as WeChat answered it; 0 for permanent codes.
	ExpireSeconds int64
}

// ExpireSeconds is what to request for the spec: its ttl, or 0 for a Permanent code.
func ExpireSeconds(spec *v1alpha1.WeChatQRCodeSpec) int64 {
	if spec.Type != v1alpha1.Temporary || spec.TTL == nil {
		return 0
	}
	return int64(spec.TTL.Duration / time.Second)
}

// The functions below return the status that records one outcome of a reconcile. They never
// modify code; each starts from base.

// UpToDate records that the current ticket fits and is not due: failures are forgotten and the
// renewal time follows the current renewBefore.
func UpToDate(code *v1alpha1.WeChatQRCode, now time.Time) v1alpha1.WeChatQRCodeStatus {
	st := base(code, now)
	clearFailure(&st)
	st.RenewalTime = nil
	if at, ok := ScheduledRenewal(code); ok && code.Spec.Type == v1alpha1.Temporary {
		st.RenewalTime = stamp(at)
	}
	setReady(&st, code, metav1.ConditionTrue, ReasonIssued, issuedMessage(&st), now)
	return st
}

// Waiting records a reconcile during the backoff of a failure: the failure's condition stands,
// except that a ticket that expired meanwhile no longer makes the code Ready.
func Waiting(code *v1alpha1.WeChatQRCode, now time.Time) v1alpha1.WeChatQRCodeStatus {
	st := base(code, now)
	ready := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionReady)
	if ready != nil && ready.Status == metav1.ConditionTrue && st.ExpiresAt != nil && !now.Before(st.ExpiresAt.Time) {
		setReady(&st, code, metav1.ConditionFalse, ReasonExpired,
			fmt.Sprintf("The ticket expired at %s. %s", format(st.ExpiresAt.Time), ready.Message), now)
	}
	return st
}

// Issued records a new ticket issued for appID, asked for at requestedAt. The expiry counts from
// requestedAt, which is before WeChat started counting, with the lifetime WeChat answered, which
// may be shorter than the one requested. The ticket it replaces stays in previousTickets while it
// lives.
func Issued(code *v1alpha1.WeChatQRCode, appID string, t Ticket, requestedAt time.Time) v1alpha1.WeChatQRCodeStatus {
	st := base(code, requestedAt)
	retire(&st, requestedAt)
	clearFailure(&st)
	issuedAt := requestedAt.Truncate(time.Second)
	st.Ticket, st.URL, st.ImageURL = t.Ticket, t.URL, t.ImageURL
	st.IssuedFor = &v1alpha1.IssuedFor{AppID: appID, Type: code.Spec.Type, Scene: *code.Spec.Scene.DeepCopy()}
	st.IssuedAt = stamp(issuedAt)
	if code.Spec.Type == v1alpha1.Temporary {
		secs := t.ExpireSeconds
		if secs <= 0 {
			// An answer without expire_seconds is not what WeChat documents; the request is the
			// best knowledge left.
			secs = ExpireSeconds(&code.Spec)
		}
		expiresAt := issuedAt.Add(time.Duration(secs) * time.Second)
		var renewBefore time.Duration
		if code.Spec.RenewBefore != nil {
			renewBefore = code.Spec.RenewBefore.Duration
		}
		st.ExpiresAt = stamp(expiresAt)
		st.RenewalTime = stamp(RenewalTime(issuedAt, expiresAt, renewBefore, jitterSeed(code, t.Ticket)))
	}
	setReady(&st, code, metav1.ConditionTrue, ReasonIssued, issuedMessage(&st), requestedAt)
	return st
}

// Failed records a failed attempt made for trigger with the Secret at secretVersion. The next
// attempt goes into renewalTime. A failed renewal of a ticket that is still valid keeps the code
// Ready, with reason Renewing.
func Failed(code *v1alpha1.WeChatQRCode, trigger Trigger, f Failure, secretVersion string, now time.Time) v1alpha1.WeChatQRCodeStatus {
	st := base(code, now)
	st.FailedAttempts++
	st.LastFailureTime = stamp(now)
	st.LastFailureSecretVersion = secretVersion
	retry := RetryAt(f.Kind, st.FailedAttempts, jitterSeed(code, "retry"), now)
	st.RenewalTime = stamp(retry)
	msg := fmt.Sprintf("%s. Attempt %d failed; next attempt at %s.", f.Message, st.FailedAttempts, format(st.RenewalTime.Time))
	if f.Kind != Transient {
		msg += " A change of the spec or of the account Secret retries at once."
	}
	if trigger == Renewal && st.ExpiresAt != nil && now.Before(st.ExpiresAt.Time) {
		setReady(&st, code, metav1.ConditionTrue, ReasonRenewing,
			fmt.Sprintf("The ticket is valid until %s but its renewal failed: %s", format(st.ExpiresAt.Time), msg), now)
	} else {
		setReady(&st, code, metav1.ConditionFalse, f.Reason, msg, now)
	}
	return st
}

// AccountUnusable records that the account Secret is missing or unusable. Nothing else changes:
// the Secret's return re-triggers the code, and its new resourceVersion ends any backoff.
func AccountUnusable(code *v1alpha1.WeChatQRCode, reason, message string, now time.Time) v1alpha1.WeChatQRCodeStatus {
	st := base(code, now)
	setReady(&st, code, metav1.ConditionFalse, reason, message, now)
	return st
}

// SceneTaken records that holder, another WeChatQRCode, holds the permanent scene this code asks
// for under the same AppID. WeChat answers a permanent scene with the ticket it issued first, so
// the two would share one ticket and one code's scans would count for the other. If this code's
// own ticket is that scene's, it gives it up; earlier failures no longer matter.
func SceneTaken(code *v1alpha1.WeChatQRCode, appID, holder string, now time.Time) v1alpha1.WeChatQRCodeStatus {
	st := base(code, now)
	if Needed(code, appID, now) == Current {
		retire(&st, now)
	}
	clearFailure(&st)
	setReady(&st, code, metav1.ConditionFalse, ReasonSceneConflict, fmt.Sprintf(
		"The permanent %s of AppID %s is held by WeChatQRCode %s, and WeChat would give both codes the same ticket: change the scene or the account of one of them",
		SceneText(code.Spec.Scene), appID, holder), now)
	return st
}

// NextReconcile is how long until status needs another look without any event: the renewal (or
// retry) time, the current ticket's expiry (Ready turns False if it was not renewed) or the
// expiry of a previous ticket (to prune it). Zero when nothing is scheduled.
func NextReconcile(st *v1alpha1.WeChatQRCodeStatus, now time.Time) time.Duration {
	var next time.Duration
	consider := func(t *metav1.Time) {
		if t != nil && t.After(now) && (next == 0 || t.Sub(now) < next) {
			next = t.Sub(now)
		}
	}
	consider(st.RenewalTime)
	consider(st.ExpiresAt)
	for i := range st.PreviousTickets {
		consider(&st.PreviousTickets[i].ExpiresAt)
	}
	return next
}

// SceneText names a scene in messages.
func SceneText(s v1alpha1.Scene) string {
	if s.ID != nil {
		return "scene id " + strconv.FormatInt(*s.ID, 10)
	}
	return "scene str " + strconv.Quote(s.Key())
}

// base is the status every outcome starts from: this generation, expired previous tickets gone.
func base(code *v1alpha1.WeChatQRCode, now time.Time) v1alpha1.WeChatQRCodeStatus {
	st := *code.Status.DeepCopy()
	st.ObservedGeneration = code.Generation
	live := st.PreviousTickets[:0]
	for _, p := range st.PreviousTickets {
		if now.Before(p.ExpiresAt.Time) {
			live = append(live, p)
		}
	}
	st.PreviousTickets = nil
	if len(live) > 0 {
		st.PreviousTickets = live
	}
	return st
}

// retire moves the current ticket out of the way. A Temporary one that still lives goes to
// previousTickets, because posters printed with it still work. A Permanent one is dropped: the
// scene is released to whichever code claims it next, and WeChat would hand that code the same
// ticket.
func retire(st *v1alpha1.WeChatQRCodeStatus, now time.Time) {
	if st.Ticket != "" && st.IssuedFor != nil && st.ExpiresAt != nil && now.Before(st.ExpiresAt.Time) {
		st.PreviousTickets = append(st.PreviousTickets, v1alpha1.PreviousTicket{
			Ticket: st.Ticket, AppID: st.IssuedFor.AppID, ExpiresAt: *st.ExpiresAt})
	}
	st.Ticket, st.URL, st.ImageURL = "", "", ""
	st.IssuedFor, st.IssuedAt, st.ExpiresAt, st.RenewalTime = nil, nil, nil, nil
}

func clearFailure(st *v1alpha1.WeChatQRCodeStatus) {
	st.FailedAttempts, st.LastFailureTime, st.LastFailureSecretVersion = 0, nil, ""
}

func setReady(st *v1alpha1.WeChatQRCodeStatus, code *v1alpha1.WeChatQRCode, status metav1.ConditionStatus, reason, message string, now time.Time) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               v1alpha1.ConditionReady,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: code.Generation,
		LastTransitionTime: *stamp(now),
	})
}

func issuedMessage(st *v1alpha1.WeChatQRCodeStatus) string {
	if st.ExpiresAt == nil || st.RenewalTime == nil {
		return fmt.Sprintf("Permanent ticket issued at %s", format(st.IssuedAt.Time))
	}
	return fmt.Sprintf("Ticket issued at %s, valid until %s; renewal at %s",
		format(st.IssuedAt.Time), format(st.ExpiresAt.Time), format(st.RenewalTime.Time))
}

// stamp truncates to the second, the precision status keeps, so that a status computed again
// from what was stored compares equal and causes no write.
func stamp(t time.Time) *metav1.Time {
	return &metav1.Time{Time: t.Truncate(time.Second)}
}

func format(t time.Time) string { return t.UTC().Format(time.RFC3339) }
