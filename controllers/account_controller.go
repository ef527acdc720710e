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
	"context"
	"errors"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/accountstate"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/destination"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// AccountChecker is what the account reconciler needs of a WeChat client (*wechat.Client).
type AccountChecker interface {
	CheckToken(ctx context.Context, creds wechat.Credentials) error
	QRCodeQuota(ctx context.Context, creds wechat.Credentials) (wechat.Quota, error)
}

// AccountReconciler checks WeChatAccounts and ClusterWeChatAccounts, one code path for both.
//
// No finalizer: deleting an account calls nothing at WeChat (its codes' tickets stay valid there,
// and the codes go Ready=False AccountNotFound at once through the account watch), so there is
// nothing to clean up; and a finalizer would hold the account while its codes exist, which breaks
// GitOps prunes that delete the account before its codes, for no gain.
type AccountReconciler struct {
	Client client.Client
	// APIReader gets the Services and Addressables that spec.forward and spec.sink name,
	// uncached: a cache would list and watch every Service of the cluster.
	APIReader client.Reader
	Checker   AccountChecker
	// TagAPI reads and creates the accounts' tags (tags.go).
	TagAPI   TagAPI
	Recorder events.EventRecorder
	Clock    clock.PassiveClock
	// QuotaInterval is how often WeChat's qrcode/create quota is read per Ready account; each
	// read is a call of openapi/quota/get's own daily quota. Zero never reads it.
	QuotaInterval time.Duration

	tags tagRegistry
	*accountsCommon
}

// SetupWithManager runs one controller per kind. Status writes (the callback server's push
// statistics, this reconciler's own) do not trigger it, except a change of the deliverer's
// status.sinkDelivery (the condition SinkDelivering): its Secret, its codes, the accounts
// sharing its AppID and the Services its forward and sink name do.
func (r *AccountReconciler) SetupWithManager(mgr ctrl.Manager, opts controller.Options) error {
	for _, kind := range accountKinds {
		kr := &kindReconciler{r: r, kind: kind}
		err := ctrl.NewControllerManagedBy(mgr).
			Named(kind).
			For(v1alpha1.NewAccount(kind), builder.WithPredicates(predicate.Or[client.Object](predicate.GenerationChangedPredicate{}, sinkDeliveryChanged))).
			Watches(v1alpha1.NewAccount(v1alpha1.KindWeChatAccount), handler.EnqueueRequestsFromMapFunc(kr.sharingAppID), builder.WithPredicates(appIDChanged)).
			Watches(v1alpha1.NewAccount(v1alpha1.KindClusterWeChatAccount), handler.EnqueueRequestsFromMapFunc(kr.sharingAppID), builder.WithPredicates(appIDChanged)).
			WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(kr.usingSecret)).
			WatchesMetadata(&corev1.Service{}, handler.EnqueueRequestsFromMapFunc(kr.accountsNamingService)).
			Watches(&v1alpha1.WeChatQRCode{}, kr.accountOfCode(), builder.WithPredicates(codeCountChanged)).
			Watches(&v1alpha1.WeChatQRCode{}, kr.accountOfCode(), builder.WithPredicates(codeTagsChanged)).
			WithOptions(opts).
			Complete(kr)
		if err != nil {
			return err
		}
	}
	return nil
}

type kindReconciler struct {
	r    *AccountReconciler
	kind string
}

func (k *kindReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	return k.r.Reconcile(ctx, k.kind, req.NamespacedName)
}

// Reconcile observes, decides, acts and reports.
func (r *AccountReconciler) Reconcile(ctx context.Context, kind string, key types.NamespacedName) (ctrl.Result, error) {
	acct := v1alpha1.NewAccount(kind)
	if err := r.cache.Get(ctx, key, acct); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	in, creds, err := r.observe(ctx, acct)
	if err != nil {
		return ctrl.Result{}, err
	}
	act := accountstate.Decide(in)
	if act.CheckToken {
		act = act.TokenChecked(r.Checker.CheckToken(ctx, creds))
	}
	if act.ReadQuota {
		q, err := r.Checker.QRCodeQuota(ctx, creds)
		act = act.QuotaRead(q, err)
	}
	tagEvents, tagsAgain, err := r.reconcileTags(ctx, acct, creds, &act.Status)
	if err != nil {
		return ctrl.Result{}, err
	}
	delivering, after := sinkDelivering(&act.Status.Conditions, acct.AccountSpec().Sink != nil, act.Status.SinkDelivery, acct.GetGeneration(), in.Now)
	if delivering != nil {
		act.Events = append(act.Events, *delivering)
	}
	if err := r.writeStatus(ctx, acct, act.Status); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	for _, e := range append(act.Events, tagEvents...) {
		r.Recorder.Eventf(acct, nil, e.Type, e.Reason, e.Action, "%s", e.BoundedNote())
	}
	return ctrl.Result{RequeueAfter: soonest(act.RequeueAfter(), tagsAgain, after)}, nil
}

