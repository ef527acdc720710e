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
	"time"
	"unicode/utf8"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Action is what Decide tells the controller to do: record Status and Events and, when Trigger
// is set, first ask WeChat for a ticket, whose answer Succeeded or Failed turns into the Action
// to record instead.
type Action struct {
	// Trigger, when set, asks for a call to WeChat; Status then says the call is pending.
	Trigger Trigger
	Status  v1alpha1.WeChatQRCodeStatus
	Events  []Event
	d       *decision
}

// Event is an Event to record about the code.
type Event struct {
	// Type is corev1.EventTypeNormal or EventTypeWarning.
	Type, Reason, Action, Note string
}

// maxNote is the longest note the API server takes in an Event (events.k8s.io/v1 note).
const maxNote = 1024

// BoundedNote is the note cut to what the API server takes, on a character's boundary: a longer
// one (the names of 88 tags created at once) would have the whole Event refused.
func (e Event) BoundedNote() string {
	if len(e.Note) <= maxNote {
		return e.Note
	}
	const more = " …"
	cut := maxNote - len(more)
	for cut > 0 && !utf8.RuneStart(e.Note[cut]) {
		cut--
	}
	return e.Note[:cut] + more
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

// RequeueAfter is how long until status needs another look without any event: the renewal (or
// retry) time, the current ticket's expiry (Ready turns False if it was not renewed) or the
// expiry of a previous ticket (to prune it), another look at a sink that does not resolve. Zero
// when nothing is scheduled.
func (a Action) RequeueAfter(now time.Time) time.Duration {
	st := &a.Status
	var next time.Duration
	consider := func(t *metav1.Time) {
		if t != nil && t.After(now) && (next == 0 || t.Sub(now) < next) {
			next = t.Sub(now)
		}
	}
	consider(st.RenewalTime)
	consider(st.ExpiresAt)
	for i := range st.PreviousTickets {
		consider(st.PreviousTickets[i].ExpiresAt)
	}
	if c := st.Condition(v1alpha1.ConditionSinkResolved); c != nil && c.Status == metav1.ConditionFalse {
		consider(&metav1.Time{Time: now.Add(DestinationRetry)})
	}
	return next
}

// Succeeded records the ticket WeChat issued for the call a asked for, made at requestedAt.
func (a Action) Succeeded(t Ticket, requestedAt time.Time) Action {
	d := a.d
	st := d.issued(t, requestedAt)
	if a.Trigger == Requested {
		st.ObservedRenewRequest = d.Code.Annotations[v1alpha1.AnnotationRenewRequestedAt]
	}
	reason, note := v1alpha1.EventReissued, st.Condition(v1alpha1.ConditionReady).Message
	switch a.Trigger {
	case First:
		reason = v1alpha1.EventIssued
	case Renewal:
		reason = v1alpha1.EventRenewed
	case Requested:
		reason, note = v1alpha1.EventRenewed, "Renewal requested at "+st.ObservedRenewRequest+". "+note
	}
	return Action{Status: st, Events: append(d.events, Event{corev1.EventTypeNormal, reason, "IssueTicket", note}), d: d}
}

// Failed records the failure of the call a asked for, at now: what the error means, when to try
// again, and which conditions say so. A failed renewal of a ticket that is still valid keeps the
// code Ready, with reason Renewing.
func (a Action) Failed(err error, now time.Time) Action {
	d := a.d
	f := failureOf(err)
	st := *d.st.DeepCopy()
	st.FailedAttempts++
	st.LastFailureTime = stamp(now)
	st.LastFailureSecretVersion = d.Account.Version
	st.RenewalTime = stamp(retryAt(f.kind, st.FailedAttempts, jitterSeed(d.Code, "retry"), now))
	detail := fmt.Sprintf("%s. Attempt %d failed; next attempt at %s.", f.message, st.FailedAttempts, format(st.RenewalTime.Time))
	if f.kind != transient {
		detail += " A change of the spec or of the account Secret retries at once."
	}
	if f.kind == terminal {
		d.stalled(&st, f.reason, detail, now)
	} else {
		d.reconciling(&st, f.reason, detail, now)
	}
	renewing := (a.Trigger == Renewal || a.Trigger == Requested) && st.ExpiresAt != nil && now.Before(st.ExpiresAt.Time)
	if renewing {
		d.ready(&st, metav1.ConditionTrue, v1alpha1.ReasonRenewing, renewingMessage("is valid until", st.ExpiresAt, detail), now)
	} else {
		d.ready(&st, metav1.ConditionFalse, f.reason, detail, now)
	}
	note := st.Condition(v1alpha1.ConditionReady).Message
	return Action{Status: st, Events: append(d.events, warning(v1alpha1.EventIssueFailed, "IssueTicket", note)), d: d}
}

// Issued is the status recorded when WeChat answers t to a request for code under appID made at
// requestedAt (what Succeeded records; the benchmarks write it directly).
func Issued(code *v1alpha1.WeChatQRCode, appID string, t Ticket, requestedAt time.Time) v1alpha1.WeChatQRCodeStatus {
	in := Input{Code: code, Account: Account{AppID: appID}, Now: requestedAt}
	return (&decision{Input: in, st: base(in)}).issued(t, requestedAt)
}

// issued: the expiry counts from requestedAt, which is before WeChat started counting, with the
// lifetime WeChat answered, which may be shorter than the one requested. The ticket it replaces
// stays in previousTickets while it works.
func (d *decision) issued(t Ticket, requestedAt time.Time) v1alpha1.WeChatQRCodeStatus {
	st := *d.st.DeepCopy()
	code, appID := d.Code, d.Account.AppID
	retire(&st, requestedAt)
	// WeChat answers a permanent scene it issued before with the same ticket: it is current now.
	kept := st.PreviousTickets[:0]
	for _, p := range st.PreviousTickets {
		reclaimed := p.ExpiresAt == nil && p.AppID == appID && code.Spec.Type == v1alpha1.Permanent && p.Scene.Equal(code.Spec.Scene)
		if p.Ticket != t.Ticket && !reclaimed {
			kept = append(kept, p)
		}
	}
	st.PreviousTickets = nonEmpty(kept)
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
		st.RenewalTime = stamp(renewalTime(issuedAt, expiresAt, renewBefore, jitterSeed(code, t.Ticket)))
	}
	d.ready(&st, metav1.ConditionTrue, v1alpha1.ReasonIssued, issuedMessage(&st), requestedAt)
	d.healthy(&st)
	return st
}

