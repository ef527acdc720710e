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

// Package controllers holds the manager's reconcilers. The WeChatQRCode reconciler observes a
// code, its account and the codes contesting its scene, lets internal/issuance decide, asks
// WeChat for a ticket when told to, and records the outcome in status, Events and metrics. The
// account reconciler (WeChatAccount and ClusterWeChatAccount, one code path) checks an account's
// credentials with one token call per change, reads its quota and counts its codes, deciding
// through internal/accountstate. The push-config reconciler projects the accounts' push material
// into the one Secret the callback server may read (internal/pushconfig).
package controllers

import (
	"context"

	"golang.org/x/time/rate"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/destination"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// The manager's ClusterRole (config/rbac/manager/role.yaml, written by `make manifests`).
// Secrets: list and watch feed the metadata-only informer, get reads the data of the Secrets
// that accounts refer to. Events go through events.k8s.io. Leader election's Lease and its core
// Events live in the operator's namespace: config/rbac/manager/leader_election_role.yaml. The
// projected push config is the only Secret the manager writes, in the operator's namespace (a
// Role there, not the ClusterRole).
//
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatqrcodes,verbs=get;list;watch
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatqrcodes/status,verbs=get;update;patch
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechataccounts;clusterwechataccounts,verbs=get;list;watch
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechataccounts/status;clusterwechataccounts/status,verbs=get;patch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=secrets,verbs=create;update;patch,namespace=system
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// spec.forward and spec.sink naming a Service: get reads it uncached, list and watch feed a
// metadata-only informer that resolves a reference again when its Service appears. Knative Addressables as sinks
// need get on their kinds, granted by whoever installs Knative (see docs/gateway-and-sinks.md).
// +kubebuilder:rbac:groups="",resources=services,verbs=get;list;watch

// Normal Events about codes (Issued, Renewed, Reissued) pass a budget, one per manager: a burst
// of normalEventBurst, then normalEventRate a second. Each is a request to the API server, an
// object etcd keeps for an hour and one the manager's event broadcaster keeps for minutes;
// 100,000 codes applied at once, or their renewals, would be 100,000 of each, saying what every
// code's Ready condition and status already say. Under the budget, the few codes a person applies
// show their Event; beyond it the condition, status.issuedAt and the issuance metrics tell.
// Warnings are never held back: they are few (one per transition) and what Events are read for.
const (
	normalEventBurst = 100
	normalEventRate  = 1
)

// QRCodeIssuer is what the reconciler needs of a WeChat client (*wechat.Client).
type QRCodeIssuer interface {
	CreateQRCode(ctx context.Context, creds wechat.Credentials, req wechat.CreateQRCodeRequest) (wechat.QRCode, error)
	ImageURL(ticket string) string
}

// WeChatQRCodeReconciler issues, records and renews WeChat tickets for WeChatQRCodes.
type WeChatQRCodeReconciler struct {
	// Client reads from the informer cache and writes status.
	Client client.Client
	// APIReader reads from the API server: account Secret data (never cached) and a code just
	// before WeChat is asked for its ticket, when the cache's copy may be stale.
	APIReader client.Reader
	Issuer    QRCodeIssuer
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock

	fresh *freshness
	// normalEvents is the budget of Normal Events about codes (normalEventBurst, normalEventRate).
	normalEvents *rate.Limiter

	*accountsCommon
}

// SetupWithManager registers the watches. The primary watch ignores updates that leave the
// generation and the renew request alone (status writes, the callback server's scan counts). A
// Service that a code's spec.sink names reconciles it when it appears, changes or goes.
// An account's readiness or AppID changing reconciles its codes at once (and their rivals: the
// AppID decides which codes compete for a scene); a change of its permanent count, only the
// codes its budget refused.
func (r *WeChatQRCodeReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	b := ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.WeChatQRCode{}, builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, renewRequested, sinkDeliveryChanged, taggingErrorChanged))).
		Watches(&v1alpha1.WeChatQRCode{}, handler.EnqueueRequestsFromMapFunc(r.rivalsOf), builder.WithPredicates(claimChanged)).
		WatchesMetadata(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(r.codesNamingService))
	for _, kind := range accountKinds {
		b = b.Watches(v1alpha1.NewAccount(kind), handler.EnqueueRequestsFromMapFunc(r.codesOfAccount), builder.WithPredicates(accountUsabilityChanged)).
			Watches(v1alpha1.NewAccount(kind), handler.EnqueueRequestsFromMapFunc(r.codesRefusedByBudget), builder.WithPredicates(permanentCountChanged)).
			Watches(v1alpha1.NewAccount(kind), handler.EnqueueRequestsFromMapFunc(r.taggedCodesOfAccount), builder.WithPredicates(accountTagsChanged))
	}
	if err := b.WithOptions(opts).Complete(r); err != nil {
		return err
	}
	informer, err := mgr.GetCache().GetInformer(context.Background(), &v1alpha1.WeChatQRCode{})
	if err != nil {
		return err
	}
	if _, err := informer.AddEventHandler(r.fresh.handler()); err != nil {
		return err
	}
	// The barrier is read as the term starts (a runnable runs once elected), so that the codes
	// created from then on are newer than it; if the read fails, the first issuance reads it.
	return mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		if _, err := r.fresh.barrierVersion(ctx); err != nil {
			logf.FromContext(ctx).Info("the term's barrier is read at the first issuance instead", "error", err.Error())
		}
		return nil
	}))
}

