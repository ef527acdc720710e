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

package main

import (
	"context"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// stage is one benchmark's world: a fresh control plane, an account with its Secret in a
// namespace, a tracker of that namespace and, for the manager's benchmarks, a fake WeChat.
type stage struct {
	cp      *harness.ControlPlane
	dir     string
	acct    credentials.Account
	ns      string
	admin   client.Client
	tracker *harness.Tracker
	wechat  *harness.WeChat
}

// stage sets up a benchmark's world; latency < 0 means no fake WeChat.
func (r *run) stage(ctx context.Context, name string, latency time.Duration) (s *stage, err error) {
	s = &stage{acct: harness.NewAccount()}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	if s.cp, s.dir, err = r.controlPlane(name); err != nil {
		return s, err
	}
	s.admin = s.cp.Client
	if s.ns, err = harness.NewNamespace(ctx, s.admin, name, s.acct); err != nil {
		return s, err
	}
	if s.tracker, err = harness.Track(ctx, s.cp, s.ns); err != nil {
		return s, err
	}
	if latency >= 0 {
		s.wechat, err = harness.NewWeChat(wechattest.Options{Latency: latency}, s.acct)
	}
	return s, err
}

func (s *stage) close() {
	if s.tracker != nil {
		s.tracker.Stop()
	}
	if s.wechat != nil {
		s.wechat.Close()
	}
	if s.cp != nil {
		_ = s.cp.Stop()
	}
}
