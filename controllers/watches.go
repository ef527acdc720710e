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
	// IndexAccountRef maps an account Secret's name to the codes of its namespace that use it.
	IndexAccountRef = "spec.accountRef.name"
	// IndexPermanentScene maps issuance.PermanentSceneKey to the Permanent codes claiming that
	// scene, in any namespace: the AppID, not the namespace, is what WeChat's scenes belong to.
	IndexPermanentScene = "spec.permanentScene"
)

func addIndexes(ctx context.Context, mgr manager.Manager) error {
	idx := mgr.GetFieldIndexer()
	if err := idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexAccountRef, func(o client.Object) []string {
		return []string{o.(*v1alpha1.WeChatQRCode).Spec.AccountRef.Name}
	}); err != nil {
		return err
	}
	return idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexPermanentScene, func(o client.Object) []string {
		if key := issuance.PermanentSceneKey(&o.(*v1alpha1.WeChatQRCode).Spec); key != "" {
			return []string{key}
		}
		return nil
	})
}

// codesUsing maps an account Secret to the codes that use it, and to the codes contesting their
// permanent scenes: a Secret's AppID decides which codes compete for a scene.
func (r *WeChatQRCodeReconciler) codesUsing(ctx context.Context, secret client.Object) []reconcile.Request {
	var codes v1alpha1.WeChatQRCodeList
	if err := r.Client.List(ctx, &codes, client.InNamespace(secret.GetNamespace()),
		client.MatchingFields{IndexAccountRef: secret.GetName()}); err != nil {
		logf.FromContext(ctx).Error(err, "listing the codes of a Secret", "secret", client.ObjectKeyFromObject(secret))
		return nil
	}
	var reqs []reconcile.Request
	for i := range codes.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&codes.Items[i])})
		reqs = append(reqs, r.rivalsOf(ctx, &codes.Items[i])...)
	}
	return reqs
}

// rivalsOf maps a code to the other codes claiming its permanent scene: its creation, deletion,
// move to another scene or loss of the ticket may settle their conflict.
func (r *WeChatQRCodeReconciler) rivalsOf(ctx context.Context, obj client.Object) []reconcile.Request {
	rivals, err := r.rivals(ctx, obj.(*v1alpha1.WeChatQRCode))
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the codes that claim the same scene", "code", client.ObjectKeyFromObject(obj))
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(rivals))
	for i := range rivals {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&rivals[i])})
	}
	return reqs
}

// rivals lists the other codes that claim code's permanent scene, whatever their account.
func (r *WeChatQRCodeReconciler) rivals(ctx context.Context, code *v1alpha1.WeChatQRCode) ([]v1alpha1.WeChatQRCode, error) {
	key := issuance.PermanentSceneKey(&code.Spec)
	if key == "" {
		return nil, nil
	}
	var claims v1alpha1.WeChatQRCodeList
	if err := r.Client.List(ctx, &claims, client.MatchingFields{IndexPermanentScene: key}); err != nil {
		return nil, err
	}
	others := claims.Items[:0]
	for _, c := range claims.Items {
		if c.Namespace != code.Namespace || c.Name != code.Name {
			others = append(others, c)
		}
	}
	return others, nil
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
