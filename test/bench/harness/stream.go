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
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/utils/clock"
)

// Retries is which events WeChat sends again in a late wave. WeChat re-sends a push whose answer
// it did not get within its 5 s (docs/wechat-platform.md): one that got no 200, one still
// unanswered (such as one in flight at a replica killed meanwhile), and one whose 200 was lost on
// its way back to WeChat — the case that makes deduplication necessary, since the scan is
// already counted.
type Retries struct {
	// LostAnswers: one answer in LostAnswers never reaches WeChat; 1: none does (every event is
	// sent again in every wave, the strictest test of dedupe); 0: every one does.
	LostAnswers int
}

// AnswerLost is whether the answer to wave k's push of event i is lost on its way back: when the
// k-th digit of i in base LostAnswers is 0. That loses one answer in LostAnswers in every wave,
// independently of the earlier waves (one event in LostAnswers² loses two in a row, so that
// every wave re-sends some counted events), and the same ones in every run.
func (r Retries) AnswerLost(i, k int) bool {
	switch r.LostAnswers {
	case 0:
		return false
	case 1:
		return true
	}
	for range k {
		i /= r.LostAnswers
	}
	return i%r.LostAnswers == 0
}

// Resend is whether WeChat sends event i again after the outcomes of its earlier waves (Tries 0:
// not sent in that wave, or not answered yet): unless one of them got a 200 that reached WeChat.
func (r Retries) Resend(i int, earlier []Outcome) bool {
	for k, o := range earlier {
		if o.Status == http.StatusOK && !r.AnswerLost(i, k) {
			return false
		}
	}
	return true
}

// Stream sends pushes as WeChat's fleet does: open loop, a batch of Per events every Tick
// whatever became of the earlier ones (a slow or unavailable server does not slow WeChat down),
// and late waves Late after each batch's start that send again the events Retries picks.
// Outcomes are noted when the Send of a batch's pushes to one replica returns, so a wave counts a
// push answered in time behind a slower one of its batch as unanswered: it errs toward sending
// again (more dedupe to do), never toward losing an event.
type Stream struct {
	Per  int
	Tick time.Duration
	// Late are the delays of the waves after a batch's start at which WeChat sends its events
	// again, e.g. 5, 10 and 15 s.
	Late    []time.Duration
	Retries Retries
	// Pushes are the events, built before the stream starts so that the senders' crypto is not in
	// the timed loop; the stream ends after the last. A stream without them gets its events from
	// More(i), called from one goroutine as each batch is due (for the low rates of the tests that
	// use it), so that every event built is sent and stamped when it is sent; it runs until End,
	// or until More returns nil: there are no more events.
	Pushes []*Push
	More   func(i int) *Push
	// Senders carry the pushes, wave k of event i through Senders[(i+k)%len(Senders)]: with one
	// Sender per replica, each copy of an event goes to the next replica, as a retry may land on
	// any. The same Senders carry every batch, so that their connections carry over.
	Senders []*Sender
	// Clock paces the stream; nil: the real one.
	Clock clock.WithTickerAndDelayedExecution

	stop    chan struct{}
	stopped chan struct{}
	// began and ended are when the first and the last batch started.
	began, ended time.Time
	batches      sync.WaitGroup
	sent         atomic.Int64
	acked        atomic.Int64
	answered     atomic.Int64

	mu sync.Mutex
	// outcomes holds, per event, the outcome of each wave: the push, then its late copies.
	outcomes [][]Outcome
}

// Start begins sending; ctx ends the stream and stops the sending of pushes not yet started.
func (st *Stream) Start(ctx context.Context) {
	st.stop, st.stopped = make(chan struct{}), make(chan struct{})
	if st.Clock == nil {
		st.Clock = clock.RealClock{}
	}
	go func() {
		defer close(st.stopped)
		st.began = st.Clock.Now()
		tick := st.Clock.NewTicker(st.Tick)
		defer tick.Stop()
		for next := 0; ; {
			first, batch := next, st.batch(next)
			if len(batch) == 0 {
				return
			}
			st.mu.Lock()
			for range batch {
				st.outcomes = append(st.outcomes, make([]Outcome, 1+len(st.Late)))
			}
			st.mu.Unlock()
			st.ended = st.Clock.Now()
			for k, after := range st.Late {
				st.batches.Add(1)
				st.Clock.AfterFunc(after, func() {
					defer st.batches.Done()
					st.resend(ctx, first, batch, k+1)
				})
			}
			events := make([]int, len(batch))
			for j := range events {
				events[j] = first + j
			}
			st.send(ctx, 0, events, batch)
			// Counted once its late waves are set, so that a test that steps a fake clock once it
			// sees the batch sent fires them.
			st.sent.Add(int64(len(batch)))
			next += len(batch)
			select {
			case <-st.stop:
				return
			case <-ctx.Done():
				return
			case <-tick.C():
			}
		}
	}()
}

