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

	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/destination"
)

// IndexService maps a Service (namespace/name) to the accounts whose spec.forward or spec.sink
// name it and to the codes whose spec.sink does.
//
// Services are watched, metadata only, so that a reference to a Service that is created, deleted
// or changed later resolves again at once. A requeue alone would leave a new Service unused for
// up to a minute, and tests of it would wait on real time. The metadata informer costs a name
// and a resourceVersion per Service; the Service itself is still read uncached
// (destination.Forward, destination.Sink), only when an object names it.
const IndexService = "spec.services"

func addServiceIndexes(ctx context.Context, mgr manager.Manager, common *accountsCommon) error {
	idx := mgr.GetFieldIndexer()
	for _, kind := range accountKinds {
		if err := idx.IndexField(ctx, v1alpha1.NewAccount(kind), IndexService, func(o client.Object) []string {
			a := o.(v1alpha1.Account)
			return destination.Services(common.referrer(a), a.AccountSpec().Forward, a.AccountSpec().Sink)
		}); err != nil {
			return err
		}
	}
	return idx.IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexService, func(o client.Object) []string {
		c := o.(*v1alpha1.WeChatQRCode)
		return destination.Services(destination.Referrer{Namespace: c.Namespace}, nil, c.Spec.Sink)
	})
}

// accountsNamingService maps a Service to the accounts of this kind that name it.
func (k *kindReconciler) accountsNamingService(ctx context.Context, svc client.Object) []reconcile.Request {
	list, err := listAccounts(ctx, k.r.cache, client.MatchingFields{IndexService: svc.GetNamespace() + "/" + svc.GetName()})
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the accounts naming a Service")
		return nil
	}
	return k.ofKind(list)
}

// codesNamingService maps a Service to the codes whose spec.sink names it.
func (r *WeChatQRCodeReconciler) codesNamingService(ctx context.Context, svc client.Object) []reconcile.Request {
	codes, err := r.codesOf(ctx, IndexService, svc.GetNamespace()+"/"+svc.GetName())
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the codes naming a Service")
		return nil
	}
	reqs := make([]reconcile.Request, len(codes))
	for i := range codes {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&codes[i])}
	}
	return reqs
}
