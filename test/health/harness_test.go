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

package health

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/controllers"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// harness runs the real reconciler in a manager, confined to one namespace, against a fake
// WeChat over HTTP. The operator and the fake share a fake clock only the test moves, so no
// renewal falls due by itself; failures are retried on real time, which no state waits for.
type harness struct {
	t     *testing.T
	ns    string
	fake  *wechattest.Server
	c     client.Client
	clock *clocktesting.FakeClock
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	fake, err := wechattest.NewServer(wechattest.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	h := &harness{t: t, fake: fake, c: env.Client, clock: clk}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "health-"}}
	h.must(h.c.Create(context.Background(), ns))
	h.ns = ns.Name

	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                  cache.Options{DefaultNamespaces: map[string]cache.Config{h.ns: {}}},
	})
	h.must(err)
	r := controllers.New(controllers.Options{
		Client:                   mgr.GetClient(),
		APIReader:                mgr.GetAPIReader(),
		WeChat:                   wechat.New(wechat.Options{APIBaseURL: fake.URL, ImageBaseURL: fake.URL, Clock: clk}),
		Recorder:                 mgr.GetEventRecorder("wechatqrcode-controller"),
		Clock:                    clk,
		ClusterResourceNamespace: h.ns,
	})
	ctx, cancel := context.WithCancel(context.Background())
	h.must(r.SetupWithManager(ctx, mgr, controller.Options{}))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})
	return h
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

// accountSecret registers a new Official Account at the fake WeChat, stores it in a Secret of
// that name and creates the WeChatAccount of that name.
func (h *harness) accountSecret(name string) {
	h.t.Helper()
	h.secret(name, h.credentials())
	h.account(name)
}

// credentials registers a new Official Account at the fake WeChat, so that no state shares an
// access token with another, and returns its Secret's data.
func (h *harness) credentials() map[string]string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	appID, secret := "wx"+hex.EncodeToString(b), hex.EncodeToString(append(b, b...))
	h.fake.AddAccount(appID, secret)
	return map[string]string{v1alpha1.AccountKeyAppID: appID, v1alpha1.AccountKeyAppSecret: secret}
}

// secret stores data in a Secret of the test's namespace, which is also the operator's.
func (h *harness) secret(name string, data map[string]string) {
	h.t.Helper()
	h.must(h.c.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name}, StringData: data}))
}

// account creates the WeChatAccount name of the Secret name.
func (h *harness) account(name string) {
	h.t.Helper()
	h.createAccount(v1alpha1.KindWeChatAccount, name, name)
}

// createAccount creates an account of that kind using the Secret secretName, and returns it as
// the API server answered the create. A ClusterWeChatAccount goes when the test ends: the API
// server is shared by every test of the package.
func (h *harness) createAccount(kind, name, secretName string) *unstructured.Unstructured {
	h.t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{"spec": map[string]any{"secretRef": map[string]any{"name": secretName}}}}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	u.SetNamespace(namespaceOf(kind, h.ns))
	u.SetName(name)
	h.must(h.c.Create(context.Background(), u))
	if kind == v1alpha1.KindClusterWeChatAccount {
		h.t.Cleanup(func() { _ = h.c.Delete(context.Background(), u.DeepCopy()) })
	}
	return u
}

// create creates a code and returns it as the API server answered the create: before any
// reconcile.
func (h *harness) create(name string, spec v1alpha1.WeChatQRCodeSpec, finalizers ...string) *unstructured.Unstructured {
	h.t.Helper()
	code := &v1alpha1.WeChatQRCode{
		TypeMeta:   metav1.TypeMeta{APIVersion: v1alpha1.GroupVersion.String(), Kind: kindCode},
		ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: name, Finalizers: finalizers},
		Spec:       spec,
	}
	content, err := runtime.DefaultUnstructuredConverter.ToUnstructured(code)
	h.must(err)
	u := &unstructured.Unstructured{Object: content}
	h.must(h.c.Create(context.Background(), u))
	return u
}

// get reads the code as GitOps tools read it: the API server's JSON, unstructured.
func (h *harness) get(name string) *unstructured.Unstructured {
	return h.getKind(kindCode, name)
}

// getKind reads an object of the operator's kind: a cluster-scoped one by name alone.
func (h *harness) getKind(kind, name string) *unstructured.Unstructured {
	h.t.Helper()
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(v1alpha1.GroupVersion.WithKind(kind))
	h.must(h.c.Get(context.Background(), client.ObjectKey{Namespace: namespaceOf(kind, h.ns), Name: name}, u))
	return u
}

func namespaceOf(kind, ns string) string {
	if kind == v1alpha1.KindClusterWeChatAccount {
		return ""
	}
	return ns
}

// waitReady polls the code until the controller has written Ready with that status and reason
// for its current generation, and returns it as read then.
func (h *harness) waitReady(name string, want metav1.ConditionStatus, reason string) *unstructured.Unstructured {
	h.t.Helper()
	return h.waitKind(kindCode, name, want, reason)
}

// waitKind is waitReady for an object of any of the operator's kinds.
func (h *harness) waitKind(kind, name string, want metav1.ConditionStatus, reason string) *unstructured.Unstructured {
	h.t.Helper()
	var u *unstructured.Unstructured
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		u = h.getKind(kind, name)
		var obj struct {
			Status struct {
				Conditions []metav1.Condition `json:"conditions"`
			} `json:"status"`
		}
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &obj); err != nil {
			return false, err
		}
		r := meta.FindStatusCondition(obj.Status.Conditions, v1alpha1.ConditionReady)
		return r != nil && r.Status == want && r.Reason == reason && r.ObservedGeneration == u.GetGeneration(), nil
	})
	if err != nil {
		h.t.Fatalf("%s %s never Ready=%s/%s: %v; last status: %v", kind, name, want, reason, err, u.Object["status"])
	}
	return u
}

// mustHaveCondition fails unless u's condition of that type has that status and reason.
func (h *harness) mustHaveCondition(u *unstructured.Unstructured, conditionType string, status metav1.ConditionStatus, reason string) {
	h.t.Helper()
	var obj struct {
		Status struct {
			Conditions []metav1.Condition `json:"conditions"`
		} `json:"status"`
	}
	h.must(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &obj))
	if c := meta.FindStatusCondition(obj.Status.Conditions, conditionType); c == nil || c.Status != status || c.Reason != reason {
		h.t.Fatalf("%s %s: %s = %+v, want %s/%s", u.GetKind(), u.GetName(), conditionType, c, status, reason)
	}
}

func permanent(account string, scene int64) v1alpha1.WeChatQRCodeSpec {
	return v1alpha1.WeChatQRCodeSpec{AccountRef: v1alpha1.AccountReference{Name: account}, Type: v1alpha1.Permanent, Scene: v1alpha1.Scene{ID: &scene}}
}

func temporary(account string, scene int64) v1alpha1.WeChatQRCodeSpec {
	return v1alpha1.WeChatQRCodeSpec{AccountRef: v1alpha1.AccountReference{Name: account}, Type: v1alpha1.Temporary,
		Scene: v1alpha1.Scene{ID: &scene}, TTL: &metav1.Duration{Duration: 24 * time.Hour}}
}
