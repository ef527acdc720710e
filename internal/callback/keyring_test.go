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

package callback

import (
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
)

// secretAt is the push Secret from a moment on: AppID to token; nil is a deleted Secret.
type secretAt struct {
	at       time.Duration
	accounts map[string]string
}

// TestKeyringHistory: which accounts the keyring serves, with which token, at a time, given the
// push Secret's history: those in the Secret, and those that left it (or went with it) less than
// the grace ago, with their last token; never an AppID it never held; and only the ones in the
// Secret in Accounts(), which the status report follows. The gauges say which is which.
func TestKeyringHistory(t *testing.T) {
	const grace = 10 * time.Minute
	a1, a2 := map[string]string{"wxa": "tok-a1"}, map[string]string{"wxa": "tok-a2"}
	ab := map[string]string{"wxa": "tok-a1", "wxb": "tok-b"}
	b, bc := map[string]string{"wxb": "tok-b"}, map[string]string{"wxb": "tok-b", "wxc": "tok-c"}
	none := map[string]string{}
	cases := []struct {
		name    string
		grace   time.Duration
		history []secretAt
		at      time.Duration
		// served is what lookup serves, by AppID, the token; inSecret what Accounts() returns.
		served   map[string]string
		inSecret []string
	}{
		{"in the Secret", grace, []secretAt{{0, ab}}, time.Hour, ab, []string{"wxa", "wxb"}},
		{"removed, within grace", grace, []secretAt{{0, ab}, {time.Minute, b}}, time.Minute + grace - time.Second, ab, []string{"wxb"}},
		{"removed, grace passed", grace, []secretAt{{0, ab}, {time.Minute, b}}, time.Minute + grace, b, []string{"wxb"}},
		{"Secret deleted, within grace", grace, []secretAt{{0, ab}, {time.Minute, nil}}, 5 * time.Minute, ab, nil},
		{"Secret deleted, grace passed", grace, []secretAt{{0, ab}, {time.Minute, nil}}, 11 * time.Minute, none, nil},
		{"back with a new token: served with it at once", grace, []secretAt{{0, a1}, {time.Minute, none}, {2 * time.Minute, a2}}, 2 * time.Minute, a2, []string{"wxa"}},
		{"back: no longer departed", grace, []secretAt{{0, a1}, {time.Minute, none}, {2 * time.Minute, a2}}, time.Hour, a2, []string{"wxa"}},
		{"left again: the grace runs from the second departure", grace,
			[]secretAt{{0, a1}, {time.Minute, none}, {2 * time.Minute, a2}, {3 * time.Minute, none}}, 3*time.Minute + grace - time.Second, a2, nil},
		{"left again, grace passed", grace,
			[]secretAt{{0, a1}, {time.Minute, none}, {2 * time.Minute, a2}, {3 * time.Minute, none}}, 3*time.Minute + grace, none, nil},
		{"the grace runs per account, from its departure", grace,
			[]secretAt{{0, ab}, {time.Minute, b}, {5 * time.Minute, bc}, {10 * time.Minute, b}}, time.Minute + grace, bc, []string{"wxb"}},
		{"grace 0: removed answers at once", 0, []secretAt{{0, ab}, {time.Minute, b}}, time.Minute, b, []string{"wxb"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			clk := clocktesting.NewFakeClock(start)
			k := &keyring{clock: clk, grace: tc.grace}
			t.Cleanup(func() { forgetAccounts("wxa", "wxb", "wxc") })
			for _, s := range tc.history {
				clk.SetTime(start.Add(s.at))
				if s.accounts == nil {
					k.store(nil)
				} else {
					k.serve(keysFor(s.accounts))
				}
			}
			clk.SetTime(start.Add(tc.at))
			for _, prune := range []bool{false, true} {
				if prune {
					k.prune()
				}
				for _, appID := range []string{"wxa", "wxb", "wxc", "wxnever"} {
					keys, want := k.lookup(appID), tc.served[appID]
					if got := tokenOf(keys); got != want {
						t.Errorf("pruned=%v: %s served with %q, want %q", prune, appID, got, want)
					}
				}
				var inSecret []string
				for _, a := range k.Accounts() {
					inSecret = append(inSecret, a.AppID)
				}
				if slices.Sort(inSecret); !slices.Equal(inSecret, tc.inSecret) {
					t.Errorf("pruned=%v: Accounts() %v, want %v", prune, inSecret, tc.inSecret)
				}
			}
			// Pruned: each served account in exactly one gauge, the others in none.
			for _, appID := range []string{"wxa", "wxb", "wxc"} {
				_, served := tc.served[appID]
				inSecret := slices.Contains(tc.inSecret, appID)
				loaded, departed := gaugeHas(t, accountLoaded, appID), gaugeHas(t, accountDeparted, appID)
				if loaded != inSecret || departed != (served && !inSecret) {
					t.Errorf("%s: account_loaded %v, account_departed %v; want %v and %v", appID, loaded, departed, inSecret, served && !inSecret)
				}
			}
		})
	}
}

