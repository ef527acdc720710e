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

// Package accountstate holds the decisions of the account controller (WeChatAccount and
// ClusterWeChatAccount alike) as pure functions of one observed Input: whether to ask for an
// access token to check the credentials, whether to read WeChat's quota, which of two accounts
// with the same AppID is refused, and the status, conditions and Events that record each
// outcome. Nothing here does I/O.
package accountstate

import (
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// Retry delays of a failed token check with nothing changed. A failure time may cure (WeChat
// busy, network) is retried after as long as the account has been failing, between
// TransientRetryMin and TransientRetry (5, 5, 10, 20, 40 s, then every minute): every code of the
// account waits for its check, so one 502 must not hold them a minute, and an outage costs one
// token call a minute. An IP allowlist is fixed in WeChat's console, out of the cluster's sight,
// so it is retried hourly (24 token calls a day at most); a bad AppID or AppSecret waits for the
// Secret to change.
const (
	TransientRetryMin = 5 * time.Second
	TransientRetry    = time.Minute
	AllowlistRetry    = time.Hour
)

// Input is everything one decision needs.
type Input struct {
	// Account is the resource as the cache holds it.
	Account v1alpha1.Account
	// Secret is what its Secret holds.
	Secret Secret
	// Older is the oldest other account with the same AppID, if any: then this one is refused.
	Older *Member
	// Codes and PermanentUsed count the codes that refer to the account.
	Codes         v1alpha1.AccountCodes
	PermanentUsed int32
	// Forward and Sink are spec.forward and spec.sink resolved; nil for a spec without one.
	Forward, Sink *Destination
	// QuotaInterval is how often WeChat's quota is read.
	QuotaInterval time.Duration
	Now           time.Time
}

// Secret is the account Secret as read.
type Secret struct {
	// Version is its resourceVersion ("" when missing).
	Version string
	AppID   string
	// Problem, when set, says why it cannot be used (missing, invalid, a required key empty).
	Problem *issuance.Problem
}

// Destination is where a reference resolved to, or why it does not.
type Destination = issuance.Destination

// Member is an account among those that share an AppID.
type Member struct {
	Kind, Namespace, Name string
	Created               time.Time
}

func (m Member) String() string {
	if m.Namespace == "" {
		return m.Kind + " " + m.Name
	}
	return m.Kind + " " + m.Namespace + "/" + m.Name
}

// Oldest is the member that keeps an AppID: the earliest created, then by kind, namespace and
// name so that every observer picks the same one.
func Oldest(members []Member) Member {
	sorted := append([]Member(nil), members...)
	sort.Slice(sorted, func(i, j int) bool {
		a, b := sorted[i], sorted[j]
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.Kind+"/"+a.Namespace+"/"+a.Name < b.Kind+"/"+b.Namespace+"/"+b.Name
	})
	return sorted[0]
}

// Action is what the controller does: ask for a token when CheckToken, then read the quota when
// ReadQuota, each answer folded in by TokenChecked and QuotaRead; then record Status and Events.
type Action struct {
	CheckToken bool
	ReadQuota  bool
	Status     v1alpha1.WeChatAccountStatus
	Events     []issuance.Event
	in         Input
}

// Decide is the one decision of a reconcile. In order, each final for the token: an unusable
// Secret, an older account with the same AppID (no call for either), a token check the account
// or its Secret has not had, a failed check due for retry; then the quota when it is due.
func Decide(in Input) Action {
	a := Action{in: in, Status: base(in)}
	st := &a.Status
	switch {
	case in.Secret.Problem != nil:
		a.notReady(in.Secret.Problem.Reason, in.Secret.Problem.Message, true)
		st.ObservedSecretVersion = in.Secret.Version
	case in.Older != nil:
		a.notReady(v1alpha1.ReasonDuplicateAppID, fmt.Sprintf(
			"AppID %s is already used by %s, created earlier; this account is not used (its codes are not issued and the callback server does not serve it): delete one of the two accounts",
			in.Secret.AppID, in.Older), true)
		st.ObservedSecretVersion = in.Secret.Version
	case a.tokenCheckDue():
		a.CheckToken = true
		a.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, "CheckingToken", "Asking for an access token with the Secret's credentials")
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
	default:
		a.ReadQuota = a.quotaDue()
	}
	st.ForwardURL = a.resolved(v1alpha1.ConditionForwardResolved, in.Forward)
	st.SinkURI = a.resolved(v1alpha1.ConditionSinkResolved, in.Sink)
	st.SinkMaxEvents = issuance.SinkMaxEvents(st.SinkURI, in.Account.AccountSpec().Sink)
	return a.done()
}

