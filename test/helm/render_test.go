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

// Package helm tests the Helm chart in dist/chart: helm lint, a server-side dry run of what it
// renders against a real API server, and a comparison with what kustomize renders from config/,
// so that the two install methods cannot drift apart.
package helm

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/chart/common"
	"helm.sh/helm/v4/pkg/chart/common/util"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	"helm.sh/helm/v4/pkg/engine"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// The release that installs what config/default installs: a release named like the chart, in the
// namespace config/operator puts the operator in.
const (
	releaseName      = "wechat-qrcode-operator"
	releaseNamespace = "wechat-qrcode-operator-system"
)

var chartDir = filepath.Join(testenv.RepoRoot(), "dist", "chart")

// loadChart loads dist/chart as helm install does.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("loading %s: %v", chartDir, err)
	}
	return chrt
}

// renderChart renders the chart's templates as helm template does, with values over the chart's
// defaults, in template-name order; the CRDs of crds/ are not among them (see chrt.CRDObjects).
func renderChart(t *testing.T, chrt *chart.Chart, values map[string]any) []*unstructured.Unstructured {
	t.Helper()
	opts := common.ReleaseOptions{Name: releaseName, Namespace: releaseNamespace, Revision: 1, IsInstall: true}
	vals, err := util.ToRenderValues(chrt, values, opts, common.DefaultCapabilities)
	if err != nil {
		t.Fatalf("values: %v", err)
	}
	files, err := engine.Render(chrt, vals)
	if err != nil {
		t.Fatalf("rendering the chart: %v", err)
	}
	names := make([]string, 0, len(files))
	for name := range files {
		if strings.HasSuffix(name, ".yaml") {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var objs []*unstructured.Unstructured
	for _, name := range names {
		objs = append(objs, parseObjects(t, name, []byte(files[name]))...)
	}
	return objs
}

// renderKustomize builds the given directories of config/ together, as one kustomization listing
// them would, with kustomize's Go API (the version of `go tool kustomize`).
func renderKustomize(t *testing.T, dirs ...string) []*unstructured.Unstructured {
	t.Helper()
	root := t.TempDir()
	var kustomization strings.Builder
	kustomization.WriteString("resources:\n")
	for _, dir := range dirs {
		// kustomize takes relative paths only.
		rel, err := filepath.Rel(root, filepath.Join(testenv.RepoRoot(), "config", dir))
		if err != nil {
			t.Fatal(err)
		}
		kustomization.WriteString("- " + rel + "\n")
	}
	if err := os.WriteFile(filepath.Join(root, "kustomization.yaml"), []byte(kustomization.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	opts := krusty.MakeDefaultOptions()
	// The directories lie outside the scratch kustomization's root.
	opts.LoadRestrictions = types.LoadRestrictionsNone
	resources, err := krusty.MakeKustomizer(opts).Run(filesys.MakeFsOnDisk(), root)
	if err != nil {
		t.Fatalf("kustomize build of %v: %v", dirs, err)
	}
	out, err := resources.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return parseObjects(t, "kustomize build", out)
}

// parseObjects decodes a YAML stream, skipping empty documents, with one decoder for both
// renderings so that their numbers and strings compare alike.
func parseObjects(t *testing.T, source string, stream []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := k8syaml.NewYAMLOrJSONDecoder(bytes.NewReader(stream), 4096)
	var objs []*unstructured.Unstructured
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatalf("%s: %v", source, err)
		}
		if len(obj) > 0 {
			objs = append(objs, &unstructured.Unstructured{Object: obj})
		}
	}
}

// key names an object uniquely within one rendering.
func key(o *unstructured.Unstructured) string {
	return strings.Join([]string{o.GetKind(), o.GetNamespace(), o.GetName()}, "/")
}
