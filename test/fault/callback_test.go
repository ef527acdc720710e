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
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/fold"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// scans is a callback test's codes with tickets (the first is the hot one) and the events sent
// to them, with the code each one scans.
type scans struct {
	w      *world
	codes  []*qrv1alpha1.WeChatQRCode
	pusher *harness.Pusher
	want   map[types.NamespacedName]int64
}

func (w *world) scans(codes int) *scans {
	w.t.Helper()
	return w.scansOf(harness.TemporaryCodes(w.ns, codes, 720*time.Hour, 0))
}

// scansOf is scans of codes, created with their tickets.
func (w *world) scansOf(codes []*qrv1alpha1.WeChatQRCode) *scans {
	w.t.Helper()
	s := &scans{w: w, codes: codes, want: map[types.NamespacedName]int64{}}
	if err := harness.CreateIssued(w.ctx, cp.Client, w.acct.AppID, s.codes, 16); err != nil {
		w.t.Fatal(err)
	}
	var err error
	if s.pusher, err = harness.NewPusher(w.acct); err != nil {
		w.t.Fatal(err)
	}
	return s
}

// pick is the code the i-th event scans: every other one the hot code, the rest spread.
func (s *scans) pick(i int) *qrv1alpha1.WeChatQRCode {
	if i%2 == 1 {
		return s.codes[1+i%(len(s.codes)-1)]
	}
	return s.codes[0]
}

// event is the i-th distinct scan: half of them of the hot code, half subscribes.
func (s *scans) event(i int) harness.Event { return s.eventOn(i, s.pick(i)) }

// eventOn is the i-th distinct scan, of code.
func (s *scans) eventOn(i int, code *qrv1alpha1.WeChatQRCode) harness.Event {
	return harness.Event{
		OpenID: scanner(i), CreateTime: time.Now().Unix(), Subscribe: i%4 < 2,
		Scene: strconv.FormatInt(*code.Spec.Scene.ID, 10), Ticket: code.Status.Ticket,
	}
}

// scanner is the OpenID of the i-th distinct scan: every scan has its own, so that a sink can
// tell which ones it got.
func scanner(i int) string { return "o-user-" + strconv.Itoa(i) }

// good is the signed, encrypted push of the i-th event, which the codes must count once.
func (s *scans) good(i int) *harness.Push { return s.goodOn(i, s.pick(i)) }

// goodOn is good of the i-th event made a scan of code.
func (s *scans) goodOn(i int, code *qrv1alpha1.WeChatQRCode) *harness.Push {
	s.want[harness.Key(code)]++
	return s.push(s.pusher, s.eventOn(i, code).XML(), time.Now())
}

func (s *scans) push(p *harness.Pusher, msg []byte, at time.Time) *harness.Push {
	push, err := p.Push(msg, at)
	if err != nil {
		s.w.t.Fatal(err)
	}
	return push
}

// foldLag is how long the annotations may take to show the scans: the fold interval the
// callback servers run with, plus a fold leader's Lease expiring after a kill -9 (15 s), with
// room for a loaded machine.
const foldLag = 45 * time.Second

// checkCounts fails the test unless every code's annotations come to hold exactly the good events
// sent to it within foldLag, plus the time the folder takes to patch every code's annotations at
// its default --view-patch-rate: none lost, none counted twice, nothing else counted.
func (s *scans) checkCounts() {
	s.w.t.Helper()
	catchUp := time.Duration(float64(len(s.codes)) / fold.DefaultOptions().ViewPatchRate * float64(time.Second))
	deadline := time.Now().Add(foldLag + catchUp)
	for !s.exact() && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	var total, want int64
	for _, c := range s.w.list() {
		got, _ := harness.Scans(&c)
		total += got
		want += s.want[harness.Key(&c)]
		if got != s.want[harness.Key(&c)] {
			s.w.t.Errorf("%s: %d scans counted, want %d", c.Name, got, s.want[harness.Key(&c)])
		}
	}
	s.w.t.Logf("%d scans counted for %d good events", total, want)
}

func (s *scans) exact() bool {
	for _, c := range s.w.list() {
		if got, _ := harness.Scans(&c); got != s.want[harness.Key(&c)] {
			return false
		}
	}
	return true
}

// TestCallbackReplicaKilled pushes events to two callback server replicas behind a "load
// balancer" (each try of a push goes to the next replica, as WeChat's retry may land anywhere)
// and kills one with SIGKILL a third of the way through. Proves: every event is acknowledged
// within WeChat's three tries (0 lost), and the annotations hold exactly the events sent (0
// counted twice, even those the killed replica had persisted without answering).
func TestCallbackReplicaKilled(t *testing.T) {
	w := newWorld(t, false)
	n := size(4000, 40000)
	s := w.scans(10)
	a, b := w.callback("callback-a"), w.callback("callback-b")
	pushes := make([]*harness.Push, n)
	for i := range pushes {
		pushes[i] = s.good(i)
	}
	sender := &harness.Sender{Targets: []string{a.URL, b.URL}, Workers: 64, Tries: 3, Timeout: 5 * time.Second, RetryAfter: 100 * time.Millisecond}
	done := make(chan []harness.Outcome, 1)
	go func() { done <- sender.Send(w.ctx, pushes) }()
	eventually(t, time.Minute, "a third of the events answered", func() bool { return sender.Answered() >= int64(n/3) })
	a.Kill()
	sum := harness.Summarize(<-done)
	t.Logf("%d pushes: %d acknowledged, %d needed a retry, final statuses %v", sum.Sent, sum.Acked, sum.Retried, sum.ByStatus)
	if sum.Acked != n {
		t.Errorf("%d of %d events acknowledged within three tries", sum.Acked, n)
	}
	if sum.Retried == 0 {
		t.Error("no push needed a retry: the kill hit nothing in flight and proves nothing")
	}
	s.checkCounts()
}

