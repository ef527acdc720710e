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

package v1alpha1_test

import (
	"math"
	"strings"
	"testing"
	"unicode"

	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

func TestLedgerEntryFormat(t *testing.T) {
	scan := qrv1alpha1.LedgerEntry{
		Key: "q1W2e3R4t5Y6", Code: "spring/poster-1", UID: "6f1c2a9e-0001-4b1e-9c3d-000000000001",
		Subscribe: true, At: 1795944600123, Scanner: -4611686018427387904,
	}
	if got, want := qrv1alpha1.FormatLedgerEntry(scan), "1 q1W2e3R4t5Y6 spring/poster-1 6f1c2a9e-0001-4b1e-9c3d-000000000001 s 1795944600123 -4611686018427387904"; got != want {
		t.Fatalf("FormatLedgerEntry = %q, want %q", got, want)
	}
	existing := scan
	existing.Subscribe, existing.At, existing.Scanner = false, 0, math.MaxInt64
	for _, e := range []qrv1alpha1.LedgerEntry{scan, existing} {
		s := qrv1alpha1.FormatLedgerEntry(e)
		got, err := qrv1alpha1.ParseLedgerEntry(s)
		if err != nil || got != e {
			t.Errorf("ParseLedgerEntry(%q) = %+v, %v; want %+v", s, got, err, e)
		}
	}

	withEvent := scan
	withEvent.Event = qrv1alpha1.LedgerEvent{AppID: "wx1234567890abcdef", CreateTime: 1795944600, OpenID: "oAbC-12_x", Scene: "spring sale/1+1=2", Ticket: ""}
	const stored = "2 q1W2e3R4t5Y6 spring/poster-1 6f1c2a9e-0001-4b1e-9c3d-000000000001 s 1795944600123 -4611686018427387904 =wx1234567890abcdef 1795944600 =oAbC-12_x =spring+sale%2F1%2B1%3D2 ="
	if got := qrv1alpha1.FormatLedgerEntry(withEvent); got != stored {
		t.Fatalf("FormatLedgerEntry with an event = %q, want %q", got, stored)
	}
	if got, err := qrv1alpha1.ParseLedgerEntry(stored); err != nil || got != withEvent || !got.HasEvent() {
		t.Fatalf("ParseLedgerEntry(%q) = %+v, %v; want %+v", stored, got, err, withEvent)
	}

	const ok = "1 k ns/name uid n 5 -7"
	const ok2 = "2 k ns/name uid n 5 -7 =wx1 9 =o =1 =t"
	if _, err := qrv1alpha1.ParseLedgerEntry(ok2); err != nil {
		t.Fatalf("ParseLedgerEntry(%q): %v", ok2, err)
	}
	if _, err := qrv1alpha1.ParseLedgerEntry(ok); err != nil {
		t.Fatalf("ParseLedgerEntry(%q): %v", ok, err)
	}
	for _, tc := range []struct{ name, s, want string }{
		{"empty", "", "not 7 space-separated fields"},
		{"another version", "2 k ns/name uid n 5 -7", "of version 1"},
		{"a field missing", "1 k ns/name uid n 5", "not 7"},
		{"a field more", ok + " 9", "not 7"},
		{"two spaces", "1 k  ns/name uid n 5 -7", "not 7"},
		{"trailing space", "1 k ns/name uid n 5 -7 ", "not 7"},
		{"a tab", "1 k\tx ns/name uid n 5 -7", "field 2 is empty or holds a space"},
		{"a line break", "1 k ns/name uid n 5 -7\n", "field 7 is empty"},
		{"no namespace", "1 k /name uid n 5 -7", "not namespace/name"},
		{"no slash", "1 k name uid n 5 -7", "not namespace/name"},
		{"two slashes", "1 k ns/a/b uid n 5 -7", "not namespace/name"},
		{"follower spelled out", "1 k ns/name uid subscribe 5 -7", "neither s nor n"},
		{"plus sign", "1 k ns/name uid n +5 -7", "time"},
		{"leading zero", "1 k ns/name uid n 05 -7", "not a canonical"},
		{"minus zero", "1 k ns/name uid n -0 -7", "not a canonical"},
		{"hex scanner", "1 k ns/name uid n 5 0x7", "scanner"},
		{"scanner overflows", "1 k ns/name uid n 5 9223372036854775808", "scanner"},
		{"version 1 with an event", "1 k ns/name uid n 5 -7 =wx1 9 =o =1 =t", "not 7"},
		{"version 2 without one", "2 k ns/name uid n 5 -7", "nor 12 of version 2"},
		{"event field unescaped", "2 k ns/name uid n 5 -7 wx1 9 =o =1 =t", "field 8: "},
		{"event field escaped twice", "2 k ns/name uid n 5 -7 =wx1 9 =o =a%2Bb%2 =t", "field 11: "},
		{"event field spelled otherwise", "2 k ns/name uid n 5 -7 =wx1 9 =o =a%20b =t", "field 11: "},
		{"create time", "2 k ns/name uid n 5 -7 =wx1 09 =o =1 =t", "create time"},
		{"empty AppID", "2 k ns/name uid n 5 -7 = 9 =o =1 =t", "without an AppID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := qrv1alpha1.ParseLedgerEntry(tc.s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseLedgerEntry(%q) = %v, want an error with %q", tc.s, err, tc.want)
			}
		})
	}
}

