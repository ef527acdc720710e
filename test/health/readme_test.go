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

package health

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// TestReadmeHealthLua: the argocd-cm the README gives holds, for each kind, exactly the script
// TestHealth runs, so what users paste is what was tested.
func TestReadmeHealthLua(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```yaml\n(apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: argocd-cm\n.*?)```").FindAllSubmatch(readme, -1)
	if len(blocks) != 1 {
		t.Fatalf("the README has %d argocd-cm blocks, want 1", len(blocks))
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(blocks[0][1], &cm); err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds() {
		script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), k.lua))
		if err != nil {
			t.Fatal(err)
		}
		key := "resource.customizations.health.wechat.qrcode-operator.io_" + k.name
		if got, ok := cm.Data[key]; !ok || got != string(script) {
			t.Errorf("the README's argocd-cm %s differs from %s:\n%s", key, k.lua, got)
		}
	}
}
