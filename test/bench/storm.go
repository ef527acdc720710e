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
	"crypto/rand"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

type stormConfig struct {
	N                int
	TTL, RenewBefore time.Duration
	QPS              float64
	Burst, Workers   int
	Latency          time.Duration
	KubeQPS          float64
	KubeBurst        int
	Env              []string
	ProfileDir       string
	// RingKeys is the length of a recent-events annotation every code starts with, as the
	// callback server leaves on codes that are scanned a lot (it is in the manager's cache too).
	RingKeys int
}

func (c stormConfig) String() string {
	ring := ""
	if c.RingKeys > 0 {
		ring = fmt.Sprintf(", each with a recent-events annotation of %d keys", c.RingKeys)
	}
	return fmt.Sprintf("N=%d temporary codes%s, ttl %s, renewBefore %s, fake WeChat latency %s; manager --wechat-qps=%g --wechat-burst=%d --max-concurrent-reconciles=%d --kube-api-qps=%g%s",
		c.N, ring, c.TTL, c.RenewBefore, c.Latency, c.QPS, c.Burst, c.Workers, c.KubeQPS, envText(c.Env))
}

// syntheticPrefix marks the tickets the benchmark writes itself; a renewed code has another.
const syntheticPrefix = "storm-"

// run: N temporary codes whose tickets all come due within the jitter window, and the manager
// renewing them at its per-account rate. Their first tickets are written as the manager would
// have written them (harness.IssuedStatus), dated so that they come due shortly after the
// manager has started: the first issuance is the issuance benchmark's subject, and issuing
// 10,000 codes through the rate limit first would spread their renewals over as long as it took.
func (c stormConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "renewal", c.Latency)
	if err != nil {
		return nil, err
	}
	defer s.close()
	kube, err := s.cp.LimitedClient(c.KubeQPS, c.KubeBurst)
	if err != nil {
		return nil, err
	}
	codes := harness.TemporaryCodes(s.ns, c.N, c.TTL, c.RenewBefore)
	for _, code := range codes {
		if c.RingKeys > 0 {
			code.Annotations = ring(c.RingKeys)
		}
	}
	r.logf("renewal: creating %d codes", c.N)
	begin := time.Now()
	if err := harness.CreateAll(ctx, kube, codes, createWorkers); err != nil {
		return nil, err
	}
	// The tickets are written with as many requests as the creates took, then the manager
	// starts and reads them all: the storm is planned for after that.
	setup := time.Since(begin)
	stormAt := time.Now().Add(setup*3/2 + 20*time.Second)
	// The jitter moves a renewal up to a tenth of ttl - renewBefore earlier: the first is due
	// at stormAt, the last a jitter later.
	issuedAt := stormAt.Add(c.RenewBefore - c.TTL + (c.TTL-c.RenewBefore)/10)
	r.logf("renewal: writing the first tickets, due from %s", stormAt.Format(time.TimeOnly))
	due := make([]time.Time, c.N)
	err = harness.Parallel(c.N, createWorkers, func(i int) error {
		st := harness.IssuedStatus(s.acct.AppID, codes[i], fmt.Sprintf("%s%d", syntheticPrefix, i), issuedAt)
		due[i] = st.RenewalTime.Time
		return harness.WriteStatus(ctx, kube, codes[i], st)
	})
	if err != nil {
		return nil, err
	}
	expiresAt := issuedAt.Truncate(time.Second).Add(c.TTL)
	slices.SortFunc(due, func(a, b time.Time) int { return a.Compare(b) })

	mgr, err := harness.StartManager(ctx, r.bins, harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{
		Kubeconfig: s.cp.Kubeconfig, WeChatURL: s.wechat.URL,
		WeChatQPS: c.QPS, WeChatBurst: c.Burst,
		KubeQPS: c.KubeQPS, KubeBurst: c.KubeBurst, Workers: c.Workers,
	}, Env: c.Env, ProfileDir: c.ProfileDir}, s.dir)
	if err != nil {
		return nil, err
	}
	defer mgr.Kill()
	beforeDue := -1
	idleCtx, cancel := context.WithDeadline(ctx, due[0])
	err = mgr.WaitIdle(idleCtx, c.N)
	cancel()
	switch {
	case err == nil:
		beforeDue = s.wechat.Calls("/cgi-bin/qrcode/create")
		r.logf("renewal: manager idle with %d codes, %d calls before the first is due", c.N, beforeDue)
	case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		r.logf("renewal: the manager was not done reading the codes when the first came due")
	default:
		return nil, err
	}

	waitCtx, cancel := context.WithTimeout(ctx, time.Until(expiresAt)+5*time.Minute)
	defer cancel()
	renewed := func(codes []qrv1alpha1.WeChatQRCode) int {
		n := 0
		for i := range codes {
			if ready, _ := harness.ReadyReason(&codes[i]); ready && !strings.HasPrefix(codes[i].Status.Ticket, syntheticPrefix) {
				n++
			}
		}
		return n
	}
	if _, err := s.tracker.WaitFor(waitCtx, harness.Condition{
		Done: func(codes []qrv1alpha1.WeChatQRCode) bool { return renewed(codes) == c.N },
		Explain: func(codes []qrv1alpha1.WeChatQRCode) string {
			return fmt.Sprintf("%d of %d codes renewed", renewed(codes), c.N)
		},
	}); err != nil {
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
	if err := mgr.HeapProfile(ctx, fmt.Sprintf("renewal-%d-heap.pb.gz", c.N)); err != nil {
		return nil, err
	}
	_ = mgr.Stop(10 * time.Second) // a forced kill after the measurement changes no figure

	times := s.wechat.CreateTimes()
	var late int
	for _, code := range s.wechat.Codes(s.acct.AppID) {
		if code.IssuedAt.After(expiresAt) {
			late++
		}
	}
	h := histogram(times)
	limit := int(math.Ceil(c.QPS))
	// Calls are timed as they arrive at the fake, not as the limiter releases them: tens of
	// milliseconds of jitter on a loaded machine (a new connection, the scheduler) move a few
	// calls across the edge of a second. Over ten seconds the same jitter weighs ten times less.
	edge := 1 + int(0.05*c.QPS)
	const b = "renewal"
	rssFig := figure(b, "manager_peak_rss", mib(rss), "MiB", fmt.Sprintf("VmHWM of the manager with %d codes, through the storm", c.N))
	if c.N >= rssGoalAt {
		rssFig = rssFig.goal("<= 100 MiB at 10,000", mib(rss) <= 100)
	}
	figs := []Figure{
		figure(b, "due_window", due[len(due)-1].Sub(due[0]).Seconds(), "s",
			fmt.Sprintf("%d renewals come due within this window (the jitter), %.0f/s on average", c.N, float64(c.N)/max(due[len(due)-1].Sub(due[0]).Seconds(), 1))),
		figure(b, "max_calls_per_second", float64(h.max), "calls/s",
			fmt.Sprintf("qrcode/create per second at the fake, busiest second; configured rate %g, burst %d", c.QPS, c.Burst)).
			goal(fmt.Sprintf("<= rate+burst = %d (+%d at the edges)", limit+c.Burst, edge), h.max <= limit+c.Burst+edge),
		figure(b, "max_calls_per_second_after_first", float64(h.maxAfterFirst), "calls/s",
			"busiest second after the first (when the burst is spent)").goal(fmt.Sprintf("<= rate = %d (+%d at the edges)", limit, edge), h.maxAfterFirst <= limit+edge),
		figure(b, "max_calls_per_10s", float64(h.max10), "calls",
			"busiest 10 s (sliding, from each call)").goal(fmt.Sprintf("<= burst+10*rate = %d (+%d at the edges)", c.Burst+10*limit, edge), h.max10 <= c.Burst+10*limit+edge),
		figure(b, "p50_calls_per_second", float64(h.p50), "calls/s", fmt.Sprintf("median over the %d seconds from the first call to the last", len(h.bins))),
		figure(b, "first_second", float64(h.first), "calls", "calls in the first second of the storm"),
		figure(b, "storm_duration", h.span.Seconds(), "s", fmt.Sprintf("first to last call; N/rate = %.0f s", float64(c.N)/c.QPS)),
		figure(b, "wechat_calls_per_renewal", float64(len(times))/float64(c.N), "calls", fmt.Sprintf("%d qrcode/create for %d renewals", len(times), c.N)).goal("exactly 1", len(times) == c.N),
		figure(b, "renewed_after_expiry", float64(late), "codes", "renewals that reached WeChat after the ticket they replace had expired").goal("0", late == 0),
		rssFig,
		figure(b, "manager_heap_in_use", mib(int64(heap)), "MiB", "go_memstats_heap_inuse_bytes at the end: the rest of the peak RSS is garbage not yet collected, stacks, the runtime and the binary's pages"),
		fileRSSFigure(b, fileRSS, "at the end"),
	}
	if beforeDue >= 0 {
		figs = append(figs, figure(b, "calls_before_due", float64(beforeDue), "calls",
			fmt.Sprintf("qrcode/create after the manager started and read %d codes, none due yet", c.N)).goal("0", beforeDue == 0))
	}
	return figs, nil
}

