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
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	// Shown by `go test` only when a test fails (or with -v).
	logf.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	testenv.Run(m, func(e *testenv.Env) { env = e })
}

// harness runs the reconciler against the API server and a fake WeChat over HTTP, confined to
// its own namespaces. Every clock of the operator and of the fake WeChat is h.clock, which only
// the test moves: a manager's timers (RequeueAfter) run on real time, so nothing is ever due by
// itself. Tests of watches run the reconciler in a manager; tests of time run it by hand
// (newDirectHarness, h.reconcile) after stepping the clock, as cert-manager's tests do.
type harness struct {
	t     *testing.T
	ns    []string
	fake  *wechattest.Server
	c     client.Client
	clock *clocktesting.FakeClock
	// secretReads counts the reconciler's reads of Secret data from the API server, codeReads
	// its reads of WeChatQRCodes.
	secretReads, codeReads atomic.Int64
	stop        func()
	collector   *CodeCollector
	workers     int
	// direct: no code controller (the account controllers run); the test calls r.Reconcile
	// through h.reconcile.
	direct bool
	r      *WeChatQRCodeReconciler
	cache  client.Reader
	// operatorNS is the operator's namespace: ClusterWeChatAccounts' Secrets, the push config.
	operatorNS string
}

// newHarness runs one worker, so that counts of reads and calls are exact; newHarnessWorkers
// runs several, as the manager does by default.
func newHarness(t *testing.T, namespaces int) *harness {
	return newHarnessWorkers(t, namespaces, 1)
}

// newDirectHarness runs the manager's cache and indexes but no controller: the test reconciles.
func newDirectHarness(t *testing.T, namespaces int) *harness {
	return newHarnessMode(t, namespaces, 1, true)
}

func newHarnessWorkers(t *testing.T, namespaces, workers int) *harness {
	return newHarnessMode(t, namespaces, workers, false)
}

func newHarnessMode(t *testing.T, namespaces, workers int, direct bool) *harness {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	fake, err := wechattest.NewServer(wechattest.Options{Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	h := &harness{t: t, fake: fake, c: env.Client, workers: workers, clock: clk, direct: direct}
	for range namespaces {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "qr-"}}
		h.must(h.c.Create(context.Background(), ns))
		h.ns = append(h.ns, ns.Name)
	}
	h.operatorNS = h.ns[0]
	h.start()
	t.Cleanup(func() { h.stop() })
	return h
}

// start runs a new manager with a new WeChat client, as a restarted process would.
func (h *harness) start() {
	h.t.Helper()
	namespaces := map[string]cache.Config{}
	for _, ns := range h.ns {
		namespaces[ns] = cache.Config{}
	}
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme:                 env.Scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Cache:                  cache.Options{DefaultNamespaces: namespaces},
	})
	h.must(err)
	rs := New(Options{
		Client:                   mgr.GetClient(),
		APIReader:                &countingReader{Reader: mgr.GetAPIReader(), secretReads: &h.secretReads, codeReads: &h.codeReads},
		WeChat:                   wechat.New(wechat.Options{APIBaseURL: h.fake.URL, ImageBaseURL: h.fake.URL, Clock: h.clock}),
		Recorder:                 mgr.GetEventRecorder("wechatqrcode-controller"),
		Clock:                    h.clock,
		ClusterResourceNamespace: h.operatorNS,
		QuotaInterval:            time.Hour,
	})
	ctx, cancel := context.WithCancel(context.Background())
	opts := controller.Options{MaxConcurrentReconciles: h.workers}
	if h.direct {
		h.must(rs.addIndexes(ctx, mgr))
		h.must(rs.Accounts.SetupWithManager(mgr, opts))
		h.must(rs.PushConfig.SetupWithManager(mgr))
	} else {
		h.must(rs.SetupWithManager(ctx, mgr, opts))
	}
	h.r, h.cache = rs.Codes, mgr.GetCache()
	h.collector = NewCodeCollector(mgr.GetCache(), mgr.Elected())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		h.t.Fatal("cache never synced")
	}
	h.stop = func() {
		cancel()
		if err := <-done; err != nil {
			h.t.Errorf("manager: %v", err)
		}
	}
}

// reconcile runs one reconcile of k, as the workqueue would, once the cache holds what the API
// server holds (the reconciler reads the cache, and the test just wrote through the API server).
func (h *harness) reconcile(k types.NamespacedName) (ctrl.Result, *v1alpha1.WeChatQRCode) {
	h.t.Helper()
	if !h.direct {
		h.t.Fatal("reconcile by hand while a controller runs")
	}
	code := &v1alpha1.WeChatQRCode{}
	h.cached(k, code)
	// The account, once its controller has checked it with its Secret as it is now.
	acct := &v1alpha1.WeChatAccount{}
	h.waitAccount(types.NamespacedName{Namespace: k.Namespace, Name: code.Spec.AccountRef.Name}, acct, "checked with its current Secret", func(v1alpha1.Account) bool {
		secret := &corev1.Secret{}
		if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: k.Namespace, Name: acct.Spec.SecretRef.Name}, secret); err != nil {
			return apierrors.IsNotFound(err)
		}
		r := acct.Status.Condition(v1alpha1.ConditionReady)
		return r != nil && r.Reason != "" && acct.Status.ObservedSecretVersion == secret.ResourceVersion
	})
	h.cached(client.ObjectKeyFromObject(acct), acct)
	res, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: k})
	h.must(err)
	h.must(h.c.Get(context.Background(), k, code))
	return res, code
}