// observe reads the account's Secret, the older accounts with the same AppID and its codes.
func (r *AccountReconciler) observe(ctx context.Context, acct v1alpha1.Account) (accountstate.Input, wechat.Credentials, error) {
	in := accountstate.Input{Account: acct, QuotaInterval: r.QuotaInterval, Now: r.Clock.Now()}
	sec, err := r.secrets.get(ctx, r.secretKey(acct))
	if err != nil && !isProblem(err) {
		return in, wechat.Credentials{}, err
	}
	in.Secret = accountstate.Secret{Version: sec.version, AppID: sec.creds.AppID}
	creds, problem := apiCredentials(sec, acct.AccountSpec(), acct.AccountSpec().SecretRef.Name)
	if p, ok := err.(*accountProblem); ok {
		problem = p
	}
	if problem != nil {
		in.Secret.Problem = problem.toIssuance()
	} else if in.Older, err = r.older(ctx, acct, sec.creds.AppID); err != nil {
		return in, creds, err
	}
	if in.Forward, in.Sink, err = r.destinations(ctx, acct); err != nil {
		return in, creds, err
	}
	var codes v1alpha1.WeChatQRCodeList
	// Counted, never changed: the cache's own objects, not a copy of every code per reconcile.
	if err := r.cache.List(ctx, &codes, client.MatchingFields{IndexAccountRef: accountRef(acct).String()}, client.UnsafeDisableDeepCopy); err != nil {
		return in, creds, err
	}
	for i := range codes.Items {
		c := &codes.Items[i]
		in.Codes.Total++
		if c.IsReady() {
			in.Codes.Ready++
		}
		if permanentHolder(c, sec.creds.AppID) {
			in.PermanentUsed++
		}
	}
	return in, creds, nil
}

// destinations resolves spec.forward and spec.sink; a reference that does not resolve is a
// Destination with its Problem, an API server failure an error.
func (r *AccountReconciler) destinations(ctx context.Context, acct v1alpha1.Account) (forward, sink *issuance.Destination, err error) {
	from := r.referrer(acct)
	spec := acct.AccountSpec()
	if spec.Forward != nil {
		if forward, err = outcome(destination.Forward(ctx, r.APIReader, from, spec.Forward)); err != nil {
			return nil, nil, err
		}
	}
	if spec.Sink != nil {
		if sink, err = outcome(destination.Sink(ctx, r.APIReader, from, spec.Sink)); err != nil {
			return nil, nil, err
		}
	}
	return forward, sink, nil
}

// outcome is a resolution's outcome as a decision reads it.
func outcome(url string, err error) (*issuance.Destination, error) {
	if e, ok := errors.AsType[*destination.Error](err); ok {
		return &issuance.Destination{Problem: &issuance.Problem{Reason: e.Reason, Message: e.Error()}}, nil
	}
	if err != nil {
		return nil, err
	}
	return &issuance.Destination{URL: url}, nil
}

// older is the oldest other account that has appID, if it is older than acct.
func (r *AccountReconciler) older(ctx context.Context, acct v1alpha1.Account, appID string) (*accountstate.Member, error) {
	others, err := listAccounts(ctx, r.cache, client.MatchingFields{IndexAppID: appID})
	if err != nil {
		return nil, err
	}
	self := member(acct)
	members := []accountstate.Member{self}
	for _, o := range others {
		if o.GetUID() != acct.GetUID() {
			members = append(members, member(o))
		}
	}
	if oldest := accountstate.Oldest(members); oldest != self {
		return &oldest, nil
	}
	return nil, nil
}

func member(a v1alpha1.Account) accountstate.Member {
	return accountstate.Member{Kind: a.Ref().Kind, Namespace: a.GetNamespace(), Name: a.GetName(), Created: a.GetCreationTimestamp().Time}
}

