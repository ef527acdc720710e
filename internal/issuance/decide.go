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

// Package issuance holds the decisions of the WeChatQRCode controller as pure functions of one
// observed Input (the code, its account, the codes that claim the same permanent scenes, the
// time): whether WeChat must be asked for a ticket, when the next renewal is due, how long to
// back off after a failure and what a failure means, which earlier tickets are still worth
// keeping, and the status, conditions and Events that record each outcome. Nothing here does
// I/O, so every rule and the order of the rules are table-tested without an API server or a
// WeChat.
package issuance

import (
	"fmt"
	"strings"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Trigger says why a code needs a new ticket.
type Trigger string

const (
	// current means the ticket in status fits the spec and the account and is not due.
	current        Trigger = ""
	First          Trigger = "First"
	AccountChanged Trigger = "AccountChanged"
	TypeChanged    Trigger = "TypeChanged"
	SceneChanged   Trigger = "SceneChanged"
	// Renewal: a Temporary code reached its renewal time (or expired unrenewed).
	Renewal Trigger = "Renewal"
	// Requested: the renew-requested-at annotation asks for a new ticket of a Temporary code.
	Requested Trigger = "Requested"
)

// Input is everything one decision needs, observed by the controller in one go.
type Input struct {
	Code *v1alpha1.WeChatQRCode
	// Account is the state of the Secret named by spec.accountRef.
	Account Account
	// Neighbours are the other codes that claim, in their spec, a permanent scene this code
	// claims or holds a previous ticket of, with the AppID of their account (codes whose account
	// is unusable are left out: they can issue nothing).
	Neighbours []Neighbour
	Now        time.Time
}

// Account is what the controller read of the code's account and its Secret.
type Account struct {
	// Name names the account resource in messages, e.g. "ClusterWeChatAccount shop".
	Name  string
	AppID string
	// Version is the Secret's resourceVersion: a failure made with other credentials says
	// nothing about the next attempt.
	Version string
	// Problem, when set, says why the account cannot be used (missing, not Ready).
	Problem *Problem
	// PermanentUsed counts the account's other codes that hold a permanent ticket or are being
	// issued one; PermanentLimit is its spec.permanentCodeLimit.
	PermanentUsed, PermanentLimit int32
}

// Problem is an account that cannot be used, in the Ready condition's terms.
type Problem struct {
	Reason, Message string
	// Checking: the account is being checked; its outcome will be the problem, if any. A code
	// records no Event for it, so that its Event is the account's failure, not the wait.
	Checking bool
}

// AccountChecking is the problem of a code whose account (named as in Account.Name) is being
// checked.
func AccountChecking(account string) *Problem {
	return &Problem{Reason: v1alpha1.ReasonAccountNotReady, Checking: true, Message: fmt.Sprintf(
		"%s is being checked (new, or its spec or Secret changed); the code is issued as soon as the account is Ready", account)}
}

// AccountNotReady is the problem of a code whose account is not Ready for reason, as its own
// message says.
func AccountNotReady(account, reason, message string) *Problem {
	return &Problem{Reason: v1alpha1.ReasonAccountNotReady, Message: fmt.Sprintf("%s is not Ready (%s): %s", account, reason, message)}
}

// accountCause is the account's reason in a code's AccountNotReady message, "" while the account
// is being checked: it changes when the account's failure does, where its message may change at
// every retry ("checked again at ...").
func accountCause(message string) string {
	_, rest, ok := strings.Cut(message, " is not Ready (")
	if !ok {
		return ""
	}
	cause, _, _ := strings.Cut(rest, "): ")
	return cause
}

// Neighbour is another code and the AppID of its account.
type Neighbour struct {
	Code  *v1alpha1.WeChatQRCode
	AppID string
}

// Decide is the one decision of a reconcile. The order of the rules is the order below, each
// one final: an unusable account (nothing can be done, whatever else is wrong), a permanent
// scene held by another code (no call may be made for it), a ticket that fits, a backoff that
// has not run out, a permanent code beyond the account's budget (WeChat never gives one back),
// and only then a call to WeChat.
func Decide(in Input) Action {
	d := &decision{Input: in, st: base(in)}
	trigger := d.needed()
	d.observeRenewRequest(trigger)
	switch holder := d.sceneHolder(trigger == current); {
	case in.Account.Problem != nil:
		return d.accountUnusable()
	case holder != nil:
		return d.sceneTaken(holder, trigger == current)
	case trigger == current:
		return d.upToDate()
	case d.backingOff():
		return d.waiting()
	case d.overBudget():
		return d.budgetSpent()
	default:
		return d.issue(trigger)
	}
}

// decision is the status being computed for one Input.
type decision struct {
	Input
	st     v1alpha1.WeChatQRCodeStatus
	events []Event
}

// needed says why the code needs a new ticket. Only what WeChat's ticket depends on counts:
// annotations (but the renew request), reply, ttl and renewBefore never make a ticket stale by
// themselves (ttl and renewBefore take effect at the next renewal).
func (d *decision) needed() Trigger {
	st, spec := &d.Code.Status, &d.Code.Spec
	switch {
	case st.Ticket == "" || st.IssuedFor == nil || st.IssuedAt == nil:
		return First
	case st.IssuedFor.AppID != d.Account.AppID:
		return AccountChanged
	case st.IssuedFor.Type != spec.Type:
		return TypeChanged
	case !st.IssuedFor.Scene.Equal(spec.Scene):
		return SceneChanged
	case spec.Type != v1alpha1.Temporary:
		return current
	}
	if at, ok := scheduledRenewal(d.Code); !ok || !d.Now.Before(at) {
		return Renewal
	}
	if requested, ok := d.renewRequest(); ok && requested.After(st.IssuedAt.Time) {
		return Requested
	}
	return current
}

// renewRequest is the time of a renew request not acted on yet.
func (d *decision) renewRequest() (time.Time, bool) {
	v, ok := d.Code.Annotations[v1alpha1.AnnotationRenewRequestedAt]
	if !ok || v == d.Code.Status.ObservedRenewRequest {
		return time.Time{}, false
	}
	t, err := time.Parse(time.RFC3339, v)
	return t, err == nil
}

// observeRenewRequest refuses, once per value, a renew request that cannot be honoured.
func (d *decision) observeRenewRequest(trigger Trigger) {
	v, ok := d.Code.Annotations[v1alpha1.AnnotationRenewRequestedAt]
	if !ok || v == d.st.ObservedRenewRequest || trigger == Requested {
		return
	}
	why := ""
	if _, err := time.Parse(time.RFC3339, v); err != nil {
		why = "its value is not an RFC 3339 time"
	} else if d.Code.Spec.Type == v1alpha1.Permanent {
		why = "a Permanent code is never re-issued (WeChat would answer the same ticket)"
	}
	if why == "" {
		return // a Temporary code with nothing issued yet, or a request older than the ticket
	}
	d.st.ObservedRenewRequest = v
	d.events = append(d.events, warning(v1alpha1.EventRenewRequestIgnored, "Reconcile",
		"Renewal requested at "+v+" ignored: "+why))
}

// overBudget: the call would create a permanent code at WeChat beyond the account's budget. A
// code that already holds a permanent ticket of the AppID is never refused: it is counted, and
// refusing it would take a working code down.
func (d *decision) overBudget() bool {
	if d.Code.Spec.Type != v1alpha1.Permanent {
		return false
	}
	if f := d.Code.Status.IssuedFor; d.Code.Status.Ticket != "" && f != nil && f.Type == v1alpha1.Permanent && f.AppID == d.Account.AppID {
		return false
	}
	return d.Account.PermanentUsed >= d.Account.PermanentLimit
}

// backingOff: the last attempt failed with the same spec and Secret, and its backoff has not
// run out. A change of either ends it at once.
func (d *decision) backingOff() bool {
	st := &d.Code.Status
	return st.FailedAttempts > 0 &&
		st.ObservedGeneration == d.Code.Generation &&
		st.LastFailureSecretVersion == d.Account.Version &&
		st.RenewalTime != nil && d.Now.Before(st.RenewalTime.Time)
}
