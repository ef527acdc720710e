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

// Package controllers holds the WeChatQRCode reconciler: it observes a code, its account Secret
// and the codes contesting its scene, lets internal/issuance decide, asks WeChat for a ticket
// when told to, and records the outcome in status, Events and metrics.
package controllers

import (
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// The manager's ClusterRole (config/rbac/manager/role.yaml, written by `make manifests`).
// Secrets: list and watch feed the metadata-only informer, get reads the data of the Secrets
// that codes refer to. Events go through events.k8s.io. Leader election's Lease and its core
// Events live in the operator's namespace: config/rbac/manager/leader_election_role.yaml.
//
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatqrcodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatqrcodes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// QRCodeIssuer is what the reconciler needs of a WeChat client (*wechat.Client).
type QRCodeIssuer interface {
	CreateQRCode(ctx context.Context, creds wechat.Credentials, req wechat.CreateQRCodeRequest) (wechat.QRCode, error)
	ImageURL(ticket string) string
}

// Event reasons of attempts at WeChat. Other Events carry the Ready condition's reason.
const (
	EventIssued      = "Issued"
	EventRenewed     = "Renewed"
	EventReissued    = "Reissued"
	EventIssueFailed = "IssueFailed"
)

// WeChatQRCodeReconciler issues, records and renews WeChat tickets for WeChatQRCodes.
type WeChatQRCodeReconciler struct {
	// Client reads from the informer cache and writes status.
	Client client.Client
	// APIReader reads from the API server: account Secret data (never cached) and a code just
	// before WeChat is asked for its ticket.
	APIReader client.Reader
	Issuer    QRCodeIssuer
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// ExternalTokens: the WeChat client takes tokens from a central service, so account Secrets
	// need no appSecret.
	ExternalTokens bool

	accounts *accounts
}

// SetupWithManager registers the field indexes and the watches. The primary watch ignores
// updates that leave the generation alone (status writes, the callback server's scan counts);
// Secrets are watched by metadata only.
func (r *WeChatQRCodeReconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	r.accounts = newAccounts(r.Client, r.APIReader, r.ExternalTokens)
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.WeChatQRCode{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&v1alpha1.WeChatQRCode{}, handler.EnqueueRequestsFromMapFunc(r.rivalsOf), builder.WithPredicates(claimChanged)).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.codesUsing)).
		WithOptions(opts).
		Complete(r)
}

// outcome is what one reconcile did: the status to write over code's, and the reason of the Event
// of an attempt at WeChat, if one was made.
type outcome struct {
	code    *v1alpha1.WeChatQRCode
	status  v1alpha1.WeChatQRCodeStatus
	attempt string
}

