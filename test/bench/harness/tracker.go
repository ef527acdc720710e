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

package harness

import (
	"context"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Tracker watches the codes of one namespace and notes when each was first seen Ready. A watch,
// not polling: listing 10,000 codes a few times a second would load the API server that is being
// measured more than the manager does.
type Tracker struct {
	cache  cache.Cache
	cancel context.CancelFunc

	mu         sync.Mutex
	firstReady map[types.NamespacedName]time.Time
	last       time.Time
}

// Track starts a Tracker of namespace ns and returns once it has listed the namespace.
func Track(ctx context.Context, cp *ControlPlane, ns string) (*Tracker, error) {
	c, err := cache.New(cp.Config, cache.Options{
		Scheme:            cp.Scheme,
		DefaultNamespaces: map[string]cache.Config{ns: {}},
		DefaultTransform:  cache.TransformStripManagedFields(),
	})
	if err != nil {
		return nil, err
	}
	t := &Tracker{cache: c, firstReady: map[types.NamespacedName]time.Time{}}
	inf, err := c.GetInformer(ctx, &qrv1alpha1.WeChatQRCode{})
	if err != nil {
		return nil, err
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    t.observe,
		UpdateFunc: func(_, obj any) { t.observe(obj) },
	}); err != nil {
		return nil, err
	}
	ctx, t.cancel = context.WithCancel(ctx)
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		t.cancel()
		return nil, fmt.Errorf("tracker of namespace %s did not sync", ns)
	}
	return t, nil
}

// Stop stops the watch.
func (t *Tracker) Stop() { t.cancel() }

func (t *Tracker) observe(obj any) {
	code, ok := obj.(*qrv1alpha1.WeChatQRCode)
	if !ok {
		return
	}
	if ready, _ := ReadyReason(code); !ready {
		return
	}
	now := time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, seen := t.firstReady[Key(code)]; !seen {
		t.firstReady[Key(code)] = now
		t.last = now
	}
}

// LastFirstReady is when the last code to become Ready did, and how many have been Ready so far.
func (t *Tracker) LastFirstReady() (time.Time, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last, len(t.firstReady)
}

// List returns the codes as the watch has them now.
func (t *Tracker) List(ctx context.Context) ([]qrv1alpha1.WeChatQRCode, error) {
	var list qrv1alpha1.WeChatQRCodeList
	if err := t.cache.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// Condition is what a caller waits for: Done says whether the codes are there yet, Explain what
// is still missing.
type Condition struct {
	Done    func([]qrv1alpha1.WeChatQRCode) bool
	Explain func([]qrv1alpha1.WeChatQRCode) string
}

// WaitFor returns the codes once cond is done, or the error of ctx with cond's explanation when
// ctx ends first.
func (t *Tracker) WaitFor(ctx context.Context, cond Condition) ([]qrv1alpha1.WeChatQRCode, error) {
	for {
		codes, err := t.List(ctx)
		if err != nil {
			return nil, err
		}
		if cond.Done(codes) {
			return codes, nil
		}
		select {
		case <-ctx.Done():
			return codes, fmt.Errorf("%w: %s", ctx.Err(), cond.Explain(codes))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// AllReady is the condition of n codes, every one Ready.
func AllReady(n int) Condition {
	count := func(codes []qrv1alpha1.WeChatQRCode) (ready int, reasons map[string]int) {
		reasons = map[string]int{}
		for i := range codes {
			ok, reason := ReadyReason(&codes[i])
			if ok {
				ready++
			} else {
				reasons[reason]++
			}
		}
		return ready, reasons
	}
	return Condition{
		Done: func(codes []qrv1alpha1.WeChatQRCode) bool {
			ready, _ := count(codes)
			return len(codes) == n && ready == n
		},
		Explain: func(codes []qrv1alpha1.WeChatQRCode) string {
			ready, reasons := count(codes)
			return fmt.Sprintf("%d of %d codes Ready (want %d); not Ready by reason: %v", ready, len(codes), n, reasons)
		},
	}
}