// resolved reports d in the condition of conditionType (with a warning Event when it newly fails
// to resolve) and returns its URL: "" when it does not resolve.
func (a *Action) resolved(conditionType string, d *Destination) string {
	url, e := issuance.Resolved(&a.Status.Conditions, conditionType, d, a.in.Account.GetGeneration(), a.in.Now)
	if e != nil {
		a.Events = append(a.Events, *e)
	}
	return url
}

// base is the status every outcome starts from: the counts, the AppID and its push path.
func base(in Input) v1alpha1.WeChatAccountStatus {
	st := *in.Account.AccountStatus().DeepCopy()
	st.ObservedGeneration = in.Account.GetGeneration()
	st.Codes = in.Codes.DeepCopy()
	st.PermanentCodes = &v1alpha1.PermanentCodeUsage{Used: in.PermanentUsed, Limit: in.Account.AccountSpec().PermanentLimit()}
	if in.Secret.Problem == nil && in.Secret.AppID != "" {
		if st.AppID != in.Secret.AppID {
			// Another Official Account: the quota read was about the previous one.
			st.Quota = nil
		}
		st.AppID = in.Secret.AppID
		if st.Callback == nil {
			st.Callback = &v1alpha1.AccountCallbackStatus{}
		}
		st.Callback.Path = "/wechat/" + in.Secret.AppID
	}
	return st
}

// checkOutcome: reason is one a token check leaves on Ready.
func checkOutcome(reason string) bool {
	return reason == v1alpha1.ReasonTokenObtained || reason == v1alpha1.ReasonWeChatUnreachable ||
		reason == v1alpha1.ReasonTokenServiceUnreachable ||
		reason == v1alpha1.ReasonIssueFailed || reason == v1alpha1.ReasonQuotaExhausted ||
		strings.HasPrefix(reason, "WeChatError")
}

// tokenCheckDue: no check was made for this spec and Secret, or the last one failed in a way
// time may cure and its retry delay ran out.
func (a *Action) tokenCheckDue() bool {
	old := a.in.Account.AccountStatus()
	r := old.Condition(v1alpha1.ConditionReady)
	if r == nil || !checkOutcome(r.Reason) || r.ObservedGeneration != a.in.Account.GetGeneration() ||
		old.ObservedSecretVersion != a.in.Secret.Version || old.TokenCheckTime == nil {
		return true
	}
	retry, ok := retryDelay(old)
	return ok && !a.in.Now.Before(old.TokenCheckTime.Add(retry))
}

// retryDelay is how long after a failed check to check again with nothing changed.
func retryDelay(st *v1alpha1.WeChatAccountStatus) (time.Duration, bool) {
	r := st.Condition(v1alpha1.ConditionReady)
	switch {
	case r == nil || r.Status == metav1.ConditionTrue:
		return 0, false
	case r.Reason == v1alpha1.ReasonWeChatError(40164):
		return AllowlistRetry, true
	case st.Condition(v1alpha1.ConditionReconciling) != nil && st.TokenCheckTime != nil:
		return transientRetry(r.LastTransitionTime.Time, st.TokenCheckTime.Time), true
	}
	return 0, false
}

// transientRetry is the wait after a check at checked of an account failing since failingSince.
func transientRetry(failingSince, checked time.Time) time.Duration {
	return min(max(checked.Sub(failingSince), TransientRetryMin), TransientRetry)
}

// TokenChecked records the answer to the token check Decide asked for.
func (a Action) TokenChecked(err error) Action {
	st := &a.Status
	st.ObservedSecretVersion = a.in.Secret.Version
	st.TokenCheckTime = stamp(a.in.Now)
	a.CheckToken = false
	if err == nil {
		a.set(v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonTokenObtained, fmt.Sprintf(
			"An access token was obtained (%s) at %s with AppID %s", a.in.Account.AccountSpec().TokenSourceType(), format(a.in.Now), a.in.Secret.AppID))
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionStalled)
		a.ReadQuota = a.quotaDue()
		return a.done()
	}
	reason, stalled := issuance.Classify(err)
	msg := "Getting an access token failed: " + err.Error()
	switch {
	case reason == v1alpha1.ReasonWeChatError(40164):
		msg += fmt.Sprintf(". Checked again at %s, or at once when the spec or the Secret changes", format(a.in.Now.Add(AllowlistRetry)))
	case !stalled:
		since := a.in.Now
		// Ready stays False from the first failure on: its transition time is when it began.
		if r := st.Condition(v1alpha1.ConditionReady); r != nil && r.Status == metav1.ConditionFalse && checkOutcome(r.Reason) {
			since = r.LastTransitionTime.Time
		}
		msg += fmt.Sprintf(". Checked again at %s", format(a.in.Now.Add(transientRetry(since, stamp(a.in.Now).Time))))
	default:
		msg += ". Checked again when the spec or the Secret changes"
	}
	a.notReady(reason, msg, stalled)
	return a.done()
}

