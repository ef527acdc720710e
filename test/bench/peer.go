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
	"os/exec"
	"path/filepath"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// peerConfig is the push CPU benchmark: the callback server beside silenceper/wechat's handler
// (test/bench/peer), both processes, on the same signed safe-mode pushes.
type peerConfig struct {
	Events, Senders, Rounds int
}

func (c peerConfig) String() string {
	return fmt.Sprintf("%d safe-mode text-message pushes per server per round, %d rounds alternating the servers, %d concurrent senders; a text message needs no API-server write, so what is measured is verifying, decrypting, parsing and answering \"success\"",
		c.Events, c.Rounds, c.Senders)
}

// textMessage is the i-th user's text message, from textSender(i) saying textContent(i): a push
// the callback server acknowledges without attributing or counting it, like the peer, which
// counts nothing.
func textMessage(i int, at time.Time) []byte {
	return fmt.Appendf(nil, "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[%s]]></Content><MsgId>%d</MsgId></xml>",
		textSender(i), at.Unix(), textContent(i), 1e9+i)
}

func textSender(i int) string  { return fmt.Sprintf("o-text-%d", i) }
func textContent(i int) string { return fmt.Sprintf("hello %d", i) }

func (c peerConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	s, err := r.stage(ctx, "peer", -1)
	if err != nil {
		return nil, err
	}
	defer s.close()
	peerBin := filepath.Join(r.dir, "bin", "peer")
	build := exec.CommandContext(ctx, "go", "build", "-o", peerBin, ".")
	build.Dir = filepath.Join(testenv.RepoRoot(), "test", "bench", "peer")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building test/bench/peer: %w\n%s", err, out)
	}
	cb, err := harness.StartCallback(ctx, r.bins, "callback", s.cp.Kubeconfig, s.ns, s.dir, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cb.Stop(10 * time.Second) }() // a forced kill after the measurement changes no figure
	addr, err := harness.FreeAddr()
	if err != nil {
		return nil, err
	}
	peer, err := harness.StartProcess("peer", peerBin, []string{"--listen=" + addr},
		[]string{"PEER_APP_ID=" + s.acct.AppID, "PEER_TOKEN=" + s.acct.Token, "PEER_ENCODING_AES_KEY=" + s.acct.EncodingAESKey}, s.dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = peer.Stop(10 * time.Second) }() // as above
	readyCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := peer.WaitReady(readyCtx, "http://"+addr+"/readyz"); err != nil {
		return nil, err
	}
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		return nil, err
	}
	servers := []struct{ name, url string }{{"callback", cb.URL}, {"peer", "http://" + addr}}
	cpu := map[string]float64{}
	acked := map[string]int{}
	// A first round of each is a warm-up (connections, the runtime's heap), not measured.
	for round := range c.Rounds + 1 {
		for _, srv := range servers {
			n := c.Events
			if round == 0 {
				n = c.Events / 10
			}
			// Built just before sending, so that their timestamps are fresh, and outside the
			// measurement, so that the sender's crypto is not counted.
			pushes := make([]*harness.Push, n)
			for i := range pushes {
				if pushes[i], err = pusher.Push(textMessage(round*c.Events+i, time.Now()), time.Now()); err != nil {
					return nil, err
				}
			}
			r.logf("peer: round %d, %d pushes to %s", round, n, srv.name)
			sender := &harness.Sender{Targets: []string{srv.url}, Workers: c.Senders, Tries: 1, Timeout: 5 * time.Second}
			before := harness.CPUByName()
			sum := harness.Summarize(sender.Send(ctx, pushes))
			sender.Close()
			used := harness.CPUByName()[srv.name] - before[srv.name]
			if sum.Acked != n {
				return nil, fmt.Errorf("%s acknowledged %d of %d pushes", srv.name, sum.Acked, n)
			}
			if round > 0 {
				cpu[srv.name] += used
				acked[srv.name] += n
			}
		}
	}
	ours, theirs := perEvent(cpu["callback"], acked["callback"]), perEvent(cpu["peer"], acked["peer"])
	const b = "peer"
	return []Figure{
		figure(b, "callback_cpu_per_event", ours, "µs", fmt.Sprintf("callback server: %.2f s of CPU for %d pushes", cpu["callback"], acked["callback"])),
		figure(b, "peer_cpu_per_event", theirs, "µs", fmt.Sprintf("silenceper/wechat v2.1.10: %.2f s of CPU for %d pushes", cpu["peer"], acked["peer"])),
		figure(b, "cpu_vs_peer", ours/theirs, "x", "callback server's CPU per push over the peer's, same pushes, same run").goal("<= 0.5", ours/theirs <= 0.5),
	}, nil
}

// perEvent is CPU seconds over events, in microseconds.
func perEvent(seconds float64, events int) float64 { return seconds / float64(events) * 1e6 }
