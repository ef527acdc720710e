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
	"time"

	"golang.org/x/time/rate"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
)

// WeChatAPI is what the manager's reconcilers need of a WeChat client (*wechat.Client).
type WeChatAPI interface {
	QRCodeIssuer
	AccountChecker
	TagAPI
}

// Options wire the manager's reconcilers.
type Options struct {
	// Client reads from the informer cache and writes.
	Client client.Client
	// APIReader reads from the API server: account Secret data (never cached), a code just
	// before WeChat is asked for its ticket, the projected push config.
	APIReader client.Reader
	WeChat    WeChatAPI
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// ClusterResourceNamespace holds the Secrets of ClusterWeChatAccounts and the projected push
	// config: the operator's namespace.
	ClusterResourceNamespace string
	// QuotaInterval is how often each Ready account's qrcode/create quota is read.
	QuotaInterval time.Duration
}

// Reconcilers are the manager's reconcilers. They share the field indexes, one reader of
// account Secrets and the permanent budgets.
type Reconcilers struct {
	Codes      *WeChatQRCodeReconciler
	Accounts   *AccountReconciler
	PushConfig *PushConfigReconciler
}

// New wires the reconcilers.
func New(o Options) *Reconcilers {
	common := &accountsCommon{
		cache:            o.Client,
		secrets:          newSecrets(o.Client, o.APIReader),
		clusterNamespace: o.ClusterResourceNamespace,
		budget:           newBudget(),
	}
	return &Reconcilers{
		Codes: &WeChatQRCodeReconciler{Client: o.Client, APIReader: o.APIReader, Issuer: o.WeChat,
			Recorder: o.Recorder, Clock: o.Clock, accountsCommon: common,
			fresh: newFreshness(o.APIReader), normalEvents: rate.NewLimiter(normalEventRate, normalEventBurst)},
		Accounts: &AccountReconciler{Client: o.Client, APIReader: o.APIReader, Checker: o.WeChat, TagAPI: o.WeChat, Recorder: o.Recorder, Clock: o.Clock,
			QuotaInterval: o.QuotaInterval, accountsCommon: common},
		PushConfig: &PushConfigReconciler{Client: o.Client, APIReader: o.APIReader, accountsCommon: common, published: make(chan event.GenericEvent, 1)},
	}
}

func (rs *Reconcilers) addIndexes(ctx context.Context, mgr ctrl.Manager) error {
	if err := addIndexes(ctx, mgr); err != nil {
		return err
	}
	if err := addTagIndexes(ctx, mgr); err != nil {
		return err
	}
	return addServiceIndexes(ctx, mgr, rs.Accounts.accountsCommon)
}

// SetupWithManager registers the field indexes and every reconciler.
func (rs *Reconcilers) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	if err := rs.addIndexes(ctx, mgr); err != nil {
		return err
	}
	if err := rs.Codes.SetupWithManager(mgr, opts); err != nil {
		return err
	}
	if err := rs.Accounts.SetupWithManager(mgr, opts); err != nil {
		return err
	}
	return rs.PushConfig.SetupWithManager(mgr)
}