// Reconcile observes, decides, acts and reports. WeChat is called only when issuance.Decide says
// so; a code whose status is current costs no call, whatever triggered the reconcile.
func (r *WeChatQRCodeReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	code := &v1alpha1.WeChatQRCode{}
	if err := r.Client.Get(ctx, req.NamespacedName, code); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	obs, err := r.observe(ctx, code)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	act := issuance.Decide(obs.Input)
	if act.Trigger != "" {
		// The cache may not hold yet the status written by the previous reconcile of this code
		// (a Secret event can come first) or by an earlier leader; acting on it would ask WeChat
		// for a second ticket. Unless the copy is provably as new as both, one live read settles
		// it: nothing is fresher.
		if !r.fresh.trusts(ctx, obs.Code) {
			if obs, err = r.confirm(ctx, obs); err != nil {
				return ctrl.Result{}, client.IgnoreNotFound(err)
			}
			act = issuance.Decide(obs.Input)
		}
		if act.Trigger != "" {
			act = r.issueWithinBudget(ctx, obs, act)
		}
	}
	sink, err := r.sink(ctx, obs.Code)
	if err != nil {
		return ctrl.Result{}, err
	}
	now := r.Clock.Now()
	act = act.Sink(sink, now)
	tagging, taggingAfter := setTagging(&act.Status, obs.Code, obs.account.account, now)
	delivering, after := sinkDelivering(&act.Status.Conditions, obs.Code.Spec.Sink != nil, act.Status.SinkDelivery, obs.Code.Generation, now)
	for _, e := range []*issuance.Event{tagging, delivering} {
		if e != nil {
			act.Events = append(act.Events, *e)
		}
	}
	if err := r.writeStatus(ctx, obs.Code, act.Status); err != nil {
		if len(act.Events) > 0 && act.Events[len(act.Events)-1].Action == "IssueTicket" {
			logf.FromContext(ctx).Error(err, "WeChat answered but the status could not be written; the answer is lost and the next reconcile asks again")
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	for _, e := range act.Events {
		if e.Type == corev1.EventTypeNormal && !r.normalEvents.AllowN(now, 1) {
			continue
		}
		r.Recorder.Eventf(obs.Code, nil, e.Type, e.Reason, e.Action, "%s", e.BoundedNote())
	}
	return ctrl.Result{RequeueAfter: soonest(act.RequeueAfter(now), after, taggingAfter)}, nil
}

// sink resolves spec.sink (nil without one). A code may name only its own namespace.
func (r *WeChatQRCodeReconciler) sink(ctx context.Context, code *v1alpha1.WeChatQRCode) (*issuance.Destination, error) {
	if code.Spec.Sink == nil {
		return nil, nil
	}
	return outcome(destination.Sink(ctx, r.APIReader, destination.Referrer{Namespace: code.Namespace}, code.Spec.Sink))
}

// observed is one observation of a code: the decision's input, and the credentials to act with.
type observed struct {
	issuance.Input
	account resolved
	// siblings are the codes of the same account, when the code is Permanent (its budget).
	siblings []v1alpha1.WeChatQRCode
}

// observe gathers what the decision needs: the code's account, the account's permanent codes
// for a Permanent code, and the other codes that claim a permanent scene the code claims or
// held, with their accounts' AppIDs.
func (r *WeChatQRCodeReconciler) observe(ctx context.Context, code *v1alpha1.WeChatQRCode) (observed, error) {
	obs := observed{Input: issuance.Input{Code: code, Now: r.Clock.Now()}}
	acct, err := r.resolve(ctx, code.Namespace, code.Spec.AccountRef)
	if err != nil {
		return observed{}, err
	}
	obs.account = acct
	obs.Account.Name = describe(acct.ref)
	obs.Account.AppID, obs.Account.Version = acct.secret.creds.AppID, acct.secret.version
	if p := acct.problem; p != nil {
		obs.Account.Problem = p.toIssuance()
	}
	if acct.account != nil && code.Spec.Type == v1alpha1.Permanent {
		obs.Account.PermanentLimit = acct.account.AccountSpec().PermanentLimit()
		if obs.siblings, err = r.codesOf(ctx, IndexAccountRef, acct.ref.String()); err != nil {
			return observed{}, err
		}
		obs.Account.PermanentUsed = r.budget.used(acct.ref.String(), obs.Account.AppID, obs.siblings, client.ObjectKeyFromObject(code))
	}
	others, err := r.neighbours(ctx, code)
	if err != nil {
		return observed{}, err
	}
	for i := range others {
		other := &others[i]
		theirs, err := r.resolve(ctx, other.Namespace, other.Spec.AccountRef)
		if err != nil {
			return observed{}, err
		}
		if theirs.account == nil || theirs.secret.problem != nil {
			continue // without a usable account it can issue nothing
		}
		obs.Neighbours = append(obs.Neighbours, issuance.Neighbour{Code: other, AppID: theirs.secret.creds.AppID})
	}
	return obs, nil
}

// newPermanent: the call asked for may create a permanent code at WeChat, one of the budget's.
func (obs *observed) newPermanent() bool {
	return obs.Code.Spec.Type == v1alpha1.Permanent && !permanentHolder(obs.Code, obs.Account.AppID)
}

// confirm observes the code again as the API server has it, if the cache's copy is not that.
func (r *WeChatQRCodeReconciler) confirm(ctx context.Context, obs observed) (observed, error) {
	live := &v1alpha1.WeChatQRCode{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obs.Code), live); err != nil {
		return observed{}, err
	}
	r.fresh.wrote(client.ObjectKeyFromObject(live), live.ResourceVersion)
	if live.ResourceVersion == obs.Code.ResourceVersion {
		return obs, nil
	}
	return r.observe(ctx, live)
}

// issueWithinBudget reserves a unit of the account's permanent budget for a call that may
// create a permanent code, counting again under the budget's lock: another worker may have
// taken the last unit since the code was observed. A failed call gives the unit back.
func (r *WeChatQRCodeReconciler) issueWithinBudget(ctx context.Context, obs observed, act issuance.Action) issuance.Action {
	if !obs.newPermanent() {
		return r.issue(ctx, obs, act)
	}
	account, self := obs.account.ref.String(), client.ObjectKeyFromObject(obs.Code)
	used, ok := r.budget.reserve(account, obs.Account.AppID, obs.siblings, self, obs.Account.PermanentLimit)
	if !ok {
		obs.Account.PermanentUsed = used
		return issuance.Decide(obs.Input)
	}
	out := r.issue(ctx, obs, act)
	if out.Status.Ticket == "" || out.Status.IssuedFor == nil || out.Status.IssuedFor.Type != v1alpha1.Permanent {
		r.budget.release(account, self)
	}
	return out
}

// issue asks WeChat for the ticket act calls for. The expiry counts from before the call (which
// may first wait for the AppID's rate limiter): early rather than late.
func (r *WeChatQRCodeReconciler) issue(ctx context.Context, obs observed, act issuance.Action) issuance.Action {
	log := logf.FromContext(ctx).WithValues("trigger", act.Trigger, "appID", obs.Account.AppID)
	requestedAt := r.Clock.Now()
	qr, err := r.Issuer.CreateQRCode(ctx, obs.account.creds, createRequest(&obs.Code.Spec))
	if err != nil {
		countFailure(err)
		log.Info("WeChat issued no ticket", "error", err.Error())
		return act.Failed(err, r.Clock.Now())
	}
	countIssuance(obs.Code, act.Trigger)
	out := act.Succeeded(issuance.Ticket{
		Ticket: qr.Ticket, URL: qr.URL, ImageURL: r.Issuer.ImageURL(qr.Ticket), ExpireSeconds: qr.ExpireSeconds,
	}, requestedAt)
	log.Info("WeChat issued a ticket", "expiresAt", out.Status.ExpiresAt)
	return out
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

// writeStatus patches status if it changed. A merge patch without resourceVersion: this
// reconciler is the only writer of status, and the callback server's concurrent annotation
// patches must not make a ticket WeChat just issued fail to be recorded. The version the patch
// returns is what the cache must show before its copy decides again (freshness).
func (r *WeChatQRCodeReconciler) writeStatus(ctx context.Context, code *v1alpha1.WeChatQRCode, st v1alpha1.WeChatQRCodeStatus) error {
	if equality.Semantic.DeepEqual(code.Status, st) {
		return nil
	}
	patched := code.DeepCopy()
	patched.Status = st
	key := client.ObjectKeyFromObject(code)
	err := retry.OnError(retry.DefaultBackoff, func(err error) bool { return !apierrors.IsNotFound(err) }, func() error {
		return r.Client.Status().Patch(ctx, patched, client.MergeFrom(code))
	})
	if err != nil {
		r.fresh.unknown(key)
		return err
	}
	r.fresh.wrote(key, patched.ResourceVersion)
	return nil
}