// TestBadPushesAtVolume mixes, in random order, good pushes with pushes that must count nothing:
// forged signatures, a tampered ciphertext, replays of good pushes, stale timestamps, oversized,
// undecryptable and malformed bodies, another account's ciphertext, plaintext to a safe-mode
// account and an unknown account. Proves: the counts are exactly the good events, every hostile
// push gets the refusal it deserves, and the refusals metric counts every one.
func TestBadPushesAtVolume(t *testing.T) {
	w := newWorld(t, false)
	good := size(1000, 10000)
	s := w.scans(10)
	cb := w.callback("callback")
	other, err := harness.NewPusher(credentials.Account{AppID: "wx" + strings.Repeat("0", 16), Token: w.acct.Token, EncodingAESKey: w.acct.EncodingAESKey})
	if err != nil {
		t.Fatal(err)
	}
	var pushes []*harness.Push
	var want []int
	add := func(p *harness.Push, status int) {
		pushes = append(pushes, p)
		want = append(want, status)
	}
	for i := range good {
		add(s.good(i), http.StatusOK)
	}
	// Every hostile push is of an event never sent in good faith: counting one would show.
	bad := good
	hostile := []struct {
		status int
		make   func(msg []byte) *harness.Push
	}{
		{http.StatusForbidden, func(msg []byte) *harness.Push { // forged URL signature
			p := s.push(s.pusher, msg, time.Now())
			p.Query.Set("signature", wxcrypto.Signature("not-the-token", p.Query.Get("timestamp"), p.Query.Get("nonce")))
			return p
		}},
		{http.StatusForbidden, func(msg []byte) *harness.Push { // ciphertext swapped, msg_signature not
			p := s.push(s.pusher, msg, time.Now())
			p.Body = s.push(s.pusher, s.event(bad).XML(), time.Now()).Body
			return p
		}},
		{http.StatusForbidden, func(msg []byte) *harness.Push { // captured long ago
			return s.push(s.pusher, msg, time.Now().Add(-10*time.Minute))
		}},
		{http.StatusRequestEntityTooLarge, func([]byte) *harness.Push {
			ev := s.event(bad)
			ev.OpenID = strings.Repeat("o", 100<<10)
			return s.push(s.pusher, ev.XML(), time.Now())
		}},
		{http.StatusBadRequest, func([]byte) *harness.Push { // decrypts to something not XML
			return s.push(s.pusher, []byte("<xml><Event>subscribe</Even"), time.Now())
		}},
		{http.StatusBadRequest, func([]byte) *harness.Push { // undecryptable, correctly signed
			p := s.push(s.pusher, nil, time.Now())
			p.Body = []byte("<xml><Encrypt><![CDATA[bm90IGEgY2lwaGVydGV4dA==]]></Encrypt></xml>")
			s.pusher.Sign(p, "bm90IGEgY2lwaGVydGV4dA==")
			return p
		}},
		{http.StatusBadRequest, func(msg []byte) *harness.Push { // another account's message, same key
			p := s.push(other, msg, time.Now())
			p.Path = s.pusher.Path()
			return p
		}},
		{http.StatusForbidden, func(msg []byte) *harness.Push { // plaintext to a safe-mode account
			p := &harness.Push{Path: s.pusher.Path(), Body: msg, Query: url.Values{
				"timestamp": {strconv.FormatInt(time.Now().Unix(), 10)}, "nonce": {"n0nce"}}}
			s.pusher.Sign(p, "")
			return p
		}},
		{http.StatusNotFound, func(msg []byte) *harness.Push { // an account we do not serve
			return s.push(other, msg, time.Now())
		}},
	}
	perKind := max(good/10, 1)
	for _, h := range hostile {
		for range perKind {
			add(h.make(s.event(bad).XML()), h.status)
			bad++
		}
	}
	refused := len(pushes) - good
	for i := range perKind { // replays of good pushes: acknowledged, not counted again
		add(pushes[i*good/perKind], http.StatusOK)
	}
	order := rand.Perm(len(pushes))
	shuffled := make([]*harness.Push, len(pushes))
	for i, j := range order {
		shuffled[i] = pushes[j]
	}

	sender := &harness.Sender{Targets: []string{cb.URL}, Workers: 64, Tries: 3, Timeout: 5 * time.Second}
	outcomes := sender.Send(w.ctx, shuffled)
	wrong := map[string]int{}
	for i, j := range order {
		if got := outcomes[i].Status; got != want[j] {
			wrong[fmt.Sprintf("%d instead of %d", got, want[j])]++
		}
	}
	if len(wrong) > 0 {
		t.Errorf("pushes answered wrongly: %v", wrong)
	}
	s.checkCounts()
	// Each refused push was refused at each of its three tries.
	got, err := harness.Metric(cb.Metrics, "wechat_qrcode_operator_callback_refusals_total")
	if err != nil {
		t.Fatal(err)
	}
	if int(got) != 3*refused {
		t.Errorf("refusals metric %v, want %d (%d hostile pushes, 3 tries each)", got, 3*refused, refused)
	}
	dups, err := harness.Metric(cb.Metrics, "wechat_qrcode_operator_callback_events_total", `result="duplicate"`)
	if err != nil {
		t.Fatal(err)
	}
	if int(dups) != perKind {
		t.Errorf("%v pushes recognised as duplicates, want the %d replays", dups, perKind)
	}
}
