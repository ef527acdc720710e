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

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
)

// Field indexes on WeChatQRCode.
const (
	// IndexAccountRef maps an account resource (pushconfig.Ref's string) to the codes using it.
	IndexAccountRef = "spec.accountRef"
	// IndexPermanentScene maps issuance.PermanentSceneKey to the Permanent codes claiming that
	// scene, in any namespace: the AppID, not the namespace, is what WeChat's scenes belong to.
	IndexPermanentScene = "spec.permanentScene"
	// IndexPreviousPermanentScene maps issuance.PermanentSceneKey to the codes that keep a
	// previous ticket of that permanent scene, until another code claims it.
	IndexPreviousPermanentScene = "status.previousPermanentScene"
	// IndexWeChatAccountNotFound maps a name to the codes whose WeChatAccount of that name does
	// not exist: their message says whether a ClusterWeChatAccount of that name does, so its
	// creation or deletion concerns them. Only such codes are in it.
	IndexWeChatAccountNotFound = "status.weChatAccountNotFound"
)

// Field indexes on both kinds of account.
const (
	// IndexSecretRef maps a Secret's name to the accounts that use it.
	IndexSecretRef = "spec.secretRef.name"
	// IndexAppID maps an AppID to the accounts whose status shows it.
	IndexAppID = "status.appID"
)

func addIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	for _, kind := range accountKinds {
		if err := idx.IndexField(ctx, v1alpha1.NewAccount(kind), IndexSecretRef, func(o client.Object) []string {
			return []string{o.(v1alpha1.Account).AccountSpec().SecretRef.Name}
		}); err != nil {
			return err
		}
		if err := idx.IndexField(ctx, v1alpha1.NewAccount(kind), IndexAppID, func(o client.Object) []string {
			if id := o.(v1alpha1.Account).AccountStatus().AppID; id != "" {
				return []string{id}
			}
			return nil
		}); err != nil {
			return err
		}
	}
	if err := idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexAccountRef, func(o client.Object) []string {
		c := o.(*v1alpha1.WeChatQRCode)
		return []string{refOf(c.Namespace, c.Spec.AccountRef).String()}
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexPermanentScene, func(o client.Object) []string {
		spec := &o.(*v1alpha1.WeChatQRCode).Spec
		if key := issuance.PermanentSceneKey(spec.Type, spec.Scene); key != "" {
			return []string{key}
		}
		return nil
	}); err != nil {
		return err
	}
	if err := idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexPreviousPermanentScene, func(o client.Object) []string {
		return issuance.PreviousPermanentSceneKeys(&o.(*v1alpha1.WeChatQRCode).Status)
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexWeChatAccountNotFound, func(o client.Object) []string {
		c := o.(*v1alpha1.WeChatQRCode)
		if r := c.ReadyCondition(); r != nil && r.Reason == v1alpha1.ReasonAccountNotFound && c.Spec.AccountRef.KindOrDefault() == v1alpha1.KindWeChatAccount {
			return []string{c.Spec.AccountRef.Name}
		}
		return nil
	})
}

// codesOfAccount maps an account to the codes that use it, and to the codes contesting their
// permanent scenes: the account's AppID decides which codes compete for a scene.
func (r *WeChatQRCodeReconciler) codesOfAccount(ctx context.Context, obj client.Object) []reconcile.Request {
	codes, err := r.codesOf(ctx, IndexAccountRef, accountRef(obj.(v1alpha1.Account)).String())
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the codes of an account", "account", client.ObjectKeyFromObject(obj))
		return nil
	}
	var reqs []reconcile.Request
	for i := range codes {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&codes[i])})
		reqs = append(reqs, r.rivalsOf(ctx, &codes[i])...)
	}
	if obj.GetNamespace() == "" {
		lost, err := r.codesOf(ctx, IndexWeChatAccountNotFound, obj.GetName())
		if err != nil {
			logf.FromContext(ctx).Error(err, "listing the codes whose WeChatAccount does not exist", "name", obj.GetName())
		}
		for i := range lost {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&lost[i])})
		}
	}
	return reqs
}

// codesRefusedByBudget maps an account to its codes that its permanent budget refused: a freed
// unit may let one through. The others have nothing to learn from the count.
func (r *WeChatQRCodeReconciler) codesRefusedByBudget(ctx context.Context, obj client.Object) []reconcile.Request {
	codes, err := r.codesOf(ctx, IndexAccountRef, accountRef(obj.(v1alpha1.Account)).String())
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the codes of an account", "account", client.ObjectKeyFromObject(obj))
		return nil
	}
	var reqs []reconcile.Request
	for i := range codes {
		if r := codes[i].ReadyCondition(); r != nil && r.Reason == v1alpha1.ReasonPermanentCodeLimit {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&codes[i])})
		}
	}
	return reqs
}