// cached waits until the cache holds the API server's version of the object k names, or until
// it is gone from both. The API server is read again each time: a controller may write the object
// meanwhile (an account's status follows its codes), and a cache that has seen a newer version than
// a first read never again holds that one.
func (h *harness) cached(k types.NamespacedName, obj client.Object) {
	h.t.Helper()
	live := obj.DeepCopyObject().(client.Object)
	var liveErr error
	err := wait.PollUntilContextTimeout(context.Background(), 10*time.Millisecond, 10*time.Second, true, func(ctx context.Context) (bool, error) {
		liveErr = h.c.Get(ctx, k, live)
		cachedErr := h.cache.Get(ctx, k, obj)
		if liveErr != nil || cachedErr != nil {
			return apierrors.IsNotFound(liveErr) && apierrors.IsNotFound(cachedErr), nil
		}
		return obj.GetResourceVersion() == live.GetResourceVersion(), nil
	})
	if err != nil {
		h.t.Fatalf("the cache never caught up with %s: %v (API server: %v)", k, err, liveErr)
	}
}

// step moves every clock of the test forward.
func (h *harness) step(d time.Duration) { h.clock.Step(d) }

type countingReader struct {
	client.Reader
	secretReads, codeReads *atomic.Int64
}

func (r *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	switch obj.(type) {
	case *corev1.Secret:
		if key.Name != pushconfig.SecretName {
			r.secretReads.Add(1)
		}
	case *v1alpha1.WeChatQRCode:
		r.codeReads.Add(1)
	}
	return r.Reader.Get(ctx, key, obj, opts...)
}

func (h *harness) must(err error) {
	h.t.Helper()
	if err != nil {
		h.t.Fatal(err)
	}
}

func randomHex(n int) string {
	b := make([]byte, n/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// account registers an Official Account at the fake WeChat and returns its credentials.
func (h *harness) account() (appID, secret string) {
	appID, secret = "wx"+randomHex(16), randomHex(32)
	h.fake.AddAccount(appID, secret)
	return appID, secret
}

// accountSecret registers an account at the fake WeChat, stores it in a Secret and creates the
// WeChatAccount of that Secret, both named name.
func (h *harness) accountSecret(ns, name string) (appID, secret string) {
	h.t.Helper()
	appID, secret = h.account()
	h.secret(ns, name, map[string]string{v1alpha1.AccountKeyAppID: appID, v1alpha1.AccountKeyAppSecret: secret})
	h.wechatAccount(ns, name, name)
	return appID, secret
}

// wechatAccount creates a WeChatAccount (a ClusterWeChatAccount when ns is "") using the Secret
// secretName; a ClusterWeChatAccount is deleted when the test ends (the API server is shared).
func (h *harness) wechatAccount(ns, name, secretName string, mutate ...func(*v1alpha1.WeChatAccountSpec)) v1alpha1.Account {
	h.t.Helper()
	spec := v1alpha1.WeChatAccountSpec{SecretRef: v1alpha1.SecretReference{Name: secretName}}
	for _, m := range mutate {
		m(&spec)
	}
	var a v1alpha1.Account = &v1alpha1.WeChatAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if ns == "" {
		a = &v1alpha1.ClusterWeChatAccount{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		h.t.Cleanup(func() { _ = h.c.Delete(context.Background(), a) })
	}
	h.must(h.c.Create(context.Background(), a))
	return a
}

// waitAccount polls the account until cond holds, and fails with the last status seen.
func (h *harness) waitAccount(k types.NamespacedName, acct v1alpha1.Account, what string, cond func(v1alpha1.Account) bool) {
	h.t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		if err := h.c.Get(ctx, k, acct); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(acct), nil
	})
	if err != nil {
		st, _ := json.MarshalIndent(acct.AccountStatus(), "", "  ")
		h.t.Fatalf("%s: account %s never %s: %v\nlast status: %s", h.t.Name(), k, what, err, st)
	}
}

// accountReadyIs is an account condition check for waitAccount.
func accountReadyIs(status metav1.ConditionStatus, reason string) func(v1alpha1.Account) bool {
	return func(a v1alpha1.Account) bool {
		r := a.AccountStatus().Condition(v1alpha1.ConditionReady)
		return r != nil && r.Status == status && r.Reason == reason && r.ObservedGeneration == a.GetGeneration()
	}
}

func (h *harness) secret(ns, name string, data map[string]string) *corev1.Secret {
	h.t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data}
	h.must(h.c.Create(context.Background(), s))
	return s
}

