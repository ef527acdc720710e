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
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

func TestFresh(t *testing.T) {
	for _, c := range []struct {
		name                   string
		cached, barrier, floor string
		pending, want          bool
	}{
		{"newer than the barrier, nothing written", "120", "100", "", false, true},
		{"at the barrier", "100", "100", "", false, true},
		{"older than the barrier: an earlier leader may have written since", "99", "100", "", false, false},
		{"a longer number is newer", "1000", "999", "", false, true},
		{"shows this process's last write", "130", "100", "130", true, true},
		{"newer than this process's last write", "131", "100", "130", true, true},
		{"older than this process's last write", "129", "100", "130", true, false},
		{"a write whose outcome is unknown", "200", "100", "", true, false},
		{"no barrier read", "120", "", "", false, false},
		{"a version that does not compare", "abc", "100", "", false, false},
	} {
		if got := fresh(c.cached, c.barrier, c.floor, c.pending); got != c.want {
			t.Errorf("%s: fresh(%q, %q, %q, %v) = %v, want %v", c.name, c.cached, c.barrier, c.floor, c.pending, got, c.want)
		}
	}
}

// TestFloorsForgottenOnceCached: a floor lasts until the cache shows the write, or the code goes;
// a write whose outcome is unknown lasts until a live read replaces it.
func TestFloorsForgottenOnceCached(t *testing.T) {
	f := newFreshness(nil)
	code := func(name, rv string) *v1alpha1.WeChatQRCode {
		return &v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: name, ResourceVersion: rv}}
	}
	a, b, c := types.NamespacedName{Namespace: "ns", Name: "a"}, types.NamespacedName{Namespace: "ns", Name: "b"}, types.NamespacedName{Namespace: "ns", Name: "c"}
	f.wrote(a, "10")
	f.unknown(b)
	f.wrote(c, "30")
	h := f.handler()
	h.OnUpdate(nil, code("a", "9"))
	h.OnUpdate(nil, code("b", "50"))
	if len(f.floor) != 3 {
		t.Fatalf("floors %v: an older copy and an unknown write forgot one", f.floor)
	}
	h.OnUpdate(nil, code("a", "10"))
	h.OnDelete(toolscache.DeletedFinalStateUnknown{Key: "ns/c", Obj: code("c", "20")})
	if _, ok := f.floor[b]; len(f.floor) != 1 || !ok {
		t.Fatalf("floors %v, want only b's", f.floor)
	}
	f.wrote(b, "60")
	h.OnAdd(code("b", "61"), false)
	if len(f.floor) != 0 {
		t.Fatalf("floors %v, want none", f.floor)
	}
}

// staleCache answers the reconciler's reads of one code with a copy the API server has moved
// past, as an informer that lags does.
type staleCache struct {
	client.Client
	stale *v1alpha1.WeChatQRCode
}

func (c staleCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if code, ok := obj.(*v1alpha1.WeChatQRCode); ok && key == client.ObjectKeyFromObject(c.stale) {
		c.stale.DeepCopyInto(code)
		return nil
	}
	return c.Client.Get(ctx, key, obj, opts...)
}

// TestStaleCopyIsReadAgain: a copy older than this process's last status write of the code, or
// than the start of its term (an earlier leader's write), is read again from the API server and
// asks WeChat nothing; a copy newer than both decides without that read.
func TestStaleCopyIsReadAgain(t *testing.T) {
	h := newDirectHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	// The first issuance of the term reads the barrier: every code created after it is newer.
	h.create(ns, "first", temporarySpec("acct", idScene(4), time.Hour, 0))
	h.reconcile(key(ns, "first"))
	k := key(ns, "poster")
	h.create(ns, k.Name, temporarySpec("acct", idScene(5), time.Hour, 0))
	stale := &v1alpha1.WeChatQRCode{}
	h.cached(k, stale)
	h.reconcile(k)
	if n := h.fake.Calls(wechattest.EndpointCreate); n != 2 {
		t.Fatalf("%d qrcode/create for two first tickets", n)
	}

	staleAgain := func(what string) {
		t.Helper()
		reads := h.codeReads.Load()
		cache := h.r.Client
		h.r.Client = staleCache{Client: cache, stale: stale}
		_, err := h.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: k})
		h.r.Client = cache
		h.must(err)
		if n := h.fake.Calls(wechattest.EndpointCreate); n != 2 {
			t.Errorf("%s: %d qrcode/create, want still 2", what, n)
		}
		if n := h.codeReads.Load() - reads; n != 1 {
			t.Errorf("%s: %d live reads of the code, want 1", what, n)
		}
	}
	staleAgain("a copy from before this process's own write")
	h.stop()
	h.start()
	staleAgain("a copy from before the term, after a restart")

	// A code created once the term's barrier was read: its copies are newer, no live read.
	fresh := key(ns, "fresh")
	h.create(ns, fresh.Name, temporarySpec("acct", idScene(6), time.Hour, 0))
	reads := h.codeReads.Load()
	_, code := h.reconcile(fresh)
	if code.Status.Ticket == "" || h.fake.Calls(wechattest.EndpointCreate) != 3 {
		t.Fatalf("fresh code: ticket %q after %d calls", code.Status.Ticket, h.fake.Calls(wechattest.EndpointCreate))
	}
	if n := h.codeReads.Load() - reads; n != 0 {
		t.Errorf("%d live reads of a code whose cached copy is newer than the barrier", n)
	}
}
