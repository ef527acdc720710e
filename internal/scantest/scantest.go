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

// Package scantest is what the tests of the ledger, the fold and the callback server share: a
// test binary whose logs are kept for reading, a namespace of a test's own on the shared API
// server, codes as the manager leaves them, and waiting for a condition.
package scantest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// Logs is what a test binary's controller-runtime logger wrote: the tests read it for secrets
// and for lines logged once.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

// Contains is whether any line holds s.
func (l *Logs) Contains(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.buf.String(), s)
}

// Lines counts the lines that hold every one of parts.
func (l *Logs) Lines(parts ...string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for line := range strings.Lines(l.buf.String()) {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			n++
		}
	}
	return n
}

// Main is a TestMain body: the controller-runtime logger writes into logs, the tests run, and
// the API server stops if a test started it.
func Main(m *testing.M, env *testenv.Lazy, logs *Logs) {
	ctrl.SetLogger(funcr.New(func(prefix, args string) {
		logs.mu.Lock()
		defer logs.mu.Unlock()
		fmt.Fprintln(&logs.buf, prefix, args)
	}, funcr.Options{}))
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the API server:", err)
	}
	os.Exit(code)
}

// Namespace is one test's namespace on the shared API server.
type Namespace struct {
	T   *testing.T
	C   client.Client
	NS  string
	Ctx context.Context
}

// NewNamespace creates a namespace named after the test.
func NewNamespace(t *testing.T, e *testenv.Env) *Namespace {
	t.Helper()
	prefix := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: strings.Trim(prefix[:min(len(prefix), 40)], "-") + "-"}}
	n := &Namespace{T: t, C: e.Client, Ctx: context.Background()}
	if err := n.C.Create(n.Ctx, ns); err != nil {
		t.Fatal(err)
	}
	n.NS = ns.Name
	return n
}

// NewCode is a code whose current ticket was issued for appID.
func NewCode(ns, name, appID, ticket string, sceneID int64, reply string) *qrv1alpha1.WeChatQRCode {
	c := &qrv1alpha1.WeChatQRCode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: qrv1alpha1.WeChatQRCodeSpec{
			AccountRef: qrv1alpha1.AccountReference{Name: "official-account"},
			Type:       qrv1alpha1.Permanent,
			Scene:      qrv1alpha1.Scene{ID: ptr.To(sceneID)},
		},
		Status: qrv1alpha1.WeChatQRCodeStatus{
			Ticket:    ticket,
			IssuedFor: &qrv1alpha1.IssuedFor{AppID: appID, Type: qrv1alpha1.Permanent, Scene: qrv1alpha1.Scene{ID: ptr.To(sceneID)}},
		},
	}
	if reply != "" {
		c.Spec.Reply = &qrv1alpha1.Reply{ReplyMessage: qrv1alpha1.ReplyMessage{Text: reply}}
	}
	return c
}

// Code creates c, in n's namespace unless it has one, with its status as the manager would have
// written it.
func (n *Namespace) Code(c *qrv1alpha1.WeChatQRCode) *qrv1alpha1.WeChatQRCode {
	n.T.Helper()
	if c.Namespace == "" {
		c.Namespace = n.NS
	}
	status := c.Status
	if err := n.C.Create(n.Ctx, c); err != nil {
		n.T.Fatal(err)
	}
	c.Status = status
	if err := n.C.Status().Update(n.Ctx, c); err != nil {
		n.T.Fatal(err)
	}
	return c
}

// Codes creates k codes, code-0 to code-<k-1>.
func (n *Namespace) Codes(k int) []*qrv1alpha1.WeChatQRCode {
	n.T.Helper()
	var codes []*qrv1alpha1.WeChatQRCode
	for i := range k {
		codes = append(codes, n.Code(NewCode("", fmt.Sprintf("code-%d", i), "wxdirect", fmt.Sprintf("T-%d", i), int64(i+1), "")))
	}
	return codes
}

// Counts reads a code's counters from the API server, not from any cache.
func (n *Namespace) Counts(c *qrv1alpha1.WeChatQRCode) (scans, subscribes string) {
	n.T.Helper()
	var got qrv1alpha1.WeChatQRCode
	if err := n.C.Get(n.Ctx, client.ObjectKeyFromObject(c), &got); err != nil {
		n.T.Fatal(err)
	}
	return got.Annotations[qrv1alpha1.AnnotationScans], got.Annotations[qrv1alpha1.AnnotationSubscribes]
}

// Segments is the number of ledger segments in n's namespace.
func (n *Namespace) Segments() int {
	n.T.Helper()
	var segs qrv1alpha1.WeChatScanLedgerList
	if err := n.C.List(n.Ctx, &segs, client.InNamespace(n.NS)); err != nil {
		n.T.Fatal(err)
	}
	return len(segs.Items)
}

// WaitDelivered waits until the deliverer has recorded every entry of every segment in n's
// namespace as done with (the folder deletes no segment before): it commits its offsets in its
// own time.
func (n *Namespace) WaitDelivered() {
	n.T.Helper()
	WaitFor(n.T, "the delivery offsets", func() bool {
		var segs qrv1alpha1.WeChatScanLedgerList
		if err := n.C.List(n.Ctx, &segs, client.InNamespace(n.NS)); err != nil || len(segs.Items) == 0 {
			return false
		}
		for _, s := range segs.Items {
			var size int64
			for _, b := range s.Spec.Batches {
				size += int64(len(qrv1alpha1.LedgerBatchLines(b)))
			}
			if s.Status.Delivered < size {
				return false
			}
		}
		return true
	})
}

// WaitFor polls cond for up to 30 s: for what a real API server, cache or listener does in its
// own time.
func WaitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Sample is the value of the metric name (in full) with labels, as the processes' registry
// serves it: for a metric of another package, whose variable a test cannot reach.
func Sample(t testing.TB, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range families {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			match := 0
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v == l.GetValue() {
					match++
				}
			}
			if match == len(labels) {
				return m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return 0
}
