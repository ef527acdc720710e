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

// Package fault checks that the operator survives what production does to it, with the manager
// and the callback server as real processes on a real API server: kill -9 in the middle of work,
// a WeChat that fails, hangs, revokes tokens and runs out of quota, and hostile pushes. Every
// assertion is on observed state: the fake WeChat's record of calls and the API server's objects.
//
// Each test has a short version, run by `go test ./...` (skipped with -short), and a longer one
// with FAULT_LONG=1.
package fault

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

var (
	cp   *harness.ControlPlane
	bins harness.Binaries
	// logDir keeps the processes' logs; a failing test names the one to read.
	logDir string
)

// long selects the longer versions of the tests.
var long = os.Getenv("FAULT_LONG") != ""

// size is short in the short version and long in the long one.
func size(short, long_ int) int {
	if long {
		return long_
	}
	return short
}

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		// Every test skips itself; no control plane to start.
		os.Exit(m.Run())
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "wechat-qrcode-fault-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	logDir = dir
	if bins, err = harness.Build(context.Background(), filepath.Join(dir, "bin")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cp, err = harness.StartControlPlane(dir); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	if err := cp.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	if code == 0 {
		_ = os.RemoveAll(dir)
	} else {
		fmt.Fprintln(os.Stderr, "process logs kept in", dir)
	}
	return code
}

// world is one test's account, namespace and watch of it, and the fake WeChat if it needs one.
// The tests share the control plane and run one after the other: a manager reconciles every
// namespace, so the codes of one test must be gone before the next starts its manager.
type world struct {
	t       *testing.T
	ctx     context.Context
	acct    credentials.Account
	ns      string
	tracker *harness.Tracker
	wechat  *harness.WeChat
}

func newWorld(t *testing.T, withWeChat bool) *world {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes on a real API server; run without -short")
	}
	ctx, cancel := context.WithCancel(context.Background())
	w := &world{t: t, ctx: ctx, acct: harness.NewAccount()}
	var err error
	if w.ns, err = harness.NewNamespace(ctx, cp.Client, "fault", w.acct); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// envtest runs no namespace controller: deleting the namespace would leave the codes.
		if err := cp.Client.DeleteAllOf(context.Background(), &qrv1alpha1.WeChatQRCode{}, client.InNamespace(w.ns)); err != nil {
			t.Errorf("deleting the codes of %s: %v", w.ns, err)
		}
		cancel()
	})
	if w.tracker, err = harness.Track(ctx, cp, w.ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.tracker.Stop)
	if withWeChat {
		if w.wechat, err = harness.NewWeChat(wechattest.Options{Latency: 10 * time.Millisecond}, w.acct); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(w.wechat.Close)
	}
	return w
}

// manager starts a manager process, killed at the end of the test: as the control plane's admin
// on the world's fake WeChat unless cfg says otherwise.
func (w *world) manager(cfg harness.ManagerConfig) *harness.Manager {
	w.t.Helper()
	if cfg.Kubeconfig == "" {
		cfg.Kubeconfig = cp.Kubeconfig
	}
	if cfg.WeChatURL == "" {
		cfg.WeChatURL = w.wechat.URL
	}
	m, err := harness.StartManager(w.ctx, bins, cfg, logDir)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(m.Kill)
	return m
}

// callback starts a callback server process for the world's account, killed at the end of the test.
func (w *world) callback(name string) *harness.Callback {
	w.t.Helper()
	cb, err := harness.StartCallback(w.ctx, bins, name, cp.Kubeconfig, w.ns, logDir, time.Second)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(cb.Kill)
	return cb
}

// list reads the codes from the API server itself, not the watch, which may lag.
func (w *world) list() []qrv1alpha1.WeChatQRCode {
	w.t.Helper()
	var list qrv1alpha1.WeChatQRCodeList
	if err := cp.Client.List(w.ctx, &list, client.InNamespace(w.ns)); err != nil {
		w.t.Fatal(err)
	}
	return list.Items
}

// waitFor waits at most timeout for cond, and fails the test otherwise.
func (w *world) waitFor(timeout time.Duration, cond harness.Condition) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(w.ctx, timeout)
	defer cancel()
	if _, err := w.tracker.WaitFor(ctx, cond); err != nil {
		w.t.Fatalf("%v (logs in %s)", err, logDir)
	}
}