// batch is the events from the first on, at most Per of them.
func (st *Stream) batch(first int) []*Push {
	if st.More == nil {
		return st.Pushes[min(first, len(st.Pushes)):min(first+st.Per, len(st.Pushes))]
	}
	b := make([]*Push, 0, st.Per)
	for j := range st.Per {
		p := st.More(first + j)
		if p == nil {
			break
		}
		b = append(b, p)
	}
	return b
}

// resend sends again, as wave k, the events of a batch (the events from the first on) that
// Retries picks.
func (st *Stream) resend(ctx context.Context, first int, batch []*Push, k int) {
	var events []int
	var pushes []*Push
	st.mu.Lock()
	for j, p := range batch {
		if st.Retries.Resend(first+j, st.outcomes[first+j][:k]) {
			events, pushes = append(events, first+j), append(pushes, p)
		}
	}
	st.mu.Unlock()
	st.send(ctx, k, events, pushes)
}

// send sends pushes, those of the events numbered events, as wave k in the background, event
// i's through Senders[(i+k)%len(Senders)].
func (st *Stream) send(ctx context.Context, k int, events []int, pushes []*Push) {
	for s, sender := range st.Senders {
		var mine []int
		var theirs []*Push
		for n, i := range events {
			if (i+k)%len(st.Senders) == s {
				mine, theirs = append(mine, i), append(theirs, pushes[n])
			}
		}
		if len(mine) == 0 {
			continue
		}
		st.batches.Add(1)
		go func() {
			defer st.batches.Done()
			st.note(k, mine, sender.Send(ctx, theirs))
		}()
	}
}

// note records the outcomes of wave k of the events numbered events.
func (st *Stream) note(k int, events []int, out []Outcome) {
	st.mu.Lock()
	defer st.mu.Unlock()
	defer st.answered.Add(int64(len(out)))
	for n, o := range out {
		i := events[n]
		// Any other wave: a late copy may be answered before a slow first push.
		if o.Status == http.StatusOK && !slices.ContainsFunc(st.outcomes[i], acknowledged) {
			st.acked.Add(1)
		}
		st.outcomes[i][k] = o
	}
}

func acknowledged(o Outcome) bool { return o.Status == http.StatusOK }

// Stopped is closed once the stream starts no more events: its Pushes or More ran out, End was
// called or the context of Start ended. A stream of More that runs out waits on it before End.
func (st *Stream) Stopped() <-chan struct{} { return st.stopped }

// Sent is how many events the stream has started.
func (st *Stream) Sent() int64 { return st.sent.Load() }

// Acked is how many events one of whose pushes has been acknowledged so far.
func (st *Stream) Acked() int64 { return st.acked.Load() }

// Answered is how many pushes, of every wave, have got their final answer so far.
func (st *Stream) Answered() int64 { return st.answered.Load() }

// Sending is how long the stream started events: from its first batch to one tick after its last.
func (st *Stream) Sending() time.Duration { return st.ended.Sub(st.began) + st.Tick }

// End stops starting events (a stream of Pushes: once it has started them all) and returns, once
// every wave of those started has been answered, each event's outcome of each wave: the push,
// then its late copies (Tries 0 where a wave did not send it). It closes the Senders' idle
// connections: a long stream would otherwise leave thousands open until they are collected.
func (st *Stream) End() [][]Outcome {
	if st.More != nil {
		close(st.stop)
	}
	<-st.stopped
	st.batches.Wait()
	for _, s := range st.Senders {
		s.Close()
	}
	return st.outcomes
}

// Lost counts the events none of whose pushes was acknowledged: WeChat gave up on them.
func Lost(outcomes [][]Outcome) int {
	n := 0
	for _, waves := range outcomes {
		if !slices.ContainsFunc(waves, acknowledged) {
			n++
		}
	}
	return n
}

// Wave is the outcomes of wave k of every event.
func Wave(outcomes [][]Outcome, k int) []Outcome {
	out := make([]Outcome, len(outcomes))
	for i, o := range outcomes {
		out[i] = o[k]
	}
	return out
}
