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
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/accountstate"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
)

// PushConfigReconciler projects the push material of every account (AppID, token,
// encodingAESKey, previousEncodingAESKey; never the AppSecret) into the one Secret the callback
// server may read, pushconfig.SecretName in the operator's namespace. Every event leads to the
// same single request: the projection is rebuilt from the cache whole, and written only when its
// content changed.
type PushConfigReconciler struct {
	Client    client.Client
	APIReader client.Reader

	*accountsCommon

	// tagging is the tagging endpoint this manager serves, nil while it serves none; published
	// tells the reconciler it changed.
	tagging   atomic.Pointer[pushconfig.Tagging]
	published chan event.GenericEvent
}

// PublishTagging makes t the tagging endpoint of the push config: the callback servers' deliverers
// send the scans of codes with spec.tags there.
func (r *PushConfigReconciler) PublishTagging(t *pushconfig.Tagging) {
	r.tagging.Store(t)
	select {
	case r.published <- event.GenericEvent{Object: &corev1.Secret{}}:
	default:
	}
}

func (r *PushConfigReconciler) key() types.NamespacedName {
	return types.NamespacedName{Namespace: r.clusterNamespace, Name: pushconfig.SecretName}
}

// SetupWithManager watches both kinds of account (created, deleted, or changed in what they
// bring to the projection) and every Secret by metadata (an account's Secret edited, which may
// bring a new AppID and settle or start a duplicate; the projection itself edited or deleted by
// hand). Not the accounts' other status updates: their code counts move with every code
// issued and their push statistics with every push, and each reconcile reads the projection
// from the API server.
func (r *PushConfigReconciler) SetupWithManager(mgr ctrl.Manager) error {
	one := handler.EnqueueRequestsFromMapFunc(func(context.Context, client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: r.key()}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("pushconfig").
		Watches(v1alpha1.NewAccount(v1alpha1.KindWeChatAccount), one, builder.WithPredicates(accountPartChanged)).
		Watches(v1alpha1.NewAccount(v1alpha1.KindClusterWeChatAccount), one, builder.WithPredicates(accountPartChanged)).
		WatchesMetadata(&corev1.Secret{}, one).
		WatchesRawSource(source.Channel(r.published, one)).
		Complete(r)
}

// accountPartChanged lets through the account updates that change what the account brings to
// the projection besides its Secret's material.
var accountPartChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return accountPart(e.ObjectOld.(v1alpha1.Account)) != accountPart(e.ObjectNew.(v1alpha1.Account))
	},
}

// Reconcile writes the projection if its content changed.
func (r *PushConfigReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	accounts, err := r.project(ctx)
	if err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, pushconfig.WriteConfig(ctx, r.APIReader, r.Client, r.clusterNamespace, accounts, r.tagging.Load())
}

// project is the push material of every account that has some (an AppID and a token), the
// younger of two accounts with the same AppID left out as the account reconciler refuses it.
// An account need not be Ready: pushes are verified with the token alone, and an account whose
// API credentials fail (40164, say) still receives its followers' scans.
func (r *PushConfigReconciler) project(ctx context.Context) ([]pushconfig.Account, error) {
	all, err := listAccounts(ctx, r.cache)
	if err != nil {
		return nil, err
	}
	byAppID := map[string][]accountstate.Member{}
	entries := map[accountstate.Member]pushconfig.Account{}
	for _, a := range all {
		sec, err := r.secrets.get(ctx, r.secretKey(a))
		switch {
		case isProblem(err):
			continue
		case err != nil:
			return nil, err
		}
		c := sec.creds
		if c.AppID == "" || c.Token == "" {
			continue
		}
		m := member(a)
		byAppID[c.AppID] = append(byAppID[c.AppID], m)
		entry := accountPart(a)
		entry.AppID, entry.Token = c.AppID, c.Token
		entry.EncodingAESKey, entry.PreviousEncodingAESKey = c.EncodingAESKey, c.PreviousEncodingAESKey
		entries[m] = entry
	}
	var out []pushconfig.Account
	for _, members := range byAppID {
		out = append(out, entries[accountstate.Oldest(members)])
	}
	return out, nil
}

// forwardTimeout is spec.forward.timeout, 0 (the callback server's default) when unset.
// accountPart is an account's entry in the projection without its Secret's material: what the
// account resource itself decides (its creation time decides too, among accounts of one AppID,
// and never changes).
func accountPart(a v1alpha1.Account) pushconfig.Account {
	spec, st := a.AccountSpec(), a.AccountStatus()
	return pushconfig.Account{Ref: accountRef(a),
		ForwardURL: st.ForwardURL, ForwardTimeout: forwardTimeout(spec),
		Sink: spec.Sink != nil, SinkRetention: sinkRetention(spec.Sink), SinkURI: st.SinkURI, SinkMaxEvents: st.SinkMaxEvents}
}

func forwardTimeout(spec *v1alpha1.WeChatAccountSpec) time.Duration {
	if spec.Forward == nil || spec.Forward.Timeout == nil {
		return 0
	}
	return spec.Forward.Timeout.Duration
}

// sinkRetention is how long the callback server keeps the events of an account's sink; none
// without a sink, whose scans keep no event.
func sinkRetention(sink *v1alpha1.Destination) time.Duration {
	if sink == nil {
		return 0
	}
	return sink.RetentionOf()
}
