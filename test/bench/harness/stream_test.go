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
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	testingclock "k8s.io/utils/clock/testing"
)

func TestRetriesAnswerLost(t *testing.T) {
	cases := []struct {
		name       string
		lost, i, k int
		want       bool
	}{
		{"none lost", 0, 0, 0, false},
		{"every one lost", 1, 7, 2, true},
		{"wave 0: every fourth", 4, 8, 0, true},
		{"wave 0: not the others", 4, 9, 0, false},
		{"wave 1: second digit 0", 4, 3, 1, true},
		{"wave 1: second digit not 0", 4, 4, 1, false},
		{"wave 2: third digit 0", 4, 5, 2, true},
		{"wave 2: third digit not 0", 4, 16, 2, false},
	}
	for _, c := range cases {
		if got := (Retries{LostAnswers: c.lost}).AnswerLost(c.i, c.k); got != c.want {
			t.Errorf("%s: AnswerLost(%d, %d) with 1 in %d = %v, want %v", c.name, c.i, c.k, c.lost, got, c.want)
		}
	}
	// One answer in four of each wave over many events.
	r := Retries{LostAnswers: 4}
	for k := range 3 {
		n := 0
		for i := range 4096 {
			if r.AnswerLost(i, k) {
				n++
			}
		}
		if n != 1024 {
			t.Errorf("wave %d: %d of 4096 answers lost, want 1024", k, n)
		}
	}
}

func TestRetriesResend(t *testing.T) {
	ok, unavailable, none := Outcome{Status: http.StatusOK, Tries: 1}, Outcome{Status: http.StatusServiceUnavailable, Tries: 1}, Outcome{}
	cases := []struct {
		name    string
		lost, i int
		earlier []Outcome
		want    bool
	}{
		{"acknowledged, answer arrived", 4, 1, []Outcome{ok}, false},
		{"acknowledged, answer lost", 4, 0, []Outcome{ok}, true},
		{"503", 4, 1, []Outcome{unavailable}, true},
		{"no answer in time (in flight or no connection)", 4, 1, []Outcome{none}, true},
		{"acknowledged by the first re-send", 4, 5, []Outcome{unavailable, ok}, false},
		{"both answers lost", 4, 0, []Outcome{ok, ok}, true},
		{"second answer arrived", 4, 4, []Outcome{ok, ok}, false},
		{"strict: re-sent whatever the answers", 1, 5, []Outcome{ok, ok, ok}, true},
		{"no answer lost: acknowledged once is enough", 0, 0, []Outcome{unavailable, ok, none}, false},
	}
	for _, c := range cases {
		if got := (Retries{LostAnswers: c.lost}).Resend(c.i, c.earlier); got != c.want {
			t.Errorf("%s: Resend = %v, want %v", c.name, got, c.want)
		}
	}
}

// TestStream sends 40 events in batches of 10 to two replicas, a server each, that answer 503
// to every event whose number is a multiple of 5 on its first push and 200 otherwise, with two
// late waves that re-send the unacknowledged events and those whose answer
// Retries{LostAnswers: 2} loses. A fake clock fires each wave once every push of the earlier ones
// has been answered.
func TestStream(t *testing.T) {
	var mu sync.Mutex
	got := map[int][]string{} // per event, the replica of each push
	replica := func(name string) *httptest.Server {
		return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			i, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/e/"))
			mu.Lock()
			got[i] = append(got[i], name)
			first := len(got[i]) == 1
			mu.Unlock()
			if first && i%5 == 0 {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
		}))
	}
	a, b := replica("a"), replica("b")
	defer a.Close()
	defer b.Close()
	const n, per, tick, late = 40, 10, 100 * time.Millisecond, 5 * time.Second
	pushes := make([]*Push, n)
	for i := range pushes {
		pushes[i] = &Push{Path: "/e/" + strconv.Itoa(i)}
	}
	fc := testingclock.NewFakeClock(time.Now())
	st := &Stream{
		Per: per, Tick: tick, Late: []time.Duration{late, 2 * late},
		Retries: Retries{LostAnswers: 2}, Pushes: pushes, Clock: fc,
		Senders: []*Sender{
			{Targets: []string{a.URL}, Workers: per, Tries: 1, Timeout: 5 * time.Second},
			{Targets: []string{b.URL}, Workers: per, Tries: 1, Timeout: 5 * time.Second},
		},
	}
	// Wave 0 to replica a or b by the event's parity, each later wave to the other one. Wave 1
	// re-sends the 503s and the even events (answer lost: first binary digit 0); wave 2 those of
	// them whose re-send's answer was lost too (second binary digit 0).
	want := make([][]string, n)
	var wave1, wave2 int
	for i := range want {
		replicas := []string{"a", "b", "a", "b"}[i%2:]
		want[i] = replicas[:1]
		if i%5 == 0 || i%2 == 0 {
			want[i] = replicas[:2]
			wave1++
			if (i/2)%2 == 0 {
				want[i] = replicas[:3]
				wave2++
			}
		}
	}
	st.Start(context.Background())
	for batch := 1; batch <= n/per; batch++ {
		until(t, func() bool { return st.Sent() == int64(batch*per) })
		fc.Step(tick)
	}
	until(t, func() bool { return st.Answered() == n })
	fc.Step(late)
	until(t, func() bool { return st.Answered() == int64(n+wave1) })
	fc.Step(late)
	outcomes := st.End()
	if st.Answered() != int64(n+wave1+wave2) || st.Acked() != n || Lost(outcomes) != 0 {
		t.Errorf("%d pushes answered, %d events acknowledged, %d lost; want %d, %d, 0", st.Answered(), st.Acked(), Lost(outcomes), n+wave1+wave2, n)
	}
	if st.Sending() != n/per*tick {
		t.Errorf("sending took %s, want %s", st.Sending(), n/per*tick)
	}
	for i := range n {
		if strings.Join(got[i], ",") != strings.Join(want[i], ",") {
			t.Errorf("event %d: pushes to %v, want %v (outcomes %+v)", i, got[i], want[i], outcomes[i])
		}
	}
}