// The outcomes of Decide that make no call. Each starts from d.st.

// accountUnusable: nothing else changes; the Secret's return re-triggers the code, and its new
// resourceVersion ends any backoff.
func (d *decision) accountUnusable() Action {
	p := d.Account.Problem
	d.ready(&d.st, metav1.ConditionFalse, p.Reason, p.Message, d.Now)
	d.stalled(&d.st, p.Reason, p.Message, d.Now)
	return d.done()
}

// sceneTaken: holder, another code of the same AppID, holds the permanent scene this code asks
// for. WeChat answers a permanent scene with the ticket it issued first, so the two would share
// one ticket and one code's scans would count for the other. If this code's own ticket is that
// scene's (holds), it gives it up; earlier failures no longer matter.
func (d *decision) sceneTaken(holder *v1alpha1.WeChatQRCode, holds bool) Action {
	if holds {
		clearTicket(&d.st)
	}
	clearFailure(&d.st)
	msg := fmt.Sprintf("The permanent %s of AppID %s is held by WeChatQRCode %s/%s, and WeChat would give both codes the same ticket: change the scene or the account of one of them",
		sceneText(d.Code.Spec.Scene), d.Account.AppID, holder.Namespace, holder.Name)
	d.ready(&d.st, metav1.ConditionFalse, v1alpha1.ReasonSceneConflict, msg, d.Now)
	d.stalled(&d.st, v1alpha1.ReasonSceneConflict, msg, d.Now)
	return d.done()
}