// Reconcile observes, decides, acts and reports. WeChat is called only when issuance.Decide says
// so; a code whose status is current costs no call, whatever triggered the reconcile.
func (r *WeChatQRCodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	code := &v1alpha1.WeChatQRCode{}
	if err := r.Client.Get(ctx, req.NamespacedName, code); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	out, err := r.next(ctx, code, false)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if err := r.writeStatus(ctx, out); err != nil {
		if out.attempt != "" {
			logf.FromContext(ctx).Error(err, "WeChat answered but the status could not be written; the answer is lost and the next reconcile asks again", "outcome", out.attempt)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.report(out)
	return ctrl.Result{RequeueAfter: issuance.NextReconcile(&out.status, r.Clock.Now())}, nil
}

// next observes and decides on code, and acts if told to. confirmed says that code was read
// from the API server rather than the cache.
func (r *WeChatQRCodeReconciler) next(ctx context.Context, code *v1alpha1.WeChatQRCode, confirmed bool) (outcome, error) {
	now := r.Clock.Now()
	acct, err := r.accounts.get(ctx, types.NamespacedName{Namespace: code.Namespace, Name: code.Spec.AccountRef.Name})
	if problem := (*accountProblem)(nil); errors.As(err, &problem) {
		return outcome{code: code, status: issuance.AccountUnusable(code, problem.reason, problem.message, now)}, nil
	} else if err != nil {
		return outcome{}, err
	}
	holder, err := r.sceneHolder(ctx, code, acct.creds.AppID, now)
	if err != nil {
		return outcome{}, err
	}
	if holder != (types.NamespacedName{Namespace: code.Namespace, Name: code.Name}) {
		return outcome{code: code, status: issuance.SceneTaken(code, acct.creds.AppID, holder.String(), now)}, nil
	}

	d := issuance.Decide(code, acct.creds.AppID, acct.version, now)
	switch {
	case d.Trigger == issuance.Current:
		return outcome{code: code, status: issuance.UpToDate(code, now)}, nil
	case !d.Issue:
		return outcome{code: code, status: issuance.Waiting(code, now)}, nil
	case !confirmed:
		// The cache may not hold yet the status written by the previous reconcile of this code
		// (a Secret event can come first); acting on it would ask WeChat for a second ticket.
		live := &v1alpha1.WeChatQRCode{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(code), live); err != nil {
			return outcome{}, err
		}
		if live.ResourceVersion != code.ResourceVersion {
			return r.next(ctx, live, true)
		}
	}
	return r.issue(ctx, code, acct, d.Trigger), nil
}

// sceneHolder returns the code that may hold code's permanent scene under appID: code itself
// unless another code with the same AppID claims the scene and comes first (issuance.SceneHolder).
func (r *WeChatQRCodeReconciler) sceneHolder(ctx context.Context, code *v1alpha1.WeChatQRCode, appID string, now time.Time) (types.NamespacedName, error) {
	rivals, err := r.rivals(ctx, code)
	if err != nil {
		return types.NamespacedName{}, err
	}
	claims := []issuance.Claim{claimOf(code, appID, now)}
	for i := range rivals {
		rival := &rivals[i]
		acct, err := r.accounts.get(ctx, types.NamespacedName{Namespace: rival.Namespace, Name: rival.Spec.AccountRef.Name})
		var problem *accountProblem
		switch {
		case errors.As(err, &problem):
			continue // without a usable account it can issue nothing
		case err != nil:
			return types.NamespacedName{}, err
		case acct.creds.AppID == appID:
			claims = append(claims, claimOf(rival, appID, now))
		}
	}
	h := issuance.SceneHolder(claims)
	return types.NamespacedName{Namespace: h.Namespace, Name: h.Name}, nil
}

func claimOf(code *v1alpha1.WeChatQRCode, appID string, now time.Time) issuance.Claim {
	return issuance.Claim{
		Namespace: code.Namespace, Name: code.Name, Created: code.CreationTimestamp.Time,
		Holds: issuance.Needed(code, appID, now) == issuance.Current,
	}
}

// issue asks WeChat for a ticket. The expiry counts from before the call (which may first wait
// for the AppID's rate limiter): early rather than late.
func (r *WeChatQRCodeReconciler) issue(ctx context.Context, code *v1alpha1.WeChatQRCode, acct account, trigger issuance.Trigger) outcome {
	log := logf.FromContext(ctx).WithValues("trigger", trigger, "appID", acct.creds.AppID)
	requestedAt := r.Clock.Now()
	qr, err := r.Issuer.CreateQRCode(ctx, acct.creds, createRequest(&code.Spec))
	if err != nil {
		countFailure(err)
		f := failureOf(err)
		log.Info("WeChat issued no ticket", "reason", f.Reason, "error", f.Message)
		return outcome{code: code, status: issuance.Failed(code, trigger, f, acct.version, r.Clock.Now()), attempt: EventIssueFailed}
	}
	countIssuance(code, trigger)
	st := issuance.Issued(code, acct.creds.AppID, issuance.Ticket{
		Ticket: qr.Ticket, URL: qr.URL, ImageURL: r.Issuer.ImageURL(qr.Ticket), ExpireSeconds: qr.ExpireSeconds,
	}, requestedAt)
	log.Info("WeChat issued a ticket", "expiresAt", st.ExpiresAt)
	ev := EventReissued
	switch trigger {
	case issuance.First:
		ev = EventIssued
	case issuance.Renewal:
		ev = EventRenewed
	}
	return outcome{code: code, status: st, attempt: ev}
}

func createRequest(spec *v1alpha1.WeChatQRCodeSpec) wechat.CreateQRCodeRequest {
	req := wechat.CreateQRCodeRequest{ExpireSeconds: issuance.ExpireSeconds(spec)}
	permanent := spec.Type == v1alpha1.Permanent
	switch {
	case spec.Scene.Str != nil:
		req.SceneStr, req.Action = *spec.Scene.Str, wechat.QRStrScene
		if permanent {
			req.Action = wechat.QRLimitStrScene
		}
	case spec.Scene.ID != nil:
		req.SceneID, req.Action = *spec.Scene.ID, wechat.QRScene
		if permanent {
			req.Action = wechat.QRLimitScene
		}
	}
	return req
}

// failureOf turns the client's error into the condition's terms. The client's message already
// carries the errcode, WeChat's errmsg and the advice, scrubbed of credentials.
func failureOf(err error) issuance.Failure {
	f := issuance.Failure{Kind: issuance.Terminal, Message: err.Error()}
	errcode := wechat.ErrCode(err)
	switch wechat.ClassOf(err) {
	case wechat.ClassQuota:
		f.Kind, f.Reason = issuance.Quota, issuance.ReasonQuotaExhausted
		return f
	case wechat.ClassRetryable, wechat.ClassToken:
		f.Kind = issuance.Transient
	}
	switch {
	case errcode != 0:
		f.Reason = issuance.ReasonWeChatError(errcode)
	case f.Kind == issuance.Transient:
		f.Reason = issuance.ReasonWeChatUnreachable
	default:
		f.Reason = issuance.ReasonIssueFailed
	}
	return f
}

// writeStatus patches status if it changed. A merge patch without resourceVersion: this
// reconciler is the only writer of status, and the callback server's concurrent annotation
// patches must not make a ticket WeChat just issued fail to be recorded.
func (r *WeChatQRCodeReconciler) writeStatus(ctx context.Context, out outcome) error {
	if equality.Semantic.DeepEqual(out.code.Status, out.status) {
		return nil
	}
	patched := out.code.DeepCopy()
	patched.Status = out.status
	return retry.OnError(retry.DefaultBackoff, func(err error) bool { return !apierrors.IsNotFound(err) }, func() error {
		return r.Client.Status().Patch(ctx, patched, client.MergeFrom(out.code))
	})
}

// report records an Event for every attempt at WeChat, and for every change of Ready to a new
// problem; a return to Ready without an attempt (a Secret restored) shows in the condition only.
func (r *WeChatQRCodeReconciler) report(out outcome) {
	cur := meta.FindStatusCondition(out.status.Conditions, v1alpha1.ConditionReady)
	if cur == nil {
		return
	}
	reason, action := out.attempt, "IssueTicket"
	if reason == "" {
		old := meta.FindStatusCondition(out.code.Status.Conditions, v1alpha1.ConditionReady)
		if cur.Status == metav1.ConditionTrue || (old != nil && old.Status == cur.Status && old.Reason == cur.Reason) {
			return
		}
		reason, action = cur.Reason, "Reconcile"
	}
	eventType := corev1.EventTypeNormal
	if cur.Status != metav1.ConditionTrue || reason == EventIssueFailed {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(out.code, nil, eventType, reason, action, "%s", cur.Message)
}