// accountUsabilityChanged lets through the account events that change whether and how codes may
// use it: creation, deletion, a spec change, its Ready condition, its Secret's version or AppID.
// Not its counts, quota or the callback server's push statistics.
var accountUsabilityChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(v1alpha1.Account), e.ObjectNew.(v1alpha1.Account)
		os, ns := o.AccountStatus(), n.AccountStatus()
		return o.GetGeneration() != n.GetGeneration() || os.AppID != ns.AppID ||
			os.ObservedSecretVersion != ns.ObservedSecretVersion ||
			!equality.Semantic.DeepEqual(os.Condition(v1alpha1.ConditionReady), ns.Condition(v1alpha1.ConditionReady))
	},
}

// permanentCountChanged lets through a change of the account's permanent count.
var permanentCountChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !equality.Semantic.DeepEqual(e.ObjectOld.(v1alpha1.Account).AccountStatus().PermanentCodes,
			e.ObjectNew.(v1alpha1.Account).AccountStatus().PermanentCodes)
	},
}

// rivalsOf maps a code to the other codes its permanent scene concerns: those claiming it (its
// creation, deletion, move to another scene or loss of the ticket may settle their conflict) and
// those keeping a previous ticket of it (its claim makes them let the ticket go).
func (r *WeChatQRCodeReconciler) rivalsOf(ctx context.Context, obj client.Object) []reconcile.Request {
	code := obj.(*v1alpha1.WeChatQRCode)
	key := issuance.PermanentSceneKey(code.Spec.Type, code.Spec.Scene)
	var reqs []reconcile.Request
	for _, index := range []string{IndexPermanentScene, IndexPreviousPermanentScene} {
		others, err := r.codesClaiming(ctx, code, index, []string{key})
		if err != nil {
			logf.FromContext(ctx).Error(err, "listing the codes that concern the same scene", "code", client.ObjectKeyFromObject(obj))
			return nil
		}
		for i := range others {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&others[i])})
		}
	}
	return reqs
}

// neighbours lists the other codes that claim, whatever their account, the permanent scene code
// claims or one it keeps a previous ticket of.
func (r *WeChatQRCodeReconciler) neighbours(ctx context.Context, code *v1alpha1.WeChatQRCode) ([]v1alpha1.WeChatQRCode, error) {
	keys := append([]string{issuance.PermanentSceneKey(code.Spec.Type, code.Spec.Scene)}, issuance.PreviousPermanentSceneKeys(&code.Status)...)
	return r.codesClaiming(ctx, code, IndexPermanentScene, keys)
}

// codesOf lists the codes found under key in index.
func (r *WeChatQRCodeReconciler) codesOf(ctx context.Context, index, key string) ([]v1alpha1.WeChatQRCode, error) {
	var list v1alpha1.WeChatQRCodeList
	if err := r.Client.List(ctx, &list, client.MatchingFields{index: key}); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// codesClaiming lists the codes other than code found under any of keys in index.
func (r *WeChatQRCodeReconciler) codesClaiming(ctx context.Context, code *v1alpha1.WeChatQRCode, index string, keys []string) ([]v1alpha1.WeChatQRCode, error) {
	var out []v1alpha1.WeChatQRCode
	seen := map[types.NamespacedName]bool{client.ObjectKeyFromObject(code): true}
	for _, key := range keys {
		if key == "" {
			continue
		}
		list, err := r.codesOf(ctx, index, key)
		if err != nil {
			return nil, err
		}
		for _, c := range list {
			if k := client.ObjectKeyFromObject(&c); !seen[k] {
				seen[k] = true
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// claimChanged lets through the code events that can start or settle a scene conflict: creation,
// deletion, a spec change, a change of the ticket held. Not the callback server's annotation
// updates, which are most of the traffic.
var claimChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*v1alpha1.WeChatQRCode), e.ObjectNew.(*v1alpha1.WeChatQRCode)
		return o.Generation != n.Generation || o.Status.Ticket != n.Status.Ticket ||
			!equality.Semantic.DeepEqual(o.Status.IssuedFor, n.Status.IssuedFor)
	},
}

// renewRequested lets through a change of the renew-requested-at annotation, which leaves the
// generation alone.
var renewRequested = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetAnnotations()[v1alpha1.AnnotationRenewRequestedAt] != e.ObjectNew.GetAnnotations()[v1alpha1.AnnotationRenewRequestedAt]
	},
}
