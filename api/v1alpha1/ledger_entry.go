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

package v1alpha1

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/types"
)

// LedgerEntry is one scan as a replica received it: the in-memory form of a ledger entry, stored
// as one line of a batch (FormatLedgerBatch). It never holds an OpenID: only a 64-bit hash of it, for
// the unique-scanner sketch.
type LedgerEntry struct {
	// Key is the event's dedupe key: a hash of FromUserName, CreateTime, Event and EventKey.
	Key string
	// Code is the scanned WeChatQRCode as namespace/name.
	Code string
	// UID is the scanned code's UID: a code deleted and created again starts from zero.
	UID types.UID
	// Subscribe is true for a new follower (subscribe via the code), false for an existing one (SCAN).
	Subscribe bool
	// At is when the replica received the scan, in Unix milliseconds.
	At int64
	// Scanner is a 64-bit hash of the scanner's OpenID.
	Scanner int64
}

// ledgerEntryVersion is the first field of every stored entry. A new format gets a new version,
// so that a folder reading a segment written by an older or newer callback server tells the
// formats apart instead of misreading one as the other.
const ledgerEntryVersion = "1"

// ledgerEntryFields is the number of space-separated fields of a version 1 entry.
const ledgerEntryFields = 7

// FormatLedgerEntry is the stored form of e, version 1: seven fields separated by one space,
//
//	1 <key> <namespace>/<name> <uid> <s|n> <at> <scanner>
//
// s for a new follower (subscribe), n for an existing one (SCAN); at in Unix milliseconds and
// scanner (the OpenID's hash) as signed decimal integers. Keys, Kubernetes names and UIDs hold no
// spaces, so the fields need no quoting; an entry whose fields do hold one does not parse back.
func FormatLedgerEntry(e LedgerEntry) string {
	b := make([]byte, 0, 2+len(e.Key)+1+len(e.Code)+1+len(e.UID)+3+20+1+20)
	b = append(b, ledgerEntryVersion+" "...)
	b = append(b, e.Key...)
	b = append(b, ' ')
	b = append(b, e.Code...)
	b = append(b, ' ')
	b = append(b, e.UID...)
	if e.Subscribe {
		b = append(b, " s "...)
	} else {
		b = append(b, " n "...)
	}
	b = strconv.AppendInt(b, e.At, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, e.Scanner, 10)
	return string(b)
}

// ParseLedgerEntry reads an entry FormatLedgerEntry wrote, strictly: it accepts exactly the
// strings FormatLedgerEntry makes of entries with non-empty fields free of whitespace and a code
// of one namespace and one name, so that what parses formats back to the same string.
func ParseLedgerEntry(s string) (LedgerEntry, error) {
	f := strings.Split(s, " ")
	if len(f) != ledgerEntryFields || f[0] != ledgerEntryVersion {
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: not %d space-separated fields of version %s", s, ledgerEntryFields, ledgerEntryVersion)
	}
	for i, v := range f {
		if v == "" || strings.ContainsFunc(v, unicode.IsSpace) {
			return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: field %d is empty or holds a space", s, i+1)
		}
	}
	e := LedgerEntry{Key: f[1], Code: f[2], UID: types.UID(f[3])}
	if ns, name, ok := strings.Cut(e.Code, "/"); !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: code %q is not namespace/name", s, e.Code)
	}
	switch f[4] {
	case "s":
		e.Subscribe = true
	case "n":
	default:
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: follower field %q is neither s nor n", s, f[4])
	}
	var err error
	if e.At, err = canonicalInt(f[5]); err != nil {
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: time: %w", s, err)
	}
	if e.Scanner, err = canonicalInt(f[6]); err != nil {
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: scanner: %w", s, err)
	}
	return e, nil
}

// canonicalInt parses a decimal int64 written as strconv.FormatInt writes it: no sign but a
// minus, no leading zeros.
func canonicalInt(s string) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, err
	}
	if strconv.FormatInt(n, 10) != s {
		return 0, fmt.Errorf("%q is not a canonical decimal integer", s)
	}
	return n, nil
}

// FormatLedgerBatch is the stored form of one write's entries: their FormatLedgerEntry lines,
// separated by a line break.
func FormatLedgerBatch(entries []LedgerEntry) string {
	lines := make([]string, len(entries))
	for i, e := range entries {
		lines[i] = FormatLedgerEntry(e)
	}
	return strings.Join(lines, "\n")
}

// LedgerBatchLines splits a stored batch into its entries' lines, for ParseLedgerEntry: a
// batch of n entries is n lines, whatever they hold.
func LedgerBatchLines(batch string) []string { return strings.Split(batch, "\n") }
