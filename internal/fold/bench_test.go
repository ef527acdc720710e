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
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// BenchmarkFoldRound is one fold round's work in the folder's own process (the API server's
// reads and writes aside) with the dedupe window full: `retained` entries in 500-entry segments
// over 1,000 codes, `fresh` new ones a round (a 5 s round at fresh/5 scans a second), so that
// the window holds 30 rounds. "rebuilt" builds the memory from every retained entry each round,
// as every round did before the memory was kept; "kept" is a folder holding its Lease.
func BenchmarkFoldRound(b *testing.B) {
	for _, size := range []struct{ retained, fresh int }{{90_000, 3_000}, {900_000, 30_000}} {
		for _, kept := range []bool{false, true} {
			name := map[bool]string{false: "rebuilt", true: "kept"}[kept]
			b.Run(fmt.Sprintf("retained=%d/%s", size.retained, name), func(b *testing.B) {
				benchmarkRound(b, size.retained, size.fresh, kept)
			})
		}
	}
}

func benchmarkRound(b *testing.B, retained, fresh int, kept bool) {
	const codes, interval = 1000, 5 * time.Second
	shards := make([]*qrv1alpha1.WeChatScanTally, tallyShards)
	for i := range shards {
		shards[i] = &qrv1alpha1.WeChatScanTally{Spec: qrv1alpha1.WeChatScanTallySpec{Codes: map[string]qrv1alpha1.CodeTally{}, Folded: map[string]int64{}}}
	}
	now := time.Date(2026, 12, 8, 9, 0, 0, 0, time.UTC)
	horizon := DefaultOptions().DedupeWindow + ledger.MaxSegmentAge
	var segs []*segment
	next := 0
	// round appends a round's fresh entries in full segments and drops those past the window.
	round := func() {
		now = now.Add(interval)
		for range fresh / ledger.MaxSegmentEntries {
			s := &segment{WeChatScanLedger: &qrv1alpha1.WeChatScanLedger{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("r-%09d", next)}}}
			for pos := range ledger.MaxSegmentEntries {
				s.entries = append(s.entries, entry{qrv1alpha1.LedgerEntry{
					Key: fmt.Sprintf("k%d", next*ledger.MaxSegmentEntries+pos), Code: fmt.Sprintf("ns/code-%d", pos%codes),
					Scanner: int64(pos), At: now.UnixMilli(),
				}, int64(pos)})
			}
			s.size = int64(len(s.entries))
			segs = append(segs, s)
			next++
		}
		segs = segs[max(0, len(segs)-retained/ledger.MaxSegmentEntries):]
	}
	mem := newMemory(nil)
	fold1 := func() {
		if !kept {
			mem = newMemory(segs)
		}
		mem.forget(now.Add(-horizon).UnixMilli())
		changed, sk := fold(mem, segs, shards, now.UnixMilli())
		if err := sk.store(shards); err != nil {
			b.Fatal(err)
		}
		markFolded(shards, changed, segs)
		mem.agree(segs, shards)
	}
	for range retained / fresh {
		round()
		fold1()
	}
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		round()
		b.StartTimer()
		fold1()
	}
	b.ReportMetric(float64(len(mem.known)), "remembered")
}
