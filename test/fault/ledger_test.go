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

package fault

import (
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// stream sends pushes as WeChat's fleet does: a batch starts every tick whatever became of the
// earlier ones (a slow or unavailable server does not slow WeChat down), and every push is sent
// again after each of later, whatever its answer was (WeChat's retries of a push whose answer it
// did not get in time). Batch wave k goes through sender(k).
type stream struct {
	per   int
	tick  time.Duration
	later []time.Duration
	// limit is how many events the stream sends before it ends by itself; 0: until end.
	limit  int
	next   func(i int) *harness.Push
	sender func(wave int) *harness.Sender

	stop    chan struct{}
	stopped chan struct{}
	// began and ended are when the first and the last batch started.
	began, ended time.Time
	batches      sync.WaitGroup
	sent         atomic.Int64
	acked        atomic.Int64

	mu sync.Mutex
	// outcomes holds, per event, the outcome of each wave: the push, then its late copies.
	outcomes [][]harness.Outcome
}

// start begins sending; next(i) is the i-th event's push, called from one goroutine only.
func (st *stream) start(w *world) {
	st.stop, st.stopped = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(st.stopped)
		st.began = time.Now()
		tick := time.NewTicker(st.tick)
		defer tick.Stop()
		for st.limit == 0 || int(st.sent.Load()) < st.limit {
			first := int(st.sent.Load())
			batch := make([]*harness.Push, st.per)
			for j := range batch {
				batch[j] = st.next(first + j)
			}
			st.mu.Lock()
			for range batch {
				st.outcomes = append(st.outcomes, make([]harness.Outcome, 1+len(st.later)))
			}
			st.mu.Unlock()
			st.sent.Add(int64(len(batch)))
			st.ended = time.Now()
			for wave, after := range append([]time.Duration{0}, st.later...) {
				st.batches.Add(1)
				time.AfterFunc(after, func() {
					defer st.batches.Done()
					out := st.sender(wave).Send(w.ctx, batch)
					st.mu.Lock()
					defer st.mu.Unlock()
					for j, o := range out {
						st.outcomes[first+j][wave] = o
						if wave == 0 && o.Status == http.StatusOK {
							st.acked.Add(1)
						}
					}
				})
			}
			select {
			case <-st.stop:
				return
			case <-w.ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// end stops starting events (a stream with a limit: once it has sent them all) and returns once
// every wave of those sent has been answered.
func (st *stream) end() [][]harness.Outcome {
	if st.limit == 0 {
		close(st.stop)
	}
	<-st.stopped
	st.batches.Wait()
	return st.outcomes
}

// lost counts the events no push of which was acknowledged: WeChat gave up on them.
func lost(outcomes [][]harness.Outcome) int {
	n := 0
	for _, waves := range outcomes {
		if !slices.ContainsFunc(waves, func(o harness.Outcome) bool { return o.Status == http.StatusOK }) {
			n++
		}
	}
	return n
}

// checkTallies fails the test unless the tally shards, the source of truth the annotations are
// folded from, hold exactly the good events of every code.
func (s *scans) checkTallies() {
	s.w.t.Helper()
	var list qrv1alpha1.WeChatScanTallyList
	if err := cp.Client.List(s.w.ctx, &list, client.InNamespace(s.w.ns)); err != nil {
		s.w.t.Fatal(err)
	}
	got := map[string]int64{}
	for _, sh := range list.Items {
		for code, t := range sh.Spec.Codes {
			got[code] += t.Scans
		}
	}
	for _, c := range s.codes {
		k := harness.Key(c)
		if got[k.String()] != s.want[k] {
			s.w.t.Errorf("tally of %s: %d scans, want %d", k, got[k.String()], s.want[k])
		}
	}
}

// folder waits until one of replicas holds the fold's Lease and has finished a round since it
// took it, and returns it with its metrics of rounds and shard writes at that point.
func (w *world) folder(replicas []*harness.Callback) *harness.Callback {
	w.t.Helper()
	var leader *harness.Callback
	eventually(w.t, 2*foldLag, "a replica folding", func() bool {
		for _, r := range replicas {
			if ok, rounds, _, err := r.Folds(); err == nil && ok && rounds > 0 {
				leader = r
				return true
			}
		}
		return false
	})
	return leader
}

// killMidFold polls the leader's fold metrics until a round is writing its tally shards (the
// count of shards written moved since the last poll while the count of finished rounds did not)
// and kills it with SIGKILL at once. It returns how many shards that round had written at the
// last poll: a round writes its changed shards one after the other, so a kill right after the
// first ones were seen lands, most of the time, before the last.
func (w *world) killMidFold(leader *harness.Callback) float64 {
	w.t.Helper()
	_, rounds, shards, err := leader.Folds()
	if err != nil {
		w.t.Fatal(err)
	}
	roundStart := shards
	var seen float64
	eventually(w.t, foldLag, "a fold writing its shards", func() bool {
		_, r, sh, err := leader.Folds()
		if err != nil {
			return false
		}
		if r != rounds {
			rounds, roundStart = r, sh
			return false
		}
		if sh > shards {
			leader.Kill()
			seen = sh - roundStart
			return true
		}
		shards = sh
		return false
	})
	return seen
}

// torn is whether the tally shards show a round written in part: shards that disagree on how
// far they have folded a segment. Every round of a load spread over many codes changes every
// shard and writes each with the same marks, so only a folder stopped between two of its shard
// writes leaves them apart. It reads the shards until two reads agree, so that a write the
// killed folder had on the wire is in.
func (w *world) torn() bool {
	w.t.Helper()
	read := func() []qrv1alpha1.WeChatScanTally {
		var list qrv1alpha1.WeChatScanTallyList
		if err := cp.Client.List(w.ctx, &list, client.InNamespace(w.ns)); err != nil {
			w.t.Fatal(err)
		}
		return list.Items
	}
	versions := func(l []qrv1alpha1.WeChatScanTally) []string {
		var v []string
		for _, sh := range l {
			v = append(v, sh.Name+"@"+sh.ResourceVersion)
		}
		slices.Sort(v)
		return v
	}
	shards := read()
	for {
		time.Sleep(200 * time.Millisecond)
		again := read()
		if slices.Equal(versions(shards), versions(again)) {
			break
		}
		shards = again
	}
	segments := map[string]bool{}
	for _, sh := range shards {
		for seg := range sh.Spec.Folded {
			segments[seg] = true
		}
	}
	for seg := range segments {
		for _, sh := range shards {
			if sh.Spec.Folded[seg] != shards[0].Spec.Folded[seg] {
				return true
			}
		}
	}
	return false
}

// TestCallbackFolderKilled kills the replica holding the fold's Lease with SIGKILL while a fold
// round is writing the tally shards, under a steady load spread over many codes (so that every
// round changes every shard), restarts it as a kubelet would, and does it again to the replica
// that took the Lease over. How we know a kill landed mid-fold: the killed replica's
// callback_folds_total{result="shard_written"} had moved while {result="ok"} (rounds finished)
// had not, and the shards read after the kill disagree on how far they have folded a segment (a
// round writes every shard it changed with the same marks: only a round cut short leaves them
// apart). At least one kill must show both, or the test fails as having proved nothing. Proves:
// the other replica takes the Lease and folds on from the shards' marks; the tallies and the
// annotations hold exactly the events sent (0 lost, 0 double).
func TestCallbackFolderKilled(t *testing.T) {
	w := newWorld(t, false)
	s := w.scans(size(200, 1000))
	replicas := []*harness.Callback{w.callback("callback-a"), w.callback("callback-b")}
	st := &stream{per: 30, tick: 100 * time.Millisecond, next: s.good, sender: func(int) *harness.Sender {
		return &harness.Sender{Targets: []string{replicas[0].URL, replicas[1].URL}, Workers: 30, Tries: 3, Timeout: 5 * time.Second, RetryAfter: weChatRetry}
	}}
	st.start(w)
	kills, torn := size(2, 5), 0
	leader := w.folder(replicas)
	for k := 0; k < kills || (torn == 0 && k < 2*kills); k++ {
		seen := w.killMidFold(leader)
		cut := w.torn()
		if cut {
			torn++
		}
		other := replicas[0]
		if other == leader {
			other = replicas[1]
		}
		// The other replica takes the Lease and finishes a round from the shards as the kill left
		// them; only then does the killed one come back, so that the next kill is of the folder
		// that took over.
		if w.folder([]*harness.Callback{other}) != other {
			t.Fatalf("%s did not take the fold over", other.Name)
		}
		t.Logf("kill %d: %s killed after %v shard writes of its round (shards written in part: %v); %s took the fold over", k+1, leader.Name, seen, cut, other.Name)
		if err := leader.Restart(w.ctx); err != nil {
			t.Fatal(err)
		}
		leader = other
	}
	outcomes := st.end()
	if torn == 0 {
		t.Errorf("no kill landed between two shard writes of a round: the test proved nothing")
	}
	if n := lost(outcomes); n > 0 {
		t.Errorf("%d of %d events not acknowledged within three tries", n, len(outcomes))
	}
	t.Logf("%d events, %d kills mid-fold", len(outcomes), torn)
	s.checkCounts()
	s.checkTallies()
}

// weChatRetry is how long WeChat waits before it tries a push again that got no 200: it waits
// out its 5 s timeout, and a prompt 503 is no reason for it to hurry. Retries 100 ms apart would
// put all three tries into one stall of a loaded API server, and lose events WeChat would not.
const weChatRetry = 5 * time.Second

// outage is how long TestCallbackAPIServerPaused stops the API server.
const outage = 10 * time.Second

// replyDeadline is the callback server's --reply-deadline (its default).
const replyDeadline = 3 * time.Second

// TestCallbackAPIServerPaused stops the kube-apiserver (SIGSTOP: connections accepted, nothing
// answered) for 10 s while pushes keep arriving at two replicas, 200 a second, each retried like
// WeChat (3 tries, the next 5 s after an answer that was not a 200). Proves: during the outage
// WeChat sees 503 within the reply deadline on every try (never a hang past its 5 s, never
// "success" for a scan that is not durable), no replica dies, and once the API server is back
// WeChat's retries carry every event over: each acknowledged within three tries and counted
// exactly once in the tallies and the annotations.
func TestCallbackAPIServerPaused(t *testing.T) {
	w := newWorld(t, false)
	s := w.scans(50)
	a, b := w.callback("callback-a"), w.callback("callback-b")
	st := &stream{per: 20, tick: 100 * time.Millisecond, next: s.good, sender: func(int) *harness.Sender {
		return &harness.Sender{Targets: []string{a.URL, b.URL}, Workers: 20, Tries: 3, Timeout: 5 * time.Second, RetryAfter: weChatRetry}
	}}
	st.start(w)
	eventually(t, time.Minute, "pushes acknowledged before the outage", func() bool { return st.acked.Load() >= 200 })
	resume, err := cp.PauseAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	paused := time.Now()
	time.Sleep(outage) // the fault itself: how long the API server stays stopped
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	during := st.sent.Load()
	// Pushes keep coming for as long again after the outage.
	eventually(t, time.Minute, "pushes after the outage", func() bool { return st.sent.Load() >= 2*during })
	outcomes := st.end()
	for _, r := range []*harness.Callback{a, b} {
		select {
		case <-r.Done():
			t.Errorf("%s ended during the outage: %v", r.Name, r.ExitError())
		default:
		}
	}
	// A try that started in the outage at least a reply deadline before its end cannot have made
	// its scan durable in time: its answer must be a prompt 503.
	var inOutage int
	wrong := map[int]int{}
	var slowest time.Duration
	for _, waves := range outcomes {
		for _, at := range waves[0].Attempts {
			if at.Start.Before(paused) || at.Start.After(resumed.Add(-replyDeadline)) {
				continue
			}
			inOutage++
			slowest = max(slowest, at.Took)
			if at.Status != http.StatusServiceUnavailable {
				wrong[at.Status]++
			}
		}
	}
	t.Logf("%d tries during the outage, slowest answer %s; final statuses %v", inOutage, slowest, harness.Summarize(waves(outcomes, 0)).ByStatus)
	if inOutage == 0 {
		t.Error("no push tried during the outage: the test proved nothing")
	}
	if len(wrong) > 0 {
		t.Errorf("tries during the outage answered other than 503, by status: %v", wrong)
	}
	if slowest > replyDeadline+time.Second {
		t.Errorf("a try during the outage took %s to be answered, beyond the reply deadline %s", slowest, replyDeadline)
	}
	if n := lost(outcomes); n > 0 {
		t.Errorf("%d of %d events not acknowledged within three tries", n, len(outcomes))
	}
	s.checkCounts()
	s.checkTallies()
}

// waves returns the outcomes of wave k of every event.
func waves(outcomes [][]harness.Outcome, k int) []harness.Outcome {
	out := make([]harness.Outcome, len(outcomes))
	for i, o := range outcomes {
		out[i] = o[k]
	}
	return out
}

// TestHotCodeLateRetriesReplicaKilled pushes distinct scans of ONE code at about 1,000 a second
// (10,000 in the long version) to two replicas, and every push again 5, 10 and 15 s later
// whatever its answer (WeChat's retries when it did not see an answer in time), each copy to the
// other replica in turn, and kills one replica with SIGKILL halfway through. Between an event and
// its last retry come some 15,000 scans of the same code. Proves: every event is acknowledged by
// one of its pushes (0 lost) and counted once (0 double), whichever replica took which copy,
// including those the killed replica made durable without answering.
func TestHotCodeLateRetriesReplicaKilled(t *testing.T) {
	w := newWorld(t, false)
	s := w.scans(2)
	a, b := w.callback("callback-a"), w.callback("callback-b")
	n := size(4000, 20000)
	perTick := size(100, 1000)
	st := &stream{
		per: perTick, tick: 100 * time.Millisecond, limit: n,
		later: []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second},
		next:  func(i int) *harness.Push { return s.goodOn(i, s.codes[0]) },
		sender: func(wave int) *harness.Sender {
			targets := []string{a.URL, b.URL}
			if wave%2 == 1 {
				targets[0], targets[1] = targets[1], targets[0]
			}
			return &harness.Sender{Targets: targets, Workers: perTick, Tries: 1, Timeout: 5 * time.Second}
		},
	}
	st.start(w)
	eventually(t, time.Minute, "half the events sent", func() bool { return st.sent.Load() >= int64(n/2) })
	a.Kill()
	outcomes := st.end()
	first := harness.Summarize(waves(outcomes, 0))
	sending := st.ended.Sub(st.began) + st.tick
	t.Logf("%d events of one code sent in %s, %.0f/s; first pushes by status %v, p99 %s",
		len(outcomes), sending.Round(time.Millisecond), float64(len(outcomes))/sending.Seconds(), first.ByStatus, first.P99)
	if len(outcomes) != n {
		t.Fatalf("%d events sent, want %d", len(outcomes), n)
	}
	if first.Acked == n {
		t.Error("every first push was acknowledged: the kill hit nothing in flight and proves nothing")
	}
	if l := lost(outcomes); l > 0 {
		t.Errorf("%d of %d events acknowledged by none of their four pushes", l, n)
	}
	s.checkCounts()
	s.checkTallies()
}
