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

package fold

import (
	"cmp"
	"time"

	"github.com/go-logr/logr"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// segment is a ledger segment as the folder read it, its entries parsed once per version of it.
type segment struct {
	// The segment's metadata; its stored entries are dropped once parsed.
	*qrv1alpha1.WeChatScanLedger
	// entries are those that parsed, in stored order.
	entries []entry
	// size is the number of stored entries (lines of the batches), malformed ones included: the
	// fold marks are positions in the segment, so an entry that does not parse keeps its place and
	// counts for nothing.
	size      int64
	malformed int
	// batches is how many batches were parsed; events how many entries carry a scan event,
	// which keeps the segment until the deliverer is past them.
	batches, events int
	// last is the newest entry's time: when the segment stops mattering to the dedupe window.
	last time.Time
	// current is the resourceVersion the latest list showed: the deliverer's commits move it
	// past the one read.
	current string
}

// entry is a parsed ledger entry and its position in the segment.
type entry struct {
	qrv1alpha1.LedgerEntry
	pos int64
}

// parseSegment parses obj's entries. prev is the same segment as read before (nil: never):
// batches are only ever appended, so only the entries past prev's count as newly malformed in
// the metric, and a segment is logged only when it first shows one, not at every append after.
//
// A segment whose batches did not change since prev (the deliverer wrote its status) keeps
// prev's entries: only its metadata and status are new.
func parseSegment(obj *qrv1alpha1.WeChatScanLedger, prev *segment, log logr.Logger) *segment {
	if prev != nil && prev.batches == len(obj.Spec.Batches) {
		seg := *prev
		seg.WeChatScanLedger = obj
		obj.Spec.Batches = nil
		return &seg
	}
	seg := &segment{WeChatScanLedger: obj, last: obj.CreationTimestamp.Time, batches: len(obj.Spec.Batches)}
	var firstErr error
	fresh := 0
	for pos, e := range ledger.Entries(obj.Spec.Batches, 0) {
		seg.size = pos + 1
		if e.Err != nil {
			seg.malformed++
			if prev == nil || pos >= prev.size {
				fresh++
			}
			firstErr = cmp.Or(firstErr, e.Err)
			continue
		}
		seg.entries = append(seg.entries, entry{e.LedgerEntry, pos})
		if e.HasEvent() {
			seg.events++
		}
	}
	if n := len(seg.entries); n > 0 {
		seg.last = time.UnixMilli(seg.entries[n-1].At)
	}
	obj.Spec.Batches = nil
	malformedEntries.Add(float64(fresh))
	if seg.malformed > 0 && (prev == nil || prev.malformed == 0) {
		log.Error(firstErr, "skipping malformed ledger entries: only the callback server writes ledger segments; whoever else has RBAC to write them wrote these", "segment", obj.Name, "malformed", seg.malformed)
	}
	return seg
}