// writeStatus merge-patches the fields that changed. The callback server writes
// status.callback's other fields with merge patches of its own: a patch computed from the cached
// copy carries only what this reconciler changed, so it never overwrites them.
func (r *AccountReconciler) writeStatus(ctx context.Context, acct v1alpha1.Account, st v1alpha1.WeChatAccountStatus) error {
	if equality.Semantic.DeepEqual(*acct.AccountStatus(), st) {
		return nil
	}
	patched := acct.DeepCopyObject().(v1alpha1.Account)
	*patched.AccountStatus() = st
	return r.Client.Status().Patch(ctx, patched, client.MergeFrom(acct))
}

// sharingAppID maps an account whose AppID appeared, changed or went to the accounts of this
// kind that have that AppID: the younger of two may become usable, or refused.
func (k *kindReconciler) sharingAppID(ctx context.Context, obj client.Object) []reconcile.Request {
	appID := obj.(v1alpha1.Account).AccountStatus().AppID
	if appID == "" {
		return nil
	}
	list, err := listAccounts(ctx, k.r.cache, client.MatchingFields{IndexAppID: appID})
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the accounts of an AppID")
		return nil
	}
	var reqs []reconcile.Request
	for _, a := range list {
		if a.Ref().Kind == k.kind && a.GetUID() != obj.GetUID() {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(a)})
		}
	}
	return reqs
}

// usingSecret maps a Secret to the accounts of this kind that use it.
func (k *kindReconciler) usingSecret(ctx context.Context, s client.Object) []reconcile.Request {
	opts := []client.ListOption{client.MatchingFields{IndexSecretRef: s.GetName()}}
	if k.kind == v1alpha1.KindClusterWeChatAccount {
		if s.GetNamespace() != k.r.clusterNamespace {
			return nil
		}
	} else {
		opts = append(opts, client.InNamespace(s.GetNamespace()))
	}
	list, err := listAccounts(ctx, k.r.cache, opts...)
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the accounts of a Secret")
		return nil
	}
	return k.ofKind(list)
}

// ofKind are the requests of the accounts of this kind among list.
func (k *kindReconciler) ofKind(list []v1alpha1.Account) []reconcile.Request {
	var reqs []reconcile.Request
	for _, a := range list {
		if a.Ref().Kind == k.kind {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(a)})
		}
	}
	return reqs
}

// countsSettle is how long an account's reconcile waits after a change of one of its codes, so
// that the changes of that second are counted together: 2,000 codes issued at once changed the
// counts once per code, and each count was a status write and a list of every code.
const countsSettle = time.Second

// accountOfCode maps a code to its account, and on an update that moved it, to its old one too,
// a countsSettle later (the work queue keeps one pending reconcile per account).
func (k *kindReconciler) accountOfCode() handler.EventHandler {
	enqueue := func(q queue, c *v1alpha1.WeChatQRCode) {
		if ref := refOf(c.Namespace, c.Spec.AccountRef); ref.Kind == k.kind {
			q.AddAfter(reconcile.Request{NamespacedName: types.NamespacedName{Namespace: ref.Namespace, Name: ref.Name}}, countsSettle)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q queue) { enqueue(q, e.Object.(*v1alpha1.WeChatQRCode)) },
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q queue) { enqueue(q, e.Object.(*v1alpha1.WeChatQRCode)) },
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q queue) {
			enqueue(q, e.ObjectOld.(*v1alpha1.WeChatQRCode))
			enqueue(q, e.ObjectNew.(*v1alpha1.WeChatQRCode))
		},
	}
}

// appIDChanged lets through the account events that can start or settle a duplicate AppID.
var appIDChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.(v1alpha1.Account).AccountStatus().AppID != e.ObjectNew.(v1alpha1.Account).AccountStatus().AppID
	},
}

// codeCountChanged lets through the code events that change its account's counts: creation,
// deletion, another account, readiness, a permanent ticket gained or lost.
var codeCountChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*v1alpha1.WeChatQRCode), e.ObjectNew.(*v1alpha1.WeChatQRCode)
		held := func(c *v1alpha1.WeChatQRCode) bool {
			return c.Status.IssuedFor != nil && c.Status.Ticket != "" && c.Status.IssuedFor.Type == v1alpha1.Permanent
		}
		return o.Spec.AccountRef != n.Spec.AccountRef || o.IsReady() != n.IsReady() || held(o) != held(n)
	},
}

type queue = workqueue.TypedRateLimitingInterface[reconcile.Request]