func (h *harness) updateSecret(ns, name string, mutate func(*corev1.Secret)) {
	h.t.Helper()
	s := &corev1.Secret{}
	h.must(h.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s))
	mutate(s)
	h.must(h.c.Update(context.Background(), s))
}

func temporarySpec(account string, scene v1alpha1.Scene, ttl, renewBefore time.Duration) v1alpha1.WeChatQRCodeSpec {
	spec := v1alpha1.WeChatQRCodeSpec{
		AccountRef: v1alpha1.AccountReference{Name: account},
		Type:       v1alpha1.Temporary, Scene: scene, TTL: &metav1.Duration{Duration: ttl},
	}
	if renewBefore > 0 {
		spec.RenewBefore = &metav1.Duration{Duration: renewBefore}
	}
	return spec
}

func permanentSpec(account string, scene v1alpha1.Scene) v1alpha1.WeChatQRCodeSpec {
	return v1alpha1.WeChatQRCodeSpec{AccountRef: v1alpha1.AccountReference{Name: account}, Type: v1alpha1.Permanent, Scene: scene}
}

func idScene(id int64) v1alpha1.Scene  { return v1alpha1.Scene{ID: &id} }
func strScene(s string) v1alpha1.Scene { return v1alpha1.Scene{Str: &s} }
func key(ns, name string) types.NamespacedName {
	return types.NamespacedName{Namespace: ns, Name: name}
}

func (h *harness) create(ns, name string, spec v1alpha1.WeChatQRCodeSpec) {
	h.t.Helper()
	h.must(h.c.Create(context.Background(), &v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}))
}

// waitFor polls the code until cond holds, and fails with the last status seen.
func (h *harness) waitFor(k types.NamespacedName, timeout time.Duration, what string, cond func(*v1alpha1.WeChatQRCode) bool) *v1alpha1.WeChatQRCode {
	h.t.Helper()
	code := &v1alpha1.WeChatQRCode{}
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		if err := h.c.Get(ctx, k, code); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return cond(code), nil
	})
	if err != nil {
		st, _ := json.MarshalIndent(code.Status, "", "  ")
		h.t.Fatalf("%s: %s never %s: %v\nlast status: %s", h.t.Name(), k, what, err, st)
	}
	return code
}

func readyIs(status metav1.ConditionStatus, reason string) func(*v1alpha1.WeChatQRCode) bool {
	return func(c *v1alpha1.WeChatQRCode) bool {
		r := c.ReadyCondition()
		return r != nil && r.Status == status && r.Reason == reason && r.ObservedGeneration == c.Generation
	}
}

func (h *harness) waitReady(k types.NamespacedName, status metav1.ConditionStatus, reason string) *v1alpha1.WeChatQRCode {
	h.t.Helper()
	return h.waitFor(k, 30*time.Second, fmt.Sprintf("Ready=%s/%s", status, reason), readyIs(status, reason))
}

func readyCondition(c *v1alpha1.WeChatQRCode) metav1.Condition {
	if r := c.ReadyCondition(); r != nil {
		return *r
	}
	return metav1.Condition{}
}

// events lists the Events recorded about a code.
func (h *harness) events(k types.NamespacedName) []eventsv1.Event {
	h.t.Helper()
	var list eventsv1.EventList
	h.must(h.c.List(context.Background(), &list, client.InNamespace(k.Namespace)))
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == k.Name && e.Regarding.Kind == "WeChatQRCode" {
			out = append(out, e)
		}
	}
	return out
}

// accountEvents lists the Events of that reason recorded about a WeChatAccount.
func (h *harness) accountEvents(k types.NamespacedName, reason string) []eventsv1.Event {
	h.t.Helper()
	var list eventsv1.EventList
	h.must(h.c.List(context.Background(), &list, client.InNamespace(k.Namespace)))
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.Name == k.Name && e.Regarding.Kind == v1alpha1.KindWeChatAccount && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out
}

// waitEvent waits for an Event of that reason and type about the code whose note has every part.
func (h *harness) waitEvent(k types.NamespacedName, eventType, reason string, noteParts ...string) eventsv1.Event {
	h.t.Helper()
	var found eventsv1.Event
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		for _, e := range h.events(k) {
			if e.Reason == reason && e.Type == eventType && containsAll(e.Note, noteParts...) {
				found = e
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		h.t.Fatalf("no %s Event %s about %s with %q; events: %+v", eventType, reason, k, noteParts, summarize(h.events(k)))
	}
	return found
}

func summarize(events []eventsv1.Event) []string {
	var out []string
	for _, e := range events {
		out = append(out, e.Type+"/"+e.Reason+": "+e.Note)
	}
	return out
}

func containsAll(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// wechatCalls counts every call the fake WeChat received.
func (h *harness) wechatCalls() int {
	n := 0
	for _, e := range []string{wechattest.EndpointCreate, wechattest.EndpointStableToken, wechattest.EndpointToken, wechattest.EndpointQuotaGet} {
		n += h.fake.Calls(e)
	}
	return n
}

// reconciles reads controller-runtime's count of finished reconciles of this controller.
func reconciles(t *testing.T) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "wechatqrcode" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}