// until waits, at most 10 s, until cond holds.
func until(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10 s")
		}
	}
}

// TestStreamAckedOnce: an event acknowledged by a late copy and then by its slow first push (a
// wave sends again a push not answered in time) is one event acknowledged.
func TestStreamAckedOnce(t *testing.T) {
	ok := Outcome{Status: http.StatusOK, Tries: 1}
	st := &Stream{outcomes: [][]Outcome{make([]Outcome, 3), make([]Outcome, 3)}}
	st.note(1, []int{0}, []Outcome{ok})
	st.note(0, []int{0, 1}, []Outcome{ok, {}})
	st.note(2, []int{0, 1}, []Outcome{ok, ok})
	if st.Acked() != 2 || st.Answered() != 5 {
		t.Errorf("%d events acknowledged, %d pushes answered; want 2, 5", st.Acked(), st.Answered())
	}
}

// TestStreamMore: an open-ended stream builds only the events it sends, so that a caller that
// counts the events it builds (the fault tests' expected totals) counts those sent.
func TestStreamMore(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	const per, tick = 5, 100 * time.Millisecond
	var built int
	fc := testingclock.NewFakeClock(time.Now())
	st := &Stream{
		Per: per, Tick: tick, Clock: fc,
		More:    func(int) *Push { built++; return &Push{Path: "/"} },
		Senders: []*Sender{{Targets: []string{srv.URL}, Workers: per, Tries: 1, Timeout: 5 * time.Second}},
	}
	st.Start(context.Background())
	until(t, func() bool { return st.Sent() == per })
	fc.Step(tick)
	until(t, func() bool { return st.Sent() == 2*per })
	outcomes := st.End()
	if built != 2*per || len(outcomes) != 2*per || st.Acked() != 2*per {
		t.Errorf("%d events built, %d sent, %d acknowledged; want %d each", built, len(outcomes), st.Acked(), 2*per)
	}
}

// TestStreamMoreEnds: a stream whose More runs out ends by itself after the last event, a
// partial batch included, and End returns every event's outcome.
func TestStreamMoreEnds(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	const per, tick, n = 5, 100 * time.Millisecond, 7
	fc := testingclock.NewFakeClock(time.Now())
	st := &Stream{
		Per: per, Tick: tick, Clock: fc,
		More: func(i int) *Push {
			if i >= n {
				return nil
			}
			return &Push{Path: "/"}
		},
		Senders: []*Sender{{Targets: []string{srv.URL}, Workers: per, Tries: 1, Timeout: 5 * time.Second}},
	}
	st.Start(context.Background())
	until(t, func() bool { return st.Sent() == per })
	fc.Step(tick)
	until(t, func() bool { return st.Sent() == n })
	fc.Step(tick)
	<-st.Stopped()
	outcomes := st.End()
	if len(outcomes) != n || st.Acked() != n {
		t.Errorf("%d events sent, %d acknowledged; want %d each", len(outcomes), st.Acked(), n)
	}
}
