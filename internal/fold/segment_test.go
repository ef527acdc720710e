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
	"encoding/json"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
)

// TestMalformedEntriesSkipped: a segment written by someone other than the callback server (any
// identity with RBAC to write ledgers), garbage between well-formed entries and more garbage
// appended later. The fold counts the well-formed entries exactly, skips the rest, counts each
// malformed entry once in the metric, logs the segment once, and still collects it in time.
func TestMalformedEntriesSkipped(t *testing.T) {
	f := newFixture(t)
	code := f.Codes(1)[0]
	scan := func(key string) qrv1alpha1.LedgerEntry {
		return qrv1alpha1.LedgerEntry{Key: key, Code: client.ObjectKeyFromObject(code).String(), UID: code.UID, At: f.clock.Now().UnixMilli()}
	}
	skipped := func() float64 { return testutil.ToFloat64(malformedEntries) }
	before := skipped()

	seg := &qrv1alpha1.WeChatScanLedger{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.NS, Name: "intruder-" + f.NS},
		Spec: qrv1alpha1.WeChatScanLedgerSpec{Replica: "intruder", Batches: []string{
			qrv1alpha1.FormatLedgerBatch([]qrv1alpha1.LedgerEntry{scan("a"), scan("b")}) + "\ngarbage",
			"",
			`{"k":"c","c":"` + scan("c").Code + `","u":"` + string(code.UID) + `","t":1,"o":2}`,
			qrv1alpha1.FormatLedgerEntry(scan("c")),
		}},
	}
	if err := f.C.Create(f.Ctx, seg); err != nil {
		t.Fatal(err)
	}
	f.wantCounts(code, "3", "0")
	if n := skipped() - before; n != 3 {
		t.Errorf("%v malformed entries counted, want 3", n)
	}

	patch, err := json.Marshal([]map[string]any{{"op": "add", "path": "/spec/batches/-", "value": "1 d\n" + qrv1alpha1.FormatLedgerEntry(scan("d"))}})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.C.Patch(f.Ctx, seg, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		t.Fatal(err)
	}
	f.wantCounts(code, "4", "0")
	if n := skipped() - before; n != 4 {
		t.Errorf("%v malformed entries counted after the append, want 4", n)
	}
	if n := logs.Lines("skipping malformed ledger entries", seg.Name); n != 1 {
		t.Errorf("the segment logged %d times, want once", n)
	}

	// The fold marks count the malformed entries' places: a new folder folds nothing twice.
	f.folds = nil
	f.wantCounts(code, "4", "0")
	f.clock.Step(DefaultOptions().DedupeWindow + ledger.MaxSegmentAge + time.Second)
	f.fold()
	if n := f.Segments(); n != 0 {
		t.Fatalf("%d segments left after the dedupe window", n)
	}
}