// budgetSpent: the permanent code is refused before any call; raising the limit or freeing a
// permanent code of the account re-triggers it.
func (d *decision) budgetSpent() Action {
	msg := fmt.Sprintf("%s already holds %d permanent codes, its spec.permanentCodeLimit is %d, and WeChat never gives a permanent code back (at most 100,000 per account): raise spec.permanentCodeLimit, delete a Permanent code of the account, or make this code Temporary. WeChat was not called",
		d.Account.Name, d.Account.PermanentUsed, d.Account.PermanentLimit)
	clearFailure(&d.st)
	d.ready(&d.st, metav1.ConditionFalse, v1alpha1.ReasonPermanentCodeLimit, msg, d.Now)
	d.stalled(&d.st, v1alpha1.ReasonPermanentCodeLimit, msg, d.Now)
	return d.done()
}

// upToDate: failures are forgotten and the renewal time follows the current renewBefore.
func (d *decision) upToDate() Action {
	clearFailure(&d.st)
	d.st.RenewalTime = nil
	if at, ok := scheduledRenewal(d.Code); ok && d.Code.Spec.Type == v1alpha1.Temporary {
		d.st.RenewalTime = stamp(at)
	}
	d.ready(&d.st, metav1.ConditionTrue, v1alpha1.ReasonIssued, issuedMessage(&d.st), d.Now)
	d.healthy(&d.st)
	return d.done()
}

// waiting: the failure's conditions stand, except that a ticket that expired meanwhile no longer
// makes the code Ready.
func (d *decision) waiting() Action {
	st := &d.st
	if r := st.Condition(v1alpha1.ConditionReady); r != nil && r.Status == metav1.ConditionTrue &&
		st.ExpiresAt != nil && !d.Now.Before(st.ExpiresAt.Time) {
		d.ready(st, metav1.ConditionFalse, v1alpha1.ReasonExpired, renewingMessage("expired at", st.ExpiresAt, failureDetail(st)), d.Now)
	}
	return d.done()
}

// issue asks for a call; until its answer, the code is Reconciling.
func (d *decision) issue(trigger Trigger) Action {
	st := *d.st.DeepCopy()
	d.reconciling(&st, string(trigger), "Asking WeChat for a ticket ("+string(trigger)+")", d.Now)
	return Action{Trigger: trigger, Status: st, Events: d.events, d: d}
}

// done adds an Event for a change of Ready to a new problem, an account's failure counting as
// one; a return to Ready without an attempt (a Secret restored) shows in the condition only, and
// so does an account being checked.
func (d *decision) done() Action {
	cur, old := d.st.Condition(v1alpha1.ConditionReady), d.Code.ReadyCondition()
	changed := old == nil || old.Status != cur.Status || old.Reason != cur.Reason ||
		cur.Reason == v1alpha1.ReasonAccountNotReady && accountCause(old.Message) != accountCause(cur.Message)
	checking := d.Account.Problem != nil && d.Account.Problem.Checking
	if cur.Status != metav1.ConditionTrue && changed && !checking {
		d.events = append(d.events, warning(cur.Reason, "Reconcile", cur.Message))
	}
	return Action{Status: d.st, Events: d.events, d: d}
}

func warning(reason, action, note string) Event {
	return Event{corev1.EventTypeWarning, reason, action, note}
}

// base is the status every outcome starts from: this generation, expired previous tickets gone,
// and permanent previous tickets gone once another code claims their scene.
func base(in Input) v1alpha1.WeChatQRCodeStatus {
	st := *in.Code.Status.DeepCopy()
	st.ObservedGeneration = in.Code.Generation
	d := decision{Input: in}
	live := st.PreviousTickets[:0]
	for _, p := range st.PreviousTickets {
		expired := p.ExpiresAt != nil && !in.Now.Before(p.ExpiresAt.Time)
		if !expired && (p.ExpiresAt != nil || !d.claimedByNeighbour(p)) {
			live = append(live, p)
		}
	}
	st.PreviousTickets = nonEmpty(live)
	return st
}

