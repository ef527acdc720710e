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

// Command bench measures the operator on a real API server with the fake WeChat (`make bench`):
//
//   - issuance: N codes created at once, time until all are Ready beside the floor of the same
//     client writing N statuses; WeChat calls per code, calls after a restart, the manager's
//     peak RSS;
//   - renewal: a storm of temporary codes renewing together, qrcode/create calls per second at
//     the fake beside the configured per-account rate;
//   - callback: signed, encrypted pushes from many senders to one hot and many spread codes, on
//     one callback replica and on two, events per second acknowledged durably, latency and the
//     API server's writes per 1,000 scans, beside a naive one-patch-per-event handler measured
//     in the same run, and the final counts beside the events sent;
//   - peer: CPU per push of the callback server beside silenceper/wechat's handler
//     (test/bench/peer, a module of its own) on the same signed safe-mode pushes.
//   - gateway: pushes per second and latency of the pushes an account forwards to its
//     application, straight to it and through one callback replica in the same run, every reply
//     checked; the hot load's events per second without a sink and with one, and the events the
//     sink received beside the scans counted.
//   - hotfault: distinct scans of one hot code offered open loop to two callback replicas, re-sent
//     5, 10 and 15 s late as WeChat re-sends them, one replica killed with SIGKILL halfway: scans
//     per second acknowledged, events lost, and the tally beside the events sent.
//   - soak (only with -only soak: 10 minutes by default): a mixed load over 1,000 codes, open
//     loop, to two callback replicas and the manager with a sink; per minute the fold's rounds
//     and CPU, the replicas' RSS, the API server's writes per 1,000 scans and the sink's lag,
//     the last minute beside the second; exact counts and no event lost at the sink.
//   - tagging (only with -only tagging: 500 s of load by default): distinct scanners of codes
//     with spec.tags, open loop, to a callback replica whose deliverer sends them to the
//     manager's tagging endpoint; batchtagging calls per tag at the fake beside ceil(followers
//     / 50), the lag from a scan's push to its scanner tagged at the fake, the manager's CPU per
//     tagged follower, and every follower's tags beside its code's.
//
// The manager and the callback server run as processes built from the tree; each benchmark gets
// a fresh control plane, so that one's objects do not weigh on the next. It prints a table and
// one JSON line per figure, and writes both into -out with the date and the machine.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// run is what every benchmark gets: the binaries, a scratch directory and where to say how far
// it has got.
type run struct {
	bins harness.Binaries
	dir  string
}

