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

package ledger

import (
	"slices"
	"testing"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// TestEntries: every line has its place, malformed or empty ones too, counted on from first; an
// early stop stops.
func TestEntries(t *testing.T) {
	e := func(key string) qrv1alpha1.LedgerEntry {
		return qrv1alpha1.LedgerEntry{Key: key, Code: "ns/code", UID: "u", At: 1}
	}
	batches := []string{
		qrv1alpha1.FormatLedgerBatch([]qrv1alpha1.LedgerEntry{e("a"), e("b")}) + "\ngarbage",
		"",
		qrv1alpha1.FormatLedgerEntry(e("c")),
	}
	type line struct {
		pos int64
		key string
		ok  bool
	}
	var got []line
	for pos, s := range Entries(batches, 10) {
		got = append(got, line{pos, s.Key, s.Err == nil})
	}
	want := []line{{10, "a", true}, {11, "b", true}, {12, "", false}, {13, "", false}, {14, "c", true}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	n := 0
	for range Entries(batches, 0) {
		if n++; n == 2 {
			break
		}
	}
	if n != 2 {
		t.Errorf("%d entries after a break at 2", n)
	}
}