// FuzzLedgerEntry checks the format both ways: every entry with well-formed fields round-trips,
// and every string that parses is exactly what formatting its entry writes (no second spelling
// of an entry, so nothing that parses can be misread).
func FuzzLedgerEntry(f *testing.F) {
	f.Add("q1W2e3R4t5Y6", "spring/poster-1", "6f1c2a9e", true, int64(1795944600123), int64(-1), "1 k ns/name uid s 5 -7")
	f.Add("k", "a/b", "u", false, int64(0), int64(math.MinInt64), "1 k ns/name uid n 05 -7")
	f.Fuzz(func(t *testing.T, key, code, uid string, subscribe bool, at, scanner int64, stored string) {
		e := qrv1alpha1.LedgerEntry{Key: key, Code: code, UID: types.UID(uid), Subscribe: subscribe, At: at, Scanner: scanner}
		if len(stored) > 0 && stored[0]%2 == 0 {
			// Half the inputs carry an event, its strings taken from the key and the stored form.
			e.Event = qrv1alpha1.LedgerEvent{AppID: uid, CreateTime: at / 1000, OpenID: key, Scene: stored, Ticket: code}
		}
		got, err := qrv1alpha1.ParseLedgerEntry(qrv1alpha1.FormatLedgerEntry(e))
		switch {
		case err == nil && got != e:
			t.Fatalf("%+v came back as %+v", e, got)
		case err != nil && wellFormed(e):
			t.Fatalf("%+v did not come back: %v", e, err)
		}
		if p, err := qrv1alpha1.ParseLedgerEntry(stored); err == nil && qrv1alpha1.FormatLedgerEntry(p) != stored {
			t.Fatalf("%q parsed as %+v, which formats as %q", stored, p, qrv1alpha1.FormatLedgerEntry(p))
		}
	})
}

// wellFormed is what the callback server's entries are: fields non-empty and free of spaces,
// the code one namespace and one name, and an event only with its AppID (its strings are
// escaped, so any will do).
func wellFormed(e qrv1alpha1.LedgerEntry) bool {
	if !e.HasEvent() && e.Event != (qrv1alpha1.LedgerEvent{}) {
		return false
	}
	for _, f := range []string{e.Key, e.Code, string(e.UID)} {
		if f == "" || strings.ContainsFunc(f, unicode.IsSpace) {
			return false
		}
	}
	ns, name, ok := strings.Cut(e.Code, "/")
	return ok && ns != "" && name != "" && !strings.Contains(name, "/")
}