func nonEmpty(p []v1alpha1.PreviousTicket) []v1alpha1.PreviousTicket {
	if len(p) == 0 {
		return nil
	}
	return p
}

// retire moves the current ticket out of the way, into previousTickets while it works: a
// temporary one until it expires, a permanent one until another code claims its scene (posters
// printed with either still work). Beyond the list's bound the oldest goes.
func retire(st *v1alpha1.WeChatQRCodeStatus, now time.Time) {
	f := st.IssuedFor
	switch {
	case st.Ticket == "" || f == nil:
	case f.Type == v1alpha1.Permanent && st.ExpiresAt == nil:
		st.PreviousTickets = append(st.PreviousTickets, v1alpha1.PreviousTicket{Ticket: st.Ticket, AppID: f.AppID, Scene: f.Scene})
	case st.ExpiresAt != nil && now.Before(st.ExpiresAt.Time):
		st.PreviousTickets = append(st.PreviousTickets, v1alpha1.PreviousTicket{
			Ticket: st.Ticket, AppID: f.AppID, Scene: f.Scene, ExpiresAt: st.ExpiresAt.DeepCopy()})
	}
	if n := len(st.PreviousTickets) - v1alpha1.MaxPreviousTickets; n > 0 {
		st.PreviousTickets = st.PreviousTickets[n:]
	}
	clearTicket(st)
}

func clearTicket(st *v1alpha1.WeChatQRCodeStatus) {
	st.Ticket, st.URL, st.ImageURL = "", "", ""
	st.IssuedFor, st.IssuedAt, st.ExpiresAt, st.RenewalTime = nil, nil, nil, nil
}

func clearFailure(st *v1alpha1.WeChatQRCodeStatus) {
	st.FailedAttempts, st.LastFailureTime, st.LastFailureSecretVersion = 0, nil, ""
}

func (d *decision) ready(st *v1alpha1.WeChatQRCodeStatus, status metav1.ConditionStatus, reason, message string, now time.Time) {
	d.set(st, v1alpha1.ConditionReady, status, reason, message, now)
}

// reconciling and stalled set one abnormal-true condition and remove the other; healthy removes
// both. kstatus reads a True Stalled as Failed and a True Reconciling as InProgress.
func (d *decision) reconciling(st *v1alpha1.WeChatQRCodeStatus, reason, message string, now time.Time) {
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
	d.set(st, v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message, now)
}

func (d *decision) stalled(st *v1alpha1.WeChatQRCodeStatus, reason, message string, now time.Time) {
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	d.set(st, v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message, now)
}

func (d *decision) healthy(st *v1alpha1.WeChatQRCodeStatus) {
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
	meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
}

func (d *decision) set(st *v1alpha1.WeChatQRCodeStatus, conditionType string, status metav1.ConditionStatus, reason, message string, now time.Time) {
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type:               conditionType,
		Status:             status,
		Reason:             reason,
		Message:            message,
		ObservedGeneration: d.Code.Generation,
		LastTransitionTime: *stamp(now),
	})
}

// failureDetail is what the last failure said (errcode, advice, next attempt): the message of
// the abnormal-true condition it set.
func failureDetail(st *v1alpha1.WeChatQRCodeStatus) string {
	for _, t := range []string{v1alpha1.ConditionStalled, v1alpha1.ConditionReconciling} {
		if c := st.Condition(t); c != nil && c.Status == metav1.ConditionTrue {
			return c.Message
		}
	}
	return "see the last IssueFailed Event."
}

// renewingMessage is the Ready message of a ticket whose renewal is failing: one sentence about
// the ticket, then the failure.
func renewingMessage(state string, expiresAt *metav1.Time, detail string) string {
	return fmt.Sprintf("The ticket %s %s; its renewal is failing: %s", state, format(expiresAt.Time), detail)
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
