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
	"net/http"
	"runtime"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/types"

	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// hotFaultConfig is the hot code under faults: distinct scans of one code offered open loop (a
// batch every tick whatever became of the earlier ones, as WeChat's fleet sends them) to two
// callback replicas, re-sent 5, 10 and 15 s later as WeChat re-sends them, and one replica killed
// with SIGKILL halfway. Every event must be acknowledged by one of its pushes and counted once.
type hotFaultConfig struct {
	Rate        int
	LoadTime    time.Duration
	LostAnswers int
}

func (c hotFaultConfig) String() string {
	return fmt.Sprintf("one hot code, %d distinct scans/s offered open loop (a batch every %s) for %s to 2 callback replicas (default flags), 1 try each, each event sent again %s after its first push when none of its pushes was acknowledged by then or the answer was lost on its way back (1 in %d, picked by the event's number), each copy to the other replica; one replica killed with SIGKILL halfway",
		c.Rate, hotFaultTick, c.LoadTime, hotFaultLate, c.LostAnswers)
}

// hotFaultTick is how often a batch starts: 100 ms keeps a batch's pushes close together in time,
// like the scans of a busy poster, without a timer per push.
const hotFaultTick = 100 * time.Millisecond

// hotFaultLate are WeChat's re-sends after its 5 s timeout, 3 tries in all (docs/wechat-platform.md)
// and one more: a retry that lands 15 s late is the furthest apart an event and a copy of it get.
var hotFaultLate = []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second}

func (c hotFaultConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "hotfault", -1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	codes, err := issuedCodes(ctx, s, 1)
	if err != nil {
		return nil, err
	}
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		return nil, err
	}
	n := int(float64(c.Rate) * c.LoadTime.Seconds())
	evs, _ := events(n, 1, "hotfault", codes)
	r.logf("hotfault: building %d pushes", n)
	pushes, err := signedPushes(pusher, evs)
	if err != nil {
		return nil, err
	}
	pair, err := startPair(ctx, r, s, c.Rate)
	defer pair.stop()
	if err != nil {
		return nil, err
	}
	replicas, senders, per := pair.replicas, pair.senders, pair.per
	before, err := tallies(ctx, s)
	if err != nil {
		return nil, err
	}
	st := &harness.Stream{
		Per: per, Tick: hotFaultTick, Late: hotFaultLate, Retries: harness.Retries{LostAnswers: c.LostAnswers},
		Pushes: pushes, Senders: senders,
	}
	r.logf("hotfault: %d events, %d every %s", n, per, hotFaultTick)
	// Only this process's CPU: the killed replica's leaves /proc with it.
	selfBefore := harness.CPUByName()["self"]
	start := time.Now()
	st.Start(ctx)
	if err := poll(ctx, 2*c.LoadTime, func() (bool, error) { return st.Sent() >= int64(n/2), nil }); err != nil {
		return nil, err
	}
	replicas[0].Kill()
	killedAt := st.Sent()
	r.logf("hotfault: %s killed after %d events; waiting for the late waves", replicas[0].Name, killedAt)
	outcomes := st.End()
	span := time.Since(start)
	self := harness.CPUByName()["self"] - selfBefore

	first := harness.Summarize(harness.Wave(outcomes, 0))
	resent := resends(outcomes)
	l := load{
		Summary: harness.Summary{Sent: n, Acked: int(st.Acked()), Failed: harness.Lost(outcomes), Retried: resent.events},
		elapsed: st.Sending(), totals: "the tally",
	}
	r.logf("hotfault: waiting for the tally")
	want := map[types.NamespacedName]int64{harness.Key(codes[0]): int64(n)}
	if err := l.settle(ctx, s, codes, tallies, before, want, true); err != nil {
		return nil, err
	}
	const b = "hotfault"
	double := max(0, l.counted-int64(n))
	return []Figure{
		figure(b, "scans_per_second", l.rate(), "scans/s",
			fmt.Sprintf("%d distinct scans of one code acknowledged (persisted) by one of their pushes, over %s of sending (%d offered a second)", l.Acked, l.elapsed.Round(time.Millisecond), c.Rate)).goal(">= 5,000", l.rate() >= 5000),
		figure(b, "pushes_per_second", float64(resent.pushes)/span.Seconds(), "pushes/s",
			fmt.Sprintf("%d pushes, first and late, from the first push to the last answer (%s)", resent.pushes, span.Round(time.Millisecond))),
		figure(b, "lost", float64(l.Failed), "events",
			fmt.Sprintf("events none of whose pushes was acknowledged; %s killed after %d of %d events", replicas[0].Name, killedAt, n)).goal("0", l.Failed == 0),
		exactness(b, "counted", l),
		figure(b, "double", float64(double), "scans", "the tally's gain beyond the events sent").goal("0", double == 0),
		figure(b, "first_try_acknowledged", float64(first.Acked), "pushes", "first pushes by status (0: no answer, such as those at the killed replica): "+statuses(first.ByStatus)),
		figure(b, "first_try_p99_latency", ms(first.P99), "ms", fmt.Sprintf("acknowledged first pushes, sent to answered; p50 %.0f ms", ms(first.P50))),
		figure(b, "sender_cpu_per_push", self/float64(resent.pushes)*1e6, "µs",
			fmt.Sprintf("the load generator (this process: the stream and its Senders) used %.2f cores over the %s: whether it, not the server, was the limit", self/span.Seconds(), span.Round(time.Millisecond))),
		figure(b, "retried_share", 100*float64(resent.events)/float64(n), "%", resent.String()),
	}, nil
}

