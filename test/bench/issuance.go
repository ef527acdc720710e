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
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

type issuanceConfig struct {
	N, Workers int
	Latency    time.Duration
	WeChatQPS  float64
	KubeQPS    float64
	KubeBurst  int
	// Env is the manager's extra environment (GOMEMLIMIT, GOGC), in both benchmarks that run it.
	Env []string
	// ProfileDir, when set, receives the manager's heap profiles, in both benchmarks that run it.
	ProfileDir string
}

func (c issuanceConfig) String() string {
	return fmt.Sprintf("N=%d temporary codes, fake WeChat latency %s; manager --max-concurrent-reconciles=%d --wechat-qps=%g --kube-api-qps=%g --kube-api-burst=%d%s",
		c.N, c.Latency, c.Workers, c.WeChatQPS, c.KubeQPS, c.KubeBurst, envText(c.Env))
}

func envText(env []string) string {
	if len(env) == 0 {
		return ""
	}
	return ", environment " + strings.Join(env, " ")
}

// createWorkers create the codes "at once": a GitOps sync or a script applying many manifests.
const createWorkers = 16

// rssGoalAt is the number of codes the peak RSS goal is stated for, rssGoalAtLarge the number of
// the account's permanent budget (issue 24), with its own goal.
const (
	rssGoalAt      = 10000
	rssGoalAtLarge = 100000
)

// readyTimeout is how long the stage waits for N codes to be Ready: at least 15 minutes, and
// 20 ms a code beyond (100,000 codes went at about 80 a second on two shared cores).
func readyTimeout(n int) time.Duration {
	return max(15*time.Minute, time.Duration(n)*20*time.Millisecond)
}

func (c issuanceConfig) manager(s *stage) harness.ManagerConfig {
	return harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{
		Kubeconfig: s.cp.Kubeconfig, WeChatURL: s.wechat.URL,
		WeChatQPS: c.WeChatQPS, WeChatBurst: int(c.WeChatQPS),
		KubeQPS: c.KubeQPS, KubeBurst: c.KubeBurst, Workers: c.Workers,
	}, Env: c.Env, ProfileDir: c.ProfileDir}
}

