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
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// TestAccountPartChanged: the projection is rebuilt (a live read of the push config) when an
// account changes what it brings to it, and not when the account's other status moves, which it
// does with every code issued and every push.
func TestAccountPartChanged(t *testing.T) {
	base := func() *v1alpha1.WeChatAccount {
		return &v1alpha1.WeChatAccount{
			ObjectMeta: metav1.ObjectMeta{Namespace: "app", Name: "acct", Generation: 1},
			Spec:       v1alpha1.WeChatAccountSpec{Sink: &v1alpha1.Destination{URI: "http://sink"}},
			Status:     v1alpha1.WeChatAccountStatus{SinkURI: "http://sink", Codes: &v1alpha1.AccountCodes{Total: 1}},
		}
	}
	for _, c := range []struct {
		name   string
		change func(*v1alpha1.WeChatAccount)
		want   bool
	}{
		{"code counts", func(a *v1alpha1.WeChatAccount) { a.Status.Codes = &v1alpha1.AccountCodes{Total: 2, Ready: 1} }, false},
		{"push statistics", func(a *v1alpha1.WeChatAccount) {
			a.Status.Callback = &v1alpha1.AccountCallbackStatus{Path: "/wechat/wx1"}
		}, false},
		{"quota and token check", func(a *v1alpha1.WeChatAccount) { a.Status.TokenCheckTime = &metav1.Time{} }, false},
		{"forward resolved", func(a *v1alpha1.WeChatAccount) { a.Status.ForwardURL = "http://app" }, true},
		{"sink resolved elsewhere", func(a *v1alpha1.WeChatAccount) { a.Status.SinkURI = "http://other" }, true},
		{"sink batched", func(a *v1alpha1.WeChatAccount) { a.Status.SinkMaxEvents = 100 }, true},
		{"sink removed", func(a *v1alpha1.WeChatAccount) { a.Spec.Sink = nil }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := base()
			c.change(n)
			if got := accountPartChanged.Update(event.UpdateEvent{ObjectOld: base(), ObjectNew: n}); got != c.want {
				t.Errorf("got %v, want %v", got, c.want)
			}
		})
	}
}
