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
	"net/http"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// managerConfig lets WeChat's latency and the workers, not the rate limits, pace the manager.
func managerConfig() harness.ManagerConfig {
	return harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{WeChatQPS: 1000, WeChatBurst: 1000, KubeQPS: 1000, KubeBurst: 2000, Workers: 4}}
}

// action is the qrcode/create action_name of code.
func action(code *qrv1alpha1.WeChatQRCode) string {
	if code.Spec.Type == qrv1alpha1.Permanent {
		return "QR_LIMIT_SCENE"
	}
	return "QR_SCENE"
}

func scene(code *qrv1alpha1.WeChatQRCode) string { return strconv.FormatInt(*code.Spec.Scene.ID, 10) }

// mixedCodes are n codes of the world's namespace, permanent and temporary in turn, scenes from
// first on.
func (w *world) mixedCodes(n int, first int64) []*qrv1alpha1.WeChatQRCode {
	codes := make([]*qrv1alpha1.WeChatQRCode, n)
	for i := range codes {
		name, sc := fmt.Sprintf("code-%d", first+int64(i)), first+int64(i)
		if i%2 == 0 {
			codes[i] = harness.Permanent(w.ns, name, sc)
		} else {
			codes[i] = harness.Temporary(w.ns, name, sc, 24*time.Hour, 0)
		}
	}
	if err := harness.CreateAll(w.ctx, cp.Client, codes, 16); err != nil {
		w.t.Fatal(err)
	}
	return codes
}

// eventually polls cond every few milliseconds for at most timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	poll(t, timeout, 5*time.Millisecond, what, cond)
}

// poll polls cond every interval for at most timeout: conditions that ask the API server poll
// less often than those that read a counter, so as not to load what is under test.
func poll(t *testing.T, timeout, interval time.Duration, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(timeout); !cond(); time.Sleep(interval) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
	}
}

// TestManagerKilledMidIssuance kills the manager with SIGKILL a third of the way through issuing
// a batch of codes, and restarts it. Proves: every code converges; a ticket recorded before the
// kill is never asked for again (the fake counts calls per scene, and a permanent scene asked
// twice is the costly mistake: it counts against the account's 100,000 forever); the only extra
// calls are those in flight at the kill, at most one per worker.
func TestManagerKilledMidIssuance(t *testing.T) {
	w := newWorld(t, true)
	n := size(200, 1000)
	cfg := managerConfig()
	mgr := w.manager(cfg)
	codes := w.mixedCodes(n, 1)

	eventually(t, time.Minute, "a third of the codes asked for", func() bool {
		return w.wechat.Calls(wechattest.EndpointCreate) >= n/3
	})
	mgr.Kill()
	atKill := w.wechat.Calls(wechattest.EndpointCreate)
	recorded := map[string]string{}
	for _, c := range w.list() {
		if c.Status.Ticket != "" {
			recorded[c.Name] = c.Status.Ticket
		}
	}
	inFlight := atKill - len(recorded)
	t.Logf("killed with %d qrcode/create calls made and %d tickets recorded", atKill, len(recorded))
	if atKill >= n {
		t.Fatalf("the kill came after all %d codes were asked for: it proves nothing", n)
	}
	if inFlight < 0 || inFlight > cfg.Workers {
		t.Errorf("%d calls at the kill for %d recorded tickets: %d unrecorded, want 0..%d (one per worker)", atKill, len(recorded), inFlight, cfg.Workers)
	}

	w.manager(cfg)
	w.waitFor(2*time.Minute, harness.AllReady(n))
	if total := w.wechat.Calls(wechattest.EndpointCreate); total > n+inFlight {
		t.Errorf("%d qrcode/create calls for %d codes with %d in flight at the kill", total, n, inFlight)
	}
	final := map[string]qrv1alpha1.WeChatQRCode{}
	for _, c := range w.list() {
		final[c.Name] = c
	}
	var askedTwice int
	for _, code := range codes {
		got := final[code.Name]
		calls := w.wechat.CreatesOf(action(code), scene(code))
		if old, ok := recorded[code.Name]; ok && (calls != 1 || got.Status.Ticket != old) {
			t.Errorf("%s: ticket recorded before the kill, then %d calls for its scene and ticket %q (was %q)", code.Name, calls, got.Status.Ticket, old)
		}
		if calls > 1 {
			askedTwice++
		}
		issued, ok := w.wechat.Code(got.Status.Ticket)
		if !ok || issued.Scene() != scene(code) || issued.Permanent() != (code.Spec.Type == qrv1alpha1.Permanent) {
			t.Errorf("%s: its ticket is not one the fake issued for its scene and type", code.Name)
		}
	}
	if askedTwice > inFlight {
		t.Errorf("%d scenes asked for twice, but only %d calls were in flight at the kill", askedTwice, inFlight)
	}
}