// TestKeyringLookupAllocates nothing: it is on every push's path, departed accounts included.
func TestKeyringLookupAllocates(t *testing.T) {
	t.Cleanup(func() { forgetAccounts("wxa", "wxb") })
	k := &keyring{clock: clocktesting.NewFakeClock(time.Now()), grace: time.Minute}
	k.serve(keysFor(map[string]string{"wxa": "tok-a", "wxb": "tok-b"}))
	k.serve(keysFor(map[string]string{"wxa": "tok-a"}))
	for _, appID := range []string{"wxa", "wxb", "wxnever"} {
		if n := testing.AllocsPerRun(100, func() { k.lookup(appID) }); n != 0 {
			t.Errorf("lookup(%s): %v allocations", appID, n)
		}
	}
}

// TestDepartedAccountPushes: through the push handler, an account removed from the push Secret
// has its pushes verified and counted until the grace passes, then refused as unknown; an AppID
// never served is refused at once; an account back with a new token needs the new token at once.
func TestDepartedAccountPushes(t *testing.T) {
	counter := newStubCounter()
	s, clk, pushers := unitServer(t, counter)
	// Shorter than --max-clock-skew: the pushes are signed with the wall clock's timestamp.
	const grace = 2 * time.Minute
	s.keyring.grace = grace
	t.Cleanup(func() { forgetAccounts("wxplain", "wxsafe") })
	config := maps.Clone(*s.keyring.byAppID.Load())
	write := func() { s.keyring.serve(maps.Clone(config)) }
	write()
	p := pushers[plaintext]
	scans := 0
	scan := func() *push {
		scans++
		return p.build(t, scanXML("o-departed", int64(1700000000+scans), "SCAN", "1", "TICKET-P"))
	}
	wantStatus := func(what string, r *push, status int, reason string) {
		t.Helper()
		refused := refusalCount(reason)
		if got, body := r.serve(s); got != status {
			t.Fatalf("%s: %d %q, want %d", what, got, body, status)
		}
		if reason != "" && refusalCount(reason) != refused+1 {
			t.Errorf("%s: not refused as %s", what, reason)
		}
	}

	delete(config, "wxplain")
	write()
	clk.Step(grace - time.Second)
	s.keyring.prune()
	wantStatus("a removed account's push within the grace", scan(), http.StatusOK, "")
	if got := counter.scansOf("plain"); got != 1 {
		t.Errorf("a removed account's scan within the grace: counted %d times, want 1", got)
	}
	stranger := &pusher{appID: "wxnever", token: "tok-plain", mode: plaintext}
	wantStatus("a push for an AppID never served", stranger.build(t, scanXML("o1", 1, "unsubscribe", "-", "")), http.StatusNotFound, "unknown_account")

	clk.Step(time.Second)
	wantStatus("a removed account's push after the grace", scan(), http.StatusNotFound, "unknown_account")
	s.keyring.prune()
	wantStatus("a removed account's push after the grace, pruned", scan(), http.StatusNotFound, "unknown_account")

	// Back, with a new token, while still in its grace: the old token no longer verifies.
	delete(config, "wxsafe")
	write()
	clk.Step(time.Second)
	q := pushers[safe]
	config["wxsafe"] = &pushKeys{appID: "wxsafe", token: "tok-safe-2", ciphers: s.keyring.lookup("wxsafe").ciphers}
	write()
	wantStatus("the re-added account's old token", q.build(t, scanXML("o1", 1, "unsubscribe", "-", "")), http.StatusForbidden, "bad_signature")
	q.token = "tok-safe-2"
	wantStatus("the re-added account's new token", q.build(t, scanXML("o1", 1, "unsubscribe", "-", "")), http.StatusOK, "")
}

// keysFor is the push Secret of accounts (AppID to token) as keysOf serves it.
func keysFor(accounts map[string]string) map[string]*pushKeys {
	keys := map[string]*pushKeys{}
	for appID, token := range accounts {
		keys[appID] = &pushKeys{appID: appID, token: token, account: pushconfig.Account{AppID: appID, Token: token}}
	}
	return keys
}

func tokenOf(k *pushKeys) string {
	if k == nil {
		return ""
	}
	return k.token
}

// gaugeHas is whether g has a series for appID, without creating one.
func gaugeHas(t *testing.T, g *prometheus.GaugeVec, appID string) bool {
	t.Helper()
	ch := make(chan prometheus.Metric)
	go func() {
		g.Collect(ch)
		close(ch)
	}()
	found := false
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Error(err)
		}
		for _, l := range pb.GetLabel() {
			found = found || (l.GetName() == "app_id" && l.GetValue() == appID)
		}
	}
	return found
}

// forgetAccounts deletes the gauges' series of appIDs, which the other tests may serve too.
func forgetAccounts(appIDs ...string) {
	for _, appID := range appIDs {
		accountLoaded.DeleteLabelValues(appID)
		accountDeparted.DeleteLabelValues(appID)
	}
}