func (r *run) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench %s | %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// controlPlane starts a fresh control plane for one benchmark, its kubeconfig in a directory of
// its own.
func (r *run) controlPlane(name string) (*harness.ControlPlane, string, error) {
	dir := filepath.Join(r.dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	cp, err := harness.StartControlPlane(dir)
	return cp, dir, err
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == naiveCommand {
		if err := naiveMain(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "naive callback:", err)
			os.Exit(1)
		}
		return
	}
	var (
		iss     issuanceConfig
		storm   stormConfig
		cb      callbackConfig
		pc      peerConfig
		gw      gatewayConfig
		hf      hotFaultConfig
		soak    soakConfig
		tag     taggingConfig
		only    = flag.String("only", "issuance,renewal,callback,peer,gateway,hotfault", "benchmarks to run, comma-separated; soak (10 minutes by default) and tagging (9 to 12 minutes by default) run only when named here")
		out     = flag.String("out", "", "results file to write (table, JSON lines, date and machine); empty: none")
		keep    = flag.Bool("keep", false, "keep the scratch directory (process logs) after the run")
		timeout = flag.Duration("timeout", 30*time.Minute, "give up after this long")
	)
	flag.IntVar(&iss.N, "n", 2000, "issuance: codes created at once (10000 for the RSS goal)")
	flag.IntVar(&iss.Workers, "workers", 4, "issuance: --max-concurrent-reconciles, and the concurrency of the floor's status writes")
	flag.DurationVar(&iss.Latency, "latency", 20*time.Millisecond, "latency of the fake WeChat's answers")
	flag.Float64Var(&iss.WeChatQPS, "wechat-qps", 10000, "issuance: --wechat-qps (raised from the default 5 so that WeChat's rate limit is not what is measured)")
	flag.Float64Var(&iss.KubeQPS, "kube-api-qps", 1000, "--kube-api-qps of the manager and the QPS of the floor's client (raised from the default 20, which would be the bottleneck)")
	flag.IntVar(&iss.KubeBurst, "kube-api-burst", 2000, "--kube-api-burst of the manager and the burst of the floor's client")
	flag.IntVar(&storm.N, "storm-n", 10000, "renewal: temporary codes renewing together")
	// The first tickets are back-dated, so the ttl does not lengthen the run; ttl - renewBefore
	// must outlast the storm (N/rate), or the first renewed tickets come due again within it, and
	// renewBefore too, or tickets expire before their turn. A tenth of ttl - renewBefore is the
	// jitter that spreads the renewals.
	flag.DurationVar(&storm.TTL, "storm-ttl", 10*time.Minute, "renewal: spec.ttl of the codes")
	flag.DurationVar(&storm.RenewBefore, "storm-renew-before", 3*time.Minute, "renewal: spec.renewBefore of the codes")
	flag.Float64Var(&storm.QPS, "storm-qps", 100, "renewal: --wechat-qps, the per-account rate the storm must respect")
	flag.IntVar(&storm.Burst, "storm-burst", 20, "renewal: --wechat-burst")
	flag.IntVar(&storm.RingKeys, "storm-ring-keys", 0, "renewal: start every code with a recent-events annotation of this many keys (the callback server keeps up to --recent-events=1024)")
	flag.IntVar(&storm.Workers, "storm-workers", 16, "renewal: --max-concurrent-reconciles (enough that the rate limit, not the workers, paces the storm)")
	flag.IntVar(&cb.Events, "events", 40000, "callback: most events pushed to the callback server per load")
	flag.IntVar(&cb.NaiveEvents, "naive-events", 4000, "callback: most events pushed to the naive handler per load")
	flag.DurationVar(&cb.LoadTime, "load-time", 20*time.Second, "callback: longest time a load keeps sending")
	flag.IntVar(&cb.Spread, "spread", 1000, "callback: codes besides the hot one")
	flag.Float64Var(&cb.HotShare, "hot-share", 0.5, "callback: share of the mixed load's events that scan the hot code")
	// WeChat's fleet is open-loop: scanners do not wait for each other, so pushes in flight are the
	// rate times the latency. Every push waits for its commit (a window of 50 ms and a ledger
	// write, ~60 ms in all), so 10,000 a second keep ~600 in flight; 512 closed-loop senders capped
	// the load at 512/60 ms ≈ 8,500 a second whatever the server could do. 1,024 leave room up to
	// ~100 ms of latency; past that, the pushes queue at the server, where their latency counts.
	flag.IntVar(&cb.Senders, "senders", 1024, "callback: concurrent senders, each waiting for its answer before the next push: WeChat's open-loop fleet keeps rate x latency in flight, ~600 for 10,000 events/s at ~60 ms, so 1,024 cap the load only above ~10,000/s at 100 ms; the latencies measured include any queueing at the server")
	flag.IntVar(&pc.Events, "peer-events", 20000, "peer: pushes to each server per round")
	flag.IntVar(&pc.Rounds, "peer-rounds", 2, "peer: measured rounds (each server in turn), after a warm-up round of a tenth")
	flag.IntVar(&pc.Senders, "peer-senders", 16, "peer: concurrent senders")
	flag.IntVar(&gw.Pushes, "gateway-pushes", 2000, "gateway: pushes per path per round of the forwarding load")
	flag.IntVar(&gw.Rounds, "gateway-rounds", 3, "gateway: measured rounds of the forwarding load (the paths in turn), after a warm-up round of a tenth")
	// Few enough that a push waits for no other at the application: the figures are latency,
	// not queueing.
	flag.IntVar(&gw.Senders, "gateway-senders", 16, "gateway: concurrent senders of the forwarding load")
	flag.Float64Var(&gw.ScanShare, "gateway-scan-share", 0.25, "gateway: share of the forwarding load's pushes that scan codes without spec.reply (the rest are text messages)")
	flag.IntVar(&gw.hot.Events, "gateway-events", 100000, "gateway: most events of each hot load (without and with a sink): at about 9,000 a second, loads of about 10 s, long enough that a sink slower than the scans falls behind into the ledger and must catch up")
	flag.DurationVar(&gw.hot.LoadTime, "gateway-load-time", 15*time.Second, "gateway: longest time each hot load keeps sending")
	flag.IntVar(&gw.SteadyRate, "gateway-steady-rate", 1000, "gateway: scans a second offered open loop to a replica with a healthy binary sink, for the delivery lag")
	flag.DurationVar(&gw.SteadyTime, "gateway-steady-time", 20*time.Second, "gateway: how long the steady scans are offered")
	flag.IntVar(&hf.Rate, "hotfault-rate", 6000, "hotfault: distinct scans of the hot code offered per second")
	flag.DurationVar(&hf.LoadTime, "hotfault-time", 20*time.Second, "hotfault: how long the scans are offered (the late waves follow for 15 s more)")
	// WeChat re-sends a push whose answer it did not get in time; an answer lost on its way back
	// is what makes a counted scan come again, so a share of them is what dedupe is tested on.
	flag.IntVar(&hf.LostAnswers, "hotfault-lost-answers", 4, "hotfault: one answer in this many is lost on its way back to WeChat, which sends the event again (1: every event is sent again in every wave)")
	flag.IntVar(&soak.Rate, "soak-rate", 500, "soak: distinct scans offered per second, open loop (500: what the shared 2-core development machine held beside the other processes, with the fold's rounds under its interval)")
	flag.DurationVar(&soak.Time, "soak-time", 10*time.Minute, "soak: how long the scans are offered, in whole minutes (at least 3: the goal compares the last minute with the second, the first holding the start)")
	flag.IntVar(&soak.Codes, "soak-codes", 1000, "soak: codes scanned (the first is the hot one)")
	flag.Float64Var(&soak.HotShare, "soak-hot-share", 0.5, "soak: share of the scans that scan the hot code")
	flag.IntVar(&soak.LostAnswers, "soak-lost-answers", 4, "soak: one answer in this many is lost on its way back to WeChat, which sends the event again 5 s later")
	flag.IntVar(&tag.Scans, "tagging-scans", 100000, "tagging: distinct scanners, each scanning one code once")
	flag.IntVar(&tag.Codes, "tagging-codes", 50, "tagging: codes scanned, in turn")
	flag.IntVar(&tag.TagsPerCode, "tagging-tags", 3, "tagging: spec.tags of each code: its own, then one shared by 2 codes, by 4, ... (at most 100 at the account)")
	flag.IntVar(&tag.Rate, "tagging-rate", 200, "tagging: scans offered per second, open loop")
	flag.StringVar(&iss.ProfileDir, "profile", "", "issuance, renewal: write the manager's heap profile, once all codes are Ready or renewed, into this directory (turns on its --pprof-bind-address); gateway: a CPU profile of the callback replica over the steady load")
	managerEnv := flag.String("manager-env", "", "extra environment of the manager, comma-separated KEY=VALUE (e.g. GOMEMLIMIT=90MiB)")
	flag.Parse()
	gw.ProfileDir = iss.ProfileDir
	if *managerEnv != "" {
		iss.Env = strings.Split(*managerEnv, ",")
	}
	storm.Latency, storm.KubeQPS, storm.KubeBurst, storm.Env, storm.ProfileDir = iss.Latency, iss.KubeQPS, iss.KubeBurst, iss.Env, iss.ProfileDir
	gw.hot.Senders, gw.hot.HotShare = cb.Senders, 1
	// The trackers' watches log their errors through controller-runtime.
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr)))

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()
	if err := benchMain(ctx, strings.Split(*only, ","), *out, *keep, iss, storm, cb, pc, gw, hf, soak, tag); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func benchMain(ctx context.Context, only []string, out string, keep bool, iss issuanceConfig, storm stormConfig, cb callbackConfig, pc peerConfig, gw gatewayConfig, hf hotFaultConfig, soak soakConfig, tag taggingConfig) error {
	started := time.Now()
	mach := machine()
	dir, err := os.MkdirTemp("", "wechat-qrcode-bench-")
	if err != nil {
		return err
	}
	if keep {
		defer fmt.Fprintln(os.Stderr, "bench: logs kept in", dir)
	} else {
		defer func() { _ = os.RemoveAll(dir) }()
	}
	r := &run{dir: dir}
	r.logf("machine: %s", mach)
	r.logf("building cmd/manager and cmd/callback")
	if r.bins, err = harness.Build(ctx, filepath.Join(dir, "bin")); err != nil {
		return err
	}
	benches := []struct {
		name     string
		settings string
		run      func(context.Context, *run) ([]Figure, error)
	}{
		{"issuance", iss.String(), iss.run},
		{"renewal", storm.String(), storm.run},
		{"callback", cb.String(), cb.run},
		{"peer", pc.String(), pc.run},
		{"gateway", gw.String(), gw.run},
		{"hotfault", hf.String(), hf.run},
		{"soak", soak.String(), soak.run},
		{"tagging", tag.String(), tag.run},
	}
	var figures []Figure
	var settings []string
	for _, b := range benches {
		if !slices.Contains(only, b.name) {
			continue
		}
		r.logf("%s: %s", b.name, b.settings)
		f, err := b.run(ctx, r)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		figures = append(figures, f...)
		settings = append(settings, b.name+" ("+b.settings+")")
	}
	fmt.Println()
	writeTable(os.Stdout, figures)
	fmt.Println()
	writeJSON(os.Stdout, figures)
	if out != "" {
		if err := writeResults(out, started, mach, strings.Join(settings, "; "), figures); err != nil {
			return err
		}
		r.logf("results written to %s", out)
	}
	return nil
}