// ring is the annotations of a code with n scans counted, the last n of them in its ring of
// recent event keys (12 characters each, as the callback server writes them).
func ring(n int) map[string]string {
	keys := make([]string, n)
	for i := range keys {
		keys[i] = rand.Text()[:12]
	}
	return map[string]string{
		qrv1alpha1.AnnotationScans:        strconv.Itoa(n),
		qrv1alpha1.AnnotationRecentEvents: strings.Join(keys, " "),
	}
}

// callHistogram is the number of calls in each second from the first call on.
type callHistogram struct {
	bins            []int
	first, max, p50 int
	maxAfterFirst   int
	// max10 is the most calls in 10 s from any call on.
	max10 int
	span  time.Duration
}

func histogram(times []time.Time) callHistogram {
	var h callHistogram
	if len(times) == 0 {
		return h
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	h.span = times[len(times)-1].Sub(times[0])
	h.bins = make([]int, int(h.span/time.Second)+1)
	for _, t := range times {
		h.bins[int(t.Sub(times[0])/time.Second)]++
	}
	h.first = h.bins[0]
	for i, n := range h.bins {
		h.max = max(h.max, n)
		if i > 0 {
			h.maxAfterFirst = max(h.maxAfterFirst, n)
		}
	}
	for i, j := 0, 0; i < len(times); i++ {
		for j < len(times) && times[j].Sub(times[i]) < 10*time.Second {
			j++
		}
		h.max10 = max(h.max10, j-i)
	}
	sorted := slices.Sorted(slices.Values(h.bins))
	h.p50 = sorted[len(sorted)/2]
	return h
}
