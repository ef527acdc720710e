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

package tagging

import (
	"encoding/json"
	"testing"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// TestTaggingPatchReplaces: a new term's figures, merged into the status the last manager left
// (an error and skips), are the new figures alone, as the API server merges them.
func TestTaggingPatchReplaces(t *testing.T) {
	at := metav1.NewTime(time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC))
	old := qrv1alpha1.WeChatQRCode{Status: qrv1alpha1.WeChatQRCodeStatus{Tagging: &qrv1alpha1.TaggingStatus{
		Since: at, Tagged: 900, InvalidOpenID: 3, ForeignOpenID: 2, FollowerTagLimit: 1,
		LastError: "errcode 45009: quota", LastErrorTime: &at,
	}}}
	doc, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	want := qrv1alpha1.TaggingStatus{Since: metav1.NewTime(at.Add(time.Hour)), Tagged: 5}
	merged, err := jsonpatch.MergePatch(doc, taggingPatch(want))
	if err != nil {
		t.Fatal(err)
	}
	var got qrv1alpha1.WeChatQRCode
	if err := json.Unmarshal(merged, &got); err != nil {
		t.Fatal(err)
	}
	if !equality.Semantic.DeepEqual(got.Status.Tagging, &want) {
		t.Errorf("status.tagging after the patch: %+v, want %+v", got.Status.Tagging, want)
	}
}
