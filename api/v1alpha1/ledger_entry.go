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
	"net/url"
	"strconv"
	"strings"
	"unicode"

	"k8s.io/apimachinery/pkg/types"
)

// LedgerEntry is one scan as a replica received it: the in-memory form of a ledger entry, stored
// as one line of a batch (FormatLedgerBatch). Counting needs only a 64-bit hash of the OpenID
// (the unique-scanner sketch); the OpenID itself is stored only in the Event of a scan that has a
// sink to reach, for as long as the segment is kept for delivery.
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
	// Event is what a scan event needs beyond the count, stored only for a scan whose account or
	// code has a sink: the zero value (no AppID) for the others.
	Event LedgerEvent
}

// LedgerEvent is the part of a scan that only its CloudEvent needs.
type LedgerEvent struct {
	// AppID of the account the push came to: the event's source.
	AppID string
	// CreateTime is the push's CreateTime, in Unix seconds: the event's time.
	CreateTime int64
	// OpenID of the scanner, Scene as WeChat reports it (scene id in decimal or scene string) and
	// Ticket (empty when the push had none), as the event carries them.
	OpenID, Scene, Ticket string
}

// HasEvent is whether e carries its scan event's data: whether its scan had a sink to reach.
func (e LedgerEntry) HasEvent() bool { return e.Event.AppID != "" }

// The first field of every stored entry is its version: a new format gets a new version, so that
// a folder reading a segment written by an older or newer callback server tells the formats apart
// instead of misreading one as the other. Version 1 is a count alone, version 2 a count with its
// event's data (LedgerEvent); a scan with no sink is still written as version 1.
const (
	ledgerEntryVersion      = "1"
	ledgerEventEntryVersion = "2"
)

// ledgerEntryFields is the number of space-separated fields of a version 1 entry; version 2 has
// ledgerEventFields more.
const (
	ledgerEntryFields = 7
	ledgerEventFields = 5
)

// FormatLedgerEntry is the stored form of e, version 1: seven fields separated by one space,
//
//	1 <key> <namespace>/<name> <uid> <s|n> <at> <scanner>
//
// s for a new follower (subscribe), n for an existing one (SCAN); at in Unix milliseconds and
// scanner (the OpenID's hash) as signed decimal integers. Keys, Kubernetes names and UIDs hold no
// spaces, so the fields need no quoting; an entry whose fields do hold one does not parse back.
//
// An entry with an Event is version 2: the same fields after a 2, then five more,
//
//	<appID> <createTime> <openID> <scene> <ticket>
//
// each string written as "=" and its query escaping (url.QueryEscape), since a scene string may
// hold spaces and a ticket may be empty; createTime in Unix seconds.
func FormatLedgerEntry(e LedgerEntry) string {
	b := make([]byte, 0, 2+len(e.Key)+1+len(e.Code)+1+len(e.UID)+3+20+1+20)
	if e.HasEvent() {
		b = append(b, ledgerEventEntryVersion+" "...)
	} else {
		b = append(b, ledgerEntryVersion+" "...)
	}
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
	if e.HasEvent() {
		b = appendEscaped(b, e.Event.AppID)
		b = append(b, ' ')
		b = strconv.AppendInt(b, e.Event.CreateTime, 10)
		for _, v := range []string{e.Event.OpenID, e.Event.Scene, e.Event.Ticket} {
			b = appendEscaped(b, v)
		}
	}
	return string(b)
}

// appendEscaped appends a space and v as a version 2 string field.
func appendEscaped(b []byte, v string) []byte {
	return append(append(b, " ="...), url.QueryEscape(v)...)
}

// unescape reads a version 2 string field, only in the spelling appendEscaped writes.
func unescape(f string) (string, error) {
	v, err := url.QueryUnescape(strings.TrimPrefix(f, "="))
	if err != nil || "="+url.QueryEscape(v) != f {
		return "", fmt.Errorf("%.40q is not an escaped string", f)
	}
	return v, nil
}

// ParseLedgerEntry reads an entry FormatLedgerEntry wrote, strictly: it accepts exactly the
// strings FormatLedgerEntry makes of entries with non-empty fields free of whitespace and a code
// of one namespace and one name, so that what parses formats back to the same string.
func ParseLedgerEntry(s string) (LedgerEntry, error) {
	f := strings.Split(s, " ")
	if !(len(f) == ledgerEntryFields && f[0] == ledgerEntryVersion) && !(len(f) == ledgerEntryFields+ledgerEventFields && f[0] == ledgerEventEntryVersion) {
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: not %d space-separated fields of version %s, nor %d of version %s",
			s, ledgerEntryFields, ledgerEntryVersion, ledgerEntryFields+ledgerEventFields, ledgerEventEntryVersion)
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
	if len(f) == ledgerEntryFields {
		return e, nil
	}
	if e.Event, err = parseLedgerEvent(f[ledgerEntryFields:]); err != nil {
		return LedgerEntry{}, fmt.Errorf("ledger entry %.80q: %w", s, err)
	}
	return e, nil
}

// parseLedgerEvent reads the five event fields of a version 2 entry.
func parseLedgerEvent(f []string) (LedgerEvent, error) {
	var (
		ev  LedgerEvent
		err error
	)
	if ev.CreateTime, err = canonicalInt(f[1]); err != nil {
		return ev, fmt.Errorf("create time: %w", err)
	}
	for _, s := range []struct {
		i   int
		dst *string
	}{{0, &ev.AppID}, {2, &ev.OpenID}, {3, &ev.Scene}, {4, &ev.Ticket}} {
		if *s.dst, err = unescape(f[s.i]); err != nil {
			return ev, fmt.Errorf("field %d: %w", ledgerEntryFields+s.i+1, err)
		}
	}
	if ev.AppID == "" {
		return ev, fmt.Errorf("version %s without an AppID", ledgerEventEntryVersion)
	}
	return ev, nil
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