// TestWeChatFaults runs the manager against a WeChat that answers -1 to one create in ten, 502
// to one call in twenty on any endpoint, hangs now and then, and revokes the account's tokens
// every 100 creates (another system force-refreshing); then has a day of 45009. Proves: every
// code converges, each with exactly one successful create; tokens come only from stable_token
// and are never force-refreshed (a force refresh would revoke the token of every other user of
// the AppID, and WeChat allows 20 a day); codes over the quota report it and stop asking.
func TestWeChatFaults(t *testing.T) {
	w := newWorld(t, true)
	fake := w.wechat
	n := size(300, 1000)
	var faulty atomic.Bool
	var invalidations, hangs atomic.Int64
	faulty.Store(true)
	fake.SetFaultRate(wechattest.EndpointCreate, 0.10, wechattest.Fault{Errcode: -1})
	fake.SetFaultRate("", 0.05, wechattest.Fault{HTTPStatus: http.StatusBadGateway})
	fake.OnCall(func(endpoint string, nth int) {
		switch {
		case endpoint != wechattest.EndpointCreate:
		case nth%100 == 0:
			fake.InvalidateTokens(w.acct.AppID)
			invalidations.Add(1)
		case nth%37 == 0 && faulty.Load():
			fake.FailNext(wechattest.EndpointCreate, 1, wechattest.Fault{Hang: true})
			hangs.Add(1)
		}
	})
	cfg := managerConfig()
	// More workers, more creates in flight with a token when it is revoked: the race in which a
	// client that drops whatever token it holds, not the one that failed, ends up forcing a
	// refresh.
	cfg.Workers = 16
	cfg.WeChatTimeout = 2 * time.Second
	w.manager(cfg)
	codes := w.mixedCodes(n, 1)
	if !long {
		// The outage lasts one pass over the codes; the long version keeps it up throughout.
		eventually(t, time.Minute, "every code asked for once", func() bool {
			for _, c := range codes {
				if fake.CreatesOf(action(c), scene(c)) == 0 {
					return false
				}
			}
			return true
		})
		faulty.Store(false)
		fake.ClearFaults()
	}
	w.waitFor(time.Duration(size(2, 10))*time.Minute, harness.AllReady(n))

	issued := fake.CallsWithErrcode(wechattest.EndpointCreate, 0)
	t.Logf("%d codes Ready after %d creates (%d -1, %d 40001), %d hangs, %d token revocations, %d stable_token calls",
		n, fake.Calls(wechattest.EndpointCreate), fake.CallsWithErrcode(wechattest.EndpointCreate, -1),
		fake.CallsWithErrcode(wechattest.EndpointCreate, 40001), hangs.Load(), invalidations.Load(), fake.Calls(wechattest.EndpointStableToken))
	if fake.CallsWithErrcode(wechattest.EndpointCreate, -1) == 0 || fake.CallsWithErrcode(wechattest.EndpointCreate, 40001) == 0 || hangs.Load() == 0 {
		t.Fatal("the faults did not all happen: the test proves nothing")
	}
	// A permanent scene answers its first ticket again, so count tickets by calls, not codes.
	if issued != n {
		t.Errorf("%d successful qrcode/create for %d codes, want exactly one each", issued, n)
	}
	for _, c := range w.list() {
		if got, ok := fake.Code(c.Status.Ticket); !ok || got.Scene() != scene(&c) {
			t.Errorf("%s: its ticket is not one the fake issued for its scene", c.Name)
		}
	}
	if f := fake.ForceRefreshes(); f != 0 {
		t.Errorf("%d stable_token force_refresh calls, want 0: revoked tokens are replaced by a plain stable_token call", f)
	}
	if c := fake.Calls(wechattest.EndpointToken); c != 0 {
		t.Errorf("%d /cgi-bin/token calls, want 0: it revokes every other user's token", c)
	}
	// One fetch per revocation, and one more for a fetch that raced a revocation.
	if got, limit := fake.CallsWithErrcode(wechattest.EndpointStableToken, 0), 2*(int(invalidations.Load())+1); got > limit {
		t.Errorf("%d tokens fetched for %d revocations, want at most %d: a token was dropped while still good", got, invalidations.Load(), limit)
	}

	// The 45009 day: half of a new batch fits in what is left of the quota.
	faulty.Store(false)
	fake.ClearFaults()
	m := size(20, 200)
	fake.SetCreateQuota(issued + m/2)
	more := w.mixedCodes(m, int64(n+1))
	isNew := map[string]bool{}
	for _, c := range more {
		isNew[c.Name] = true
	}
	tally := func(codes []qrv1alpha1.WeChatQRCode) (ready, quota, other int) {
		for i := range codes {
			if !isNew[codes[i].Name] {
				continue
			}
			ok, reason := harness.ReadyReason(&codes[i])
			switch {
			case ok:
				ready++
			case reason == qrv1alpha1.ReasonQuotaExhausted:
				quota++
			default:
				other++
			}
		}
		return ready, quota, other
	}
	w.waitFor(time.Minute, harness.Condition{
		Done: func(codes []qrv1alpha1.WeChatQRCode) bool {
			ready, quota, _ := tally(codes)
			return ready+quota == m
		},
		Explain: func(codes []qrv1alpha1.WeChatQRCode) string {
			ready, quota, other := tally(codes)
			return fmt.Sprintf("of %d new codes, %d Ready, %d QuotaExhausted, %d neither", m, ready, quota, other)
		},
	})
	if ready, quota, _ := tally(w.list()); ready != m/2 || quota != m-m/2 {
		t.Errorf("with quota for %d of %d new codes: %d Ready, %d QuotaExhausted", m/2, m, ready, quota)
	}
	over := fake.CallsWithErrcode(wechattest.EndpointCreate, 45009)
	time.Sleep(3 * time.Second)
	if again := fake.CallsWithErrcode(wechattest.EndpointCreate, 45009); over != m-m/2 || again != over {
		t.Errorf("%d codes over the quota asked %d times, then %d more within 3 s: want once each, then nothing until the quota resets", m-m/2, over, again-over)
	}
}