// run: N codes created at once with the manager running; the time until all are Ready, beside
// the floor, which is the same number of status writes by a client with the manager's QPS, burst
// and concurrency, straight to the same API server: the least any manager could do.
func (c issuanceConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "issuance", c.Latency)
	if err != nil {
		return nil, err
	}
	defer s.close()
	requestsBefore, err := s.cp.Requests(ctx)
	if err != nil {
		return nil, err
	}
	mgr, err := harness.StartManager(ctx, r.bins, c.manager(s), s.dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Kill()
	kube, err := s.cp.LimitedClient(c.KubeQPS, c.KubeBurst)
	if err != nil {
		return nil, err
	}
	codes := harness.TemporaryCodes(s.ns, c.N, 24*time.Hour, 0)
	cpBefore, err := s.cp.RSS()
	if err != nil {
		return nil, err
	}

	r.logf("issuance: creating %d codes with the manager running", c.N)
	start := time.Now()
	if err := harness.CreateAll(ctx, kube, codes, createWorkers); err != nil {
		return nil, err
	}
	created := time.Since(start)
	waitCtx, cancel := context.WithTimeout(ctx, readyTimeout(c.N))
	defer cancel()
	if _, err := s.tracker.WaitFor(waitCtx, harness.AllReady(c.N)); err != nil {
		return nil, err
	}
	last, _ := s.tracker.LastFirstReady()
	ready := last.Sub(start)
	calls := s.wechat.Calls(wechattest.EndpointCreate)
	apiRequests, err := harness.Metric(mgr.Metrics, "rest_client_requests_total")
	if err != nil {
		return nil, err
	}
	rss, heap, err := mgr.Memory()
	if err != nil {
		return nil, err
	}
	fileRSS, err := mgr.FileRSS()
	if err != nil {
		return nil, err
	}
	requestsAfter, err := s.cp.Requests(ctx)
	if err != nil {
		return nil, err
	}
	cpAfter, err := s.cp.RSS()
	if err != nil {
		return nil, err
	}
	if err := mgr.HeapProfile(ctx, fmt.Sprintf("issuance-%d-heap.pb.gz", c.N)); err != nil {
		return nil, err
	}
	r.logf("issuance: all %d Ready after %s; restarting the manager", c.N, ready.Round(time.Millisecond))

	_ = mgr.Stop(10 * time.Second) // a forced kill after the measurement changes no figure
	before := s.wechat.Calls(wechattest.EndpointCreate)
	restarted := time.Now()
	mgr, err = harness.StartManager(ctx, r.bins, c.manager(s), s.dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Kill()
	if err := mgr.WaitReconciled(waitCtx, 1); err != nil {
		return nil, err
	}
	firstReconcile := time.Since(restarted)
	if err := mgr.WaitIdle(waitCtx, c.N); err != nil {
		return nil, err
	}
	allReconciled := time.Since(restarted)
	restartCalls := s.wechat.Calls(wechattest.EndpointCreate) - before
	restartRSS, err := mgr.PeakRSS()
	if err != nil {
		return nil, err
	}
	_ = mgr.Stop(10 * time.Second) // a forced kill after the measurement changes no figure

	r.logf("issuance: floor: %d status writes, %d concurrent", c.N, c.Workers)
	list, err := s.tracker.List(ctx)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	err = harness.Parallel(len(list), c.Workers, func(i int) error {
		code := &list[i]
		return harness.WriteStatus(ctx, kube, code, harness.IssuedStatus(s.acct.AppID, code, fmt.Sprintf("floor-%d", i), time.Now()))
	})
	if err != nil {
		return nil, err
	}
	floor := time.Since(start)

	const b = "issuance"
	perCode := float64(calls) / float64(c.N)
	rssFig := figure(b, "manager_peak_rss", mib(rss), "MiB", fmt.Sprintf("VmHWM of the manager process at N=%d", c.N))
	switch {
	case c.N >= rssGoalAtLarge:
		rssFig = rssFig.goal("<= 600 MiB at 100,000", mib(rss) <= 600)
	case c.N >= rssGoalAt:
		rssFig = rssFig.goal("<= 100 MiB at 10,000", mib(rss) <= 100)
	}
	perCodeRequests := apiRequests / float64(c.N)
	figs := []Figure{
		figure(b, "all_ready", ready.Seconds(), "s", fmt.Sprintf("from the first create of %d codes to the last one Ready", c.N)),
		figure(b, "floor", floor.Seconds(), "s", fmt.Sprintf("%d status writes, same client QPS/burst, %d concurrent, no manager", c.N, c.Workers)),
		figure(b, "all_ready_vs_floor", ready.Seconds()/floor.Seconds(), "x", "ratio of the two above, measured on the same API server"),
		figure(b, "create", created.Seconds(), "s", fmt.Sprintf("creating the %d objects (%d concurrent), included in all_ready", c.N, createWorkers)),
		figure(b, "codes_per_second", float64(c.N)/ready.Seconds(), "codes/s", "N / all_ready"),
		figure(b, "wechat_calls_per_code", perCode, "calls", fmt.Sprintf("%d qrcode/create at the fake for %d codes", calls, c.N)).goal("exactly 1", calls == c.N),
		figure(b, "api_requests_per_code", perCodeRequests, "requests", "the manager's requests to the API server (rest_client_requests_total, list and watch included) / N").
			goal("<= 2", perCodeRequests <= 2),
		figure(b, "calls_after_restart", float64(restartCalls), "calls", fmt.Sprintf("qrcode/create after a restart with nothing due, once %d codes were reconciled", c.N)).goal("0", restartCalls == 0),
		rssFig,
		figure(b, "manager_heap_in_use", mib(int64(heap)), "MiB", "go_memstats_heap_inuse_bytes once all were Ready"),
		fileRSSFigure(b, fileRSS, "once all were Ready"),
		figure(b, "manager_peak_rss_restart", mib(restartRSS), "MiB", fmt.Sprintf("VmHWM after a restart that reconciled %d codes", c.N)),
		figure(b, "restart_first_reconcile", firstReconcile.Seconds(), "s",
			"from the restarted manager's start to its first finished reconcile (its caches synced: the workers start only then): the earliest a due renewal is acted on"),
		figure(b, "restart_all_reconciled", allReconciled.Seconds(), "s",
			fmt.Sprintf("from the restart until all %d codes were reconciled once and the queue is empty: the latest a renewal due at the restart is acted on", c.N)),
	}
	figs = append(figs, controlPlaneMemory(b, cpBefore, cpAfter, c.N)...)
	return append(figs, requestsPerCode(b, requestsBefore, requestsAfter, c.N)...), nil
}

// controlPlaneMemory is, for each process of the control plane, its resident set once n codes
// were Ready and what it grew by from before they were created, per code: the API server's watch
// cache and etcd's pages hold every code's object (its status, previousTickets), and the Events
// about them. A Go process's RSS also holds garbage not yet collected, so a delta is an upper
// bound of the memory that stays.
func controlPlaneMemory(b string, before, after map[string]int64, n int) []Figure {
	var figs []Figure
	for _, comm := range harness.ControlPlaneProcesses {
		figs = append(figs,
			figure(b, comm+"_rss", mib(after[comm]), "MiB", fmt.Sprintf("VmRSS of the %s once all %d codes were Ready", comm, n)),
			figure(b, comm+"_rss_per_code", float64(after[comm]-before[comm])/1024/float64(n), "KiB",
				fmt.Sprintf("(VmRSS once all were Ready - VmRSS before the first create) / %d: %.1f MiB to %.1f MiB", n, mib(before[comm]), mib(after[comm]))))
	}
	return figs
}

// requestsPerCode is, by verb and resource, the requests the API server finished between two
// counts while the manager issued n codes, per code: where api_requests_per_code goes. The
// benchmark's own creates of the n codes are taken out; its tracker's watch is still open, so
// it is not in them.
func requestsPerCode(b string, before, after map[harness.RequestKind]float64, n int) []Figure {
	created := harness.RequestKind{Verb: "POST", Resource: "wechatqrcodes"}
	made := map[harness.RequestKind]float64{}
	for k, v := range after {
		d := v - before[k]
		if k == created {
			d -= float64(n)
		}
		if d > 0 {
			made[k] = d
		}
	}
	kinds := slices.SortedFunc(maps.Keys(made), func(x, y harness.RequestKind) int { return strings.Compare(x.String(), y.String()) })
	var figs []Figure
	for _, k := range kinds {
		figs = append(figs, figure(b, "api_requests_per_code "+k.String(), made[k]/float64(n), "requests",
			fmt.Sprintf("%.0f requests counted by the API server while the manager issued %d codes (the benchmark's creates taken out)", made[k], n)))
	}
	return figs
}

// fileRSSFigure is the manager's binary's share of its RSS at the measurement.
func fileRSSFigure(b string, bytes int64, when string) Figure {
	return figure(b, "manager_rss_file", mib(bytes), "MiB",
		"RssFile of the manager "+when+": its binary's pages, counted in every RSS figure, which the kernel may drop under pressure")
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }
