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
	"iter"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Stored is one stored entry: what it parses to, or why it does not.
type Stored struct {
	qrv1alpha1.LedgerEntry
	Err error
}

// Entries yields the entries of a segment's batches in stored order, each with its position in
// the segment; first is the position of the first batch's first line (the entries of the batches
// read before). Every line has a place, a malformed one too: the fold marks and the delivery
// offsets are positions, so an entry that does not parse keeps its place and counts for nothing.
func Entries(batches []string, first int64) iter.Seq2[int64, Stored] {
	return func(yield func(int64, Stored) bool) {
		pos := first
		for _, batch := range batches {
			for _, line := range qrv1alpha1.LedgerBatchLines(batch) {
				e, err := qrv1alpha1.ParseLedgerEntry(line)
				if !yield(pos, Stored{e, err}) {
					return
				}
				pos++
			}
		}
	}
}
