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
	"sync"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// freshness says when the informer cache's copy of a code may decide that WeChat be asked for a
// ticket, without reading the code again from the API server. One WeChat ticket per code per
// term rests on it: a copy older than a status write that recorded a ticket would ask again.
// Only the manager writes a code's status, so the writes to fear are of two kinds, and a
// resourceVersion (an etcd revision, comparable within a resource) bounds each:
//
//   - an earlier leader's, all made before this process began to lead: every one is older than
//     the barrier, a resourceVersion read from the API server as this process's term starts (at
//     its first issuance if that read failed);
//   - this process's own, made by an earlier reconcile of the same code: the floor remembers, per
//     code, the version its last write (or live read) returned, until the cache shows it. A write
//     whose outcome is unknown (a timeout) leaves a floor no copy meets until a live read.
//
// A copy at least as new as both is the API server's latest status, or a later one; anything
// else is read again from the API server, as every issuance used to be. A code created during the
// term is read again only when reconciled before the cache shows this process's last write to it;
// after a restart, a code last written before it is read once, at its first issuance of the term.
type freshness struct {
	apiServer client.Reader

	mu      sync.Mutex
	barrier string
	floor   map[types.NamespacedName]string
}

func newFreshness(apiServer client.Reader) *freshness {
	return &freshness{apiServer: apiServer, floor: map[types.NamespacedName]string{}}
}

// trusts reports whether the cached copy of code may decide an issuance. The barrier is read now
// if it was not yet; if that read fails, the copy is not trusted (the caller reads the code live).
func (f *freshness) trusts(ctx context.Context, code *v1alpha1.WeChatQRCode) bool {
	barrier, err := f.barrierVersion(ctx)
	if err != nil {
		return false
	}
	f.mu.Lock()
	floor, pending := f.floor[client.ObjectKeyFromObject(code)]
	f.mu.Unlock()
	return fresh(code.ResourceVersion, barrier, floor, pending)
}

// barrierVersion is the resourceVersion of a list read from the API server once this process
// leads: a quorum read, so at least every earlier leader's last write.
func (f *freshness) barrierVersion(ctx context.Context) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.barrier != "" {
		return f.barrier, nil
	}
	list := &v1alpha1.WeChatQRCodeList{}
	if err := f.apiServer.List(ctx, list, client.Limit(1)); err != nil {
		return "", err
	}
	f.barrier = list.ResourceVersion
	return f.barrier, nil
}

// fresh is the rule: a cached version at least the barrier and, when this process wrote the code
// and the cache has not shown it yet, at least that write. An unknown write ("" floor) or a
// version that does not compare is never fresh.
func fresh(cached, barrier, floor string, pending bool) bool {
	if !atLeast(cached, barrier) {
		return false
	}
	return !pending || atLeast(cached, floor)
}

func atLeast(v, than string) bool {
	c, err := resourceversion.CompareResourceVersion(v, than)
	return err == nil && c >= 0
}

// wrote records that this process wrote (or read live) key at version rv: the cache must show
// rv before its copy decides again.
func (f *freshness) wrote(key types.NamespacedName, rv string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.floor[key] = rv
}

// unknown records a write to key whose outcome is unknown: only a live read decides next.
func (f *freshness) unknown(key types.NamespacedName) { f.wrote(key, "") }

// cached forgets the floor of a code once the cache shows it at least at that version, and of a
// code deleted: floors are kept only for writes in flight.
func (f *freshness) cached(obj any, deleted bool) {
	if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj, deleted = tomb.Obj, true
	}
	code, ok := obj.(*v1alpha1.WeChatQRCode)
	if !ok {
		return
	}
	key := client.ObjectKeyFromObject(code)
	f.mu.Lock()
	defer f.mu.Unlock()
	if floor, ok := f.floor[key]; ok && (deleted || atLeast(code.ResourceVersion, floor)) {
		delete(f.floor, key)
	}
}

// handler is the informer's event handler that calls cached.
func (f *freshness) handler() toolscache.ResourceEventHandler {
	return toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { f.cached(obj, false) },
		UpdateFunc: func(_, obj any) { f.cached(obj, false) },
		DeleteFunc: func(obj any) { f.cached(obj, true) },
	}
}