// QuotaRead records the answer to the quota read Decide or TokenChecked asked for.
func (a Action) QuotaRead(q wechat.Quota, err error) Action {
	a.ReadQuota = false
	st := &a.Status
	if err != nil {
		if st.Quota == nil {
			st.Quota = &v1alpha1.QRCodeQuota{}
		}
		st.Quota.ObservedTime, st.Quota.Error = *stamp(a.in.Now), err.Error()
		a.Events = append(a.Events, issuance.Event{Type: corev1.EventTypeWarning, Reason: "QuotaReadFailed", Action: "ReadQuota", Note: err.Error()})
		return a
	}
	st.Quota = &v1alpha1.QRCodeQuota{DailyLimit: q.DailyLimit, Used: q.Used, Remain: q.Remain, ObservedTime: *stamp(a.in.Now)}
	return a
}

// quotaDue: the account is Ready and its quota was never read or was read an interval ago.
func (a *Action) quotaDue() bool {
	r := a.Status.Condition(v1alpha1.ConditionReady)
	if r == nil || r.Status != metav1.ConditionTrue || a.in.QuotaInterval <= 0 {
		return false
	}
	q := a.Status.Quota
	return q == nil || !a.in.Now.Before(q.ObservedTime.Add(a.in.QuotaInterval))
}

// RequeueAfter is when the account needs another look with nothing changed: the next quota
// read, or the retry of a failed token check. Zero when nothing is scheduled.
func (a Action) RequeueAfter() time.Duration {
	st, now := &a.Status, a.in.Now
	var next time.Duration
	consider := func(t time.Time) {
		if d := t.Sub(now); d > 0 && (next == 0 || d < next) {
			next = d
		}
	}
	if r := st.Condition(v1alpha1.ConditionReady); r != nil && r.Status == metav1.ConditionTrue && st.Quota != nil && a.in.QuotaInterval > 0 {
		consider(st.Quota.ObservedTime.Add(a.in.QuotaInterval))
	}
	if retry, ok := retryDelay(st); ok && st.TokenCheckTime != nil {
		consider(st.TokenCheckTime.Add(retry))
	}
	for _, d := range []*Destination{a.in.Forward, a.in.Sink} {
		if d != nil && d.Problem != nil {
			consider(now.Add(issuance.DestinationRetry))
		}
	}
	return next
}

// notReady sets Ready False with Stalled (a human must act) or Reconciling (time may cure).
func (a *Action) notReady(reason, message string, stalled bool) {
	a.set(v1alpha1.ConditionReady, metav1.ConditionFalse, reason, message)
	if stalled {
		meta.RemoveStatusCondition(&a.Status.Conditions, v1alpha1.ConditionReconciling)
		a.set(v1alpha1.ConditionStalled, metav1.ConditionTrue, reason, message)
	} else {
		meta.RemoveStatusCondition(&a.Status.Conditions, v1alpha1.ConditionStalled)
		a.set(v1alpha1.ConditionReconciling, metav1.ConditionTrue, reason, message)
	}
}

// done adds a warning Event when Ready turns to a new problem, so that each shows once.
func (a Action) done() Action {
	cur, old := a.Status.Condition(v1alpha1.ConditionReady), a.in.Account.AccountStatus().Condition(v1alpha1.ConditionReady)
	if cur != nil && cur.Status == metav1.ConditionFalse && (old == nil || old.Status != cur.Status || old.Reason != cur.Reason) {
		a.Events = append(a.Events, issuance.Event{Type: corev1.EventTypeWarning, Reason: cur.Reason, Action: "CheckAccount", Note: cur.Message})
	}
	return a
}

func (a *Action) set(conditionType string, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&a.Status.Conditions, metav1.Condition{
		Type: conditionType, Status: status, Reason: reason, Message: message,
		ObservedGeneration: a.in.Account.GetGeneration(), LastTransitionTime: *stamp(a.in.Now),
	})
}

func stamp(t time.Time) *metav1.Time { return &metav1.Time{Time: t.Truncate(time.Second)} }

func format(t time.Time) string { return t.UTC().Format(time.RFC3339) }
