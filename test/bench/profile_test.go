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
	"fmt"
	"net/http"
	"os"
	"testing"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// BenchmarkCallbackPush runs the callback server in this process against a real API server and
// pushes b.N events of the mixed load to it, so that the callback benchmark's figures can be
// explained with a profile (make bench-profile):
//
//	go test ./test/bench -run '^$' -bench CallbackPush -benchtime 20000x -cpuprofile cpu.out
//	go tool pprof -top cpu.out
//
// The senders share the process and the profile; their frames are under harness.(*Sender).
// HOT_SHARE=1 profiles the hot load instead, REPLICAS=2 two callback servers (2026-11-30, 100,000
// events of the mixed load: 11,426 a second on one, 11,175 on two).
func BenchmarkCallbackPush(b *testing.B) {
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := &run{dir: b.TempDir()}
	s, err := r.stage(ctx, "profile", -1)
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	codes, err := issuedCodes(ctx, s, 1001)
	if err != nil {
		b.Fatal(err)
	}
	// REPLICAS=2 runs two callback servers in this process, each try to the next, as the
	// callback benchmark's mixed2 load does: the profile then holds both.
	replicas := 1
	if os.Getenv("REPLICAS") == "2" {
		replicas = 2
	}
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		b.Fatal(err)
	}
	var targets []string
	for i := range replicas {
		addr, err := harness.FreeAddr()
		if err != nil {
			b.Fatal(err)
		}
		opts := callback.DefaultOptions()
		opts.Namespace, opts.Identity = s.ns, fmt.Sprint("profile-", i)
		mgr, _, err := callback.NewManager(s.cp.Config, callback.Config{Options: opts, BindAddress: addr, HealthProbeBindAddress: "0", MetricsBindAddress: "0"})
		if err != nil {
			b.Fatal(err)
		}
		go func() { _ = mgr.Start(ctx) }()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			b.Fatal("cache not synced")
		}
		// Ready once the push config is read: an unknown account answers 404.
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
			resp, err := http.Get("http://" + addr + pusher.Path())
			if err == nil {
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					break
				}
			}
			if time.Now().After(deadline) {
				b.Fatal("callback server not serving the account")
			}
		}
		targets = append(targets, "http://"+addr)
	}
	hotShare := 0.5
	if os.Getenv("HOT_SHARE") == "1" {
		hotShare = 1
	}
	evs, _ := events(b.N, hotShare, "profile", codes)
	pushes := make([]*harness.Push, b.N)
	for i, ev := range evs {
		if pushes[i], err = pusher.Push(ev.XML(), time.Now()); err != nil {
			b.Fatal(err)
		}
	}
	sender := &harness.Sender{Targets: targets, Workers: 1024, Tries: 3, Timeout: 5 * time.Second}
	defer sender.Close()
	b.ResetTimer()
	sum := harness.Summarize(sender.Send(ctx, pushes))
	b.StopTimer()
	if sum.Acked != b.N {
		b.Fatalf("%d of %d events acknowledged", sum.Acked, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
