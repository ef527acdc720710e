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

package callback

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/controllers"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// TestSecretFromFiles: an account Secret made with `kubectl create secret generic --from-file`
// from files that end in a newline. The manager trims the values, so the code becomes Ready; the
// callback server must trim them the same way, or its account is "wx…\n", /wechat/<AppID> never
// matches and every scan of a Ready code is refused 404 unknown_account.
func TestSecretFromFiles(t *testing.T) {
	f := newFixture(t)
	appID := "wxfiles" + f.ns[strings.LastIndex(f.ns, "-"):]
	fw := fakeWeChat(t, appID)
	const token = "tok-from-file"
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "official-account"}, Data: map[string][]byte{
		qrv1alpha1.AccountKeyAppID:          []byte(appID + "\n"),
		qrv1alpha1.AccountKeyAppSecret:      []byte("secret-" + appID + "\n"),
		qrv1alpha1.AccountKeyToken:          []byte(token + "\n"),
		qrv1alpha1.AccountKeyEncodingAESKey: []byte(testKey + "\n"),
	}}
	if err := f.c.Create(f.ctx, secret); err != nil {
		t.Fatal(err)
	}
	f.runReconciler(fw)
	r := f.replica(Options{Accounts: []types.NamespacedName{client.ObjectKeyFromObject(secret)}})

	code := &qrv1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: f.ns, Name: "from-files"}, Spec: qrv1alpha1.WeChatQRCodeSpec{
		AccountRef: qrv1alpha1.AccountReference{Name: secret.Name}, Type: qrv1alpha1.Permanent, Scene: qrv1alpha1.Scene{ID: ptr.To[int64](31)},
	}}
	if err := f.c.Create(f.ctx, code); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the code to be Ready", func() bool {
		if err := f.c.Get(f.ctx, client.ObjectKeyFromObject(code), code); err != nil {
			t.Fatal(err)
		}
		return meta.IsStatusConditionTrue(code.Status.Conditions, qrv1alpha1.ConditionReady)
	})
	waitIndexed(t, []*replica{r}, appID, code.Status.Ticket)

	sim := &wechattest.Pusher{URL: r.url + PathPrefix + appID, Token: token, EncodingAESKey: testKey,
		AppID: appID, AccountID: "gh_0123456789ab", Mode: wechattest.PushSafe, Server: fw}
	if _, err := sim.Scan(f.ctx, code.Status.Ticket, "o-from-files", false); err != nil {
		t.Fatal(err)
	}
	f.wantCounts(code, "1", "1")
}

// runReconciler runs the manager's reconciler, wired as cmd/manager wires it, on f's namespace
// only (the other tests' codes carry statuses no WeChat issued) against the fake WeChat fw.
func (f *fixture) runReconciler(fw *wechattest.Server) {
	f.t.Helper()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{f.ns: {}}},
	})
	if err != nil {
		f.t.Fatal(err)
	}
	r := controllers.New(controllers.Options{
		Client:                   mgr.GetClient(),
		APIReader:                mgr.GetAPIReader(),
		WeChat:                   wechat.New(wechat.Options{APIBaseURL: fw.URL, ImageBaseURL: fw.URL}),
		Recorder:                 mgr.GetEventRecorder("wechatqrcode-controller"),
		Clock:                    clock.RealClock{},
		ClusterResourceNamespace: f.ns,
	})
	ctx, cancel := context.WithCancel(context.Background())
	if err := r.SetupWithManager(ctx, mgr, controller.Options{}); err != nil {
		cancel()
		f.t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	f.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			f.t.Errorf("manager: %v", err)
		}
	})
}