// pair is two callback replicas ("callback-a", "callback-b") with default flags, each with a
// Sender that carries its share of an open-loop stream's batch (per events every hotFaultTick at
// rate a second) at once, as many people scanning do not queue behind each other.
type pair struct {
	replicas []*harness.Callback
	senders  []*harness.Sender
	per      int
}

// startPair starts a pair; stop it (whatever the error) once measured.
func startPair(ctx context.Context, r *run, s *stage, rate int) (*pair, error) {
	p := &pair{per: max(1, int(float64(rate)*hotFaultTick.Seconds()))}
	for _, name := range []string{"callback-a", "callback-b"} {
		cb, err := harness.StartCallback(ctx, r.bins, name, s.cp.Kubeconfig, s.ns, s.dir, 0)
		if err != nil {
			return p, err
		}
		p.replicas = append(p.replicas, cb)
		p.senders = append(p.senders, &harness.Sender{Targets: []string{cb.URL}, Workers: p.per, Tries: 1, Timeout: 5 * time.Second})
	}
	return p, nil
}

func (p *pair) stop() {
	for _, cb := range p.replicas {
		_ = cb.Stop(10 * time.Second) // a forced kill after the measurement changes no figure
	}
}

// resent is what the late waves sent again.
type resent struct {
	// events were sent more than once; pushes are all the pushes, first and late.
	events, pushes int
	// unanswered and lostAnswer are, per late wave, the events it sent again because none of
	// their pushes had been acknowledged, and because one had but its answer was lost.
	unanswered, lostAnswer []int
}

func resends(outcomes [][]harness.Outcome) resent {
	var r resent
	if len(outcomes) > 0 {
		r.unanswered, r.lostAnswer = make([]int, len(outcomes[0])-1), make([]int, len(outcomes[0])-1)
	}
	for _, waves := range outcomes {
		again := false
		for k, o := range waves {
			if o.Tries == 0 {
				continue
			}
			r.pushes++
			if k == 0 {
				continue
			}
			again = true
			if slices.ContainsFunc(waves[:k], func(o harness.Outcome) bool { return o.Status == http.StatusOK }) {
				r.lostAnswer[k-1]++
			} else {
				r.unanswered[k-1]++
			}
		}
		if again {
			r.events++
		}
	}
	return r
}

func (r resent) String() string {
	parts := make([]string, len(r.unanswered))
	for k := range parts {
		parts[k] = fmt.Sprintf("%s late: %d unacknowledged, %d whose answer was lost", hotFaultLate[k], r.unanswered[k], r.lostAnswer[k])
	}
	return "events sent again at least once; by wave: " + strings.Join(parts, "; ")
}

// statuses lists counts by HTTP status, lowest status first.
func statuses(by map[int]int) string {
	codes := slices.Sorted(maps.Keys(by))
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = fmt.Sprintf("%d: %d", c, by[c])
	}
	return strings.Join(parts, ", ")
}

// signedPushes signs and encrypts the pushes of evs, stamped now, on every core: an open-loop
// load must not spend its sending time building them.
func signedPushes(p *harness.Pusher, evs []harness.Event) ([]*harness.Push, error) {
	pushes := make([]*harness.Push, len(evs))
	now := time.Now()
	err := harness.Parallel(len(evs), runtime.NumCPU(), func(i int) (err error) {
		pushes[i], err = p.Push(evs[i].XML(), now)
		return err
	})
	return pushes, err
}
