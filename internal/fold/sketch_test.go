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
	"math"
	"testing"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// TestUniqueScannersEstimate folds 100,000 distinct synthetic OpenIDs, each scanning twice,
// through the tally's sketch (encoded and decoded between rounds, as across folds): the estimate
// is within 2% of the truth, and the encoded sketch stays small enough for a tally shard.
func TestUniqueScannersEstimate(t *testing.T) {
	const truth, rounds = 100_000, 10
	shards := make([]*qrv1alpha1.WeChatScanTally, tallyShards)
	for i := range shards {
		shards[i] = &qrv1alpha1.WeChatScanTally{Spec: qrv1alpha1.WeChatScanTallySpec{Codes: map[string]qrv1alpha1.CodeTally{}}}
	}
	const code = "ns/poster"
	sh := shards[shardOf(code)]
	for r := range rounds {
		sk := sketches{}
		for i := r * truth / rounds; i < (r+1)*truth/rounds; i++ {
			for try := range 2 {
				add(sh, qrv1alpha1.LedgerEntry{Key: fmt.Sprintf("%d/%d", i, try), Code: code, UID: "u", Scanner: ledger.ScannerHash(fmt.Sprintf("oAbCd%09d", i))}, sk)
			}
		}
		if err := sk.store(shards); err != nil {
			t.Fatal(err)
		}
	}
	got := sh.Spec.Codes[code]
	if e := math.Abs(float64(got.UniqueScanners)-truth) / truth; e > 0.02 {
		t.Errorf("estimate %d for %d distinct scanners: error %.2f%%, want at most 2%%", got.UniqueScanners, truth, 100*e)
	}
	if got.Scans != 2*truth {
		t.Errorf("%d scans, want %d", got.Scans, 2*truth)
	}
	if n := len(got.Scanners); n > 17<<10 {
		t.Errorf("sketch of %d bytes, want at most 17 KiB", n)
	}
	t.Logf("estimate %d for %d; sketch %d bytes", got.UniqueScanners, truth, len(got.Scanners))
}
