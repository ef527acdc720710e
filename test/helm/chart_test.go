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

package helm

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"helm.sh/helm/v4/pkg/chart/v2/lint"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// withOptionalParts turns on what config/default leaves commented out: the Ingress and the
// ServiceMonitor.
var withOptionalParts = map[string]any{
	"ingress":        map[string]any{"enabled": true},
	"serviceMonitor": map[string]any{"enabled": true},
}

// onlyInKustomize are the objects config/ has and the chart deliberately leaves out: Helm
// installs into a namespace that exists (or that --create-namespace makes).
var onlyInKustomize = []string{"Namespace//" + releaseNamespace}

// TestChartMatchesConfig renders the chart with its default values and config/ with kustomize and
// requires the same objects with the same content, labels and selectors aside: the chart adds
// Helm's labels and an instance label to its selectors (TestSelectorsFindTheirTargets checks
// those). A change to config/ that the chart does not follow, or the reverse, fails here.
func TestChartMatchesConfig(t *testing.T) {
	chrt := loadChart(t)
	for _, tc := range []struct {
		name   string
		dirs   []string
		values map[string]any
	}{
		{"defaults", []string{"default"}, nil},
		{"with Ingress and ServiceMonitor", []string{"default", "ingress", "prometheus"}, withOptionalParts},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fromHelm := byKey(append(renderChart(t, chrt, tc.values), chartCRDs(t)...))
			fromKustomize := byKey(renderKustomize(t, tc.dirs...))
			for _, k := range onlyInKustomize {
				if _, ok := fromKustomize[k]; !ok {
					t.Errorf("config/ no longer renders %s: drop it from onlyInKustomize", k)
				}
				delete(fromKustomize, k)
			}
			if diff := cmp.Diff(sortedKeys(fromKustomize), sortedKeys(fromHelm)); diff != "" {
				t.Fatalf("objects (kind/namespace/name), -kustomize +helm:\n%s", diff)
			}
			for k, want := range fromKustomize {
				if diff := cmp.Diff(comparable(want), comparable(fromHelm[k])); diff != "" {
					t.Errorf("%s, -kustomize +helm:\n%s", k, diff)
				}
			}
		})
	}
}

// TestChartCRDsAreConfigCRDs: helm installs crds/ as they are, so they must be the files
// controller-gen wrote, byte for byte (make manifests copies them).
func TestChartCRDsAreConfigCRDs(t *testing.T) {
	bases := filepath.Join(testenv.RepoRoot(), "config", "crd", "bases")
	entries, err := os.ReadDir(bases)
	if err != nil {
		t.Fatal(err)
	}
	inChart := map[string][]byte{}
	for _, f := range loadChart(t).CRDObjects() {
		inChart[filepath.Base(f.Filename)] = f.File.Data
	}
	for _, e := range entries {
		want, err := os.ReadFile(filepath.Join(bases, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := inChart[e.Name()]
		if !ok {
			t.Errorf("dist/chart/crds/%s is missing: run make manifests", e.Name())
		} else if string(got) != string(want) {
			t.Errorf("dist/chart/crds/%s differs from config/crd/bases: run make manifests", e.Name())
		}
		delete(inChart, e.Name())
	}
	for name := range inChart {
		t.Errorf("dist/chart/crds/%s is not in config/crd/bases: run make manifests", name)
	}
}

// TestSelectorsFindTheirTargets checks, in both renderings, that every selector and port name
// reaches what it is meant to: the Services and the PodDisruptionBudget select the operator's
// Pods, the ServiceMonitor selects the metrics Service, and the named ports exist.
func TestSelectorsFindTheirTargets(t *testing.T) {
	renderings := map[string][]*unstructured.Unstructured{
		"helm":      renderChart(t, loadChart(t), withOptionalParts),
		"kustomize": renderKustomize(t, "default", "ingress", "prometheus"),
	}
	for name, objs := range renderings {
		t.Run(name, func(t *testing.T) {
			checkWiring(t, byKey(objs))
		})
	}
}

func checkWiring(t *testing.T, objs map[string]*unstructured.Unstructured) {
	t.Helper()
	deploy := objs["Deployment/"+releaseNamespace+"/"+releaseName+"-controller"]
	if deploy == nil {
		t.Fatal("no Deployment")
	}
	podLabels, _, _ := unstructured.NestedStringMap(deploy.Object, "spec", "template", "metadata", "labels")
	podPorts := map[string]bool{}
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		ports, _, _ := unstructured.NestedSlice(c.(map[string]any), "ports")
		for _, p := range ports {
			podPorts[p.(map[string]any)["name"].(string)] = true
		}
	}
	for _, path := range [][]string{{"Deployment", "spec", "selector", "matchLabels"}, {"PodDisruptionBudget", "spec", "selector", "matchLabels"}, {"Service", "spec", "selector"}} {
		for k, o := range objs {
			if o.GetKind() != path[0] {
				continue
			}
			sel, _, _ := unstructured.NestedStringMap(o.Object, path[1:]...)
			if !selects(sel, podLabels) {
				t.Errorf("%s selects %v, not the Pods labelled %v", k, sel, podLabels)
			}
			if o.GetKind() == "Service" {
				for _, p := range servicePorts(o) {
					if !podPorts[p["targetPort"].(string)] {
						t.Errorf("%s: targetPort %v is no container port", k, p["targetPort"])
					}
				}
			}
		}
	}
	checkNetworkPolicy(t, objs["NetworkPolicy/"+releaseNamespace+"/"+releaseName+"-controller"], podLabels, podPorts)
	metrics := objs["Service/"+releaseNamespace+"/"+releaseName+"-metrics"]
	monitor := objs["ServiceMonitor/"+releaseNamespace+"/"+releaseName]
	if metrics == nil || monitor == nil {
		t.Fatal("no metrics Service or ServiceMonitor")
	}
	sel, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
	if !selects(sel, metrics.GetLabels()) {
		t.Errorf("the ServiceMonitor selects %v, not the metrics Service labelled %v", sel, metrics.GetLabels())
	}
	endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
	if len(endpoints) != 2 {
		t.Errorf("the ServiceMonitor has %d endpoints, want the manager's and the callback server's", len(endpoints))
	}
	for _, e := range endpoints {
		if !hasPortNamed(metrics, e.(map[string]any)["port"]) {
			t.Errorf("the ServiceMonitor scrapes port %v, which the metrics Service lacks", e.(map[string]any)["port"])
		}
	}
	ingress := objs["Ingress/"+releaseNamespace+"/"+releaseName+"-callback"]
	if ingress == nil {
		t.Fatal("no Ingress")
	}
	rules, _, _ := unstructured.NestedSlice(ingress.Object, "spec", "rules")
	for _, r := range rules {
		paths, _, _ := unstructured.NestedSlice(r.(map[string]any), "http", "paths")
		for _, p := range paths {
			backend, _, _ := unstructured.NestedMap(p.(map[string]any), "backend", "service")
			svc := objs["Service/"+releaseNamespace+"/"+backend["name"].(string)]
			port, _, _ := unstructured.NestedString(backend, "port", "name")
			if svc == nil || !hasPortNamed(svc, port) {
				t.Errorf("the Ingress routes to %v, which is no Service port", backend)
			}
		}
	}
}

// checkNetworkPolicy: the policy selects the operator's Pods, lets only them reach the tagging
// port, and lets anyone reach every other port of theirs, by a name the Pods have.
func checkNetworkPolicy(t *testing.T, policy *unstructured.Unstructured, podLabels map[string]string, podPorts map[string]bool) {
	t.Helper()
	if policy == nil {
		t.Fatal("no NetworkPolicy")
	}
	sel, _, _ := unstructured.NestedStringMap(policy.Object, "spec", "podSelector", "matchLabels")
	if !selects(sel, podLabels) {
		t.Errorf("the NetworkPolicy selects %v, not the Pods labelled %v", sel, podLabels)
	}
	open := map[string]bool{}
	rules, _, _ := unstructured.NestedSlice(policy.Object, "spec", "ingress")
	for _, r := range rules {
		from, _, _ := unstructured.NestedSlice(r.(map[string]any), "from")
		ports, _, _ := unstructured.NestedSlice(r.(map[string]any), "ports")
		for _, p := range ports {
			name, _ := p.(map[string]any)["port"].(string)
			if !podPorts[name] {
				t.Errorf("the NetworkPolicy allows port %v, which is no container port", p.(map[string]any)["port"])
			}
			switch {
			case name == "tagging" && len(from) != 1:
				t.Errorf("the tagging port is allowed from %v, want the operator's Pods alone", from)
			case name == "tagging":
				peer, _, _ := unstructured.NestedStringMap(from[0].(map[string]any), "podSelector", "matchLabels")
				if _, others := from[0].(map[string]any)["namespaceSelector"]; others || !selects(peer, podLabels) {
					t.Errorf("the tagging port is allowed from %v, want the operator's Pods alone", from)
				}
			case len(from) != 0:
				t.Errorf("port %s is allowed from %v only, want anyone: the policy is about the tagging port", name, from)
			}
			open[name] = true
		}
	}
	for p := range podPorts {
		if !open[p] {
			t.Errorf("the NetworkPolicy closes port %s of the Pods", p)
		}
	}
}

// TestLint runs helm lint (its Go package) with the default values and with the optional parts
// on; any warning or error fails.
func TestLint(t *testing.T) {
	for _, values := range []map[string]any{nil, withOptionalParts} {
		result := lint.RunAll(chartDir, values, releaseNamespace)
		for _, m := range result.Messages {
			if m.Severity >= support.WarningSev {
				t.Errorf("helm lint (values %v): %s", values, m)
			} else {
				t.Logf("helm lint: %s", m)
			}
		}
	}
}

// TestCallbackReadsOnlyThePushConfig: the callback server finds its accounts in the push config
// Secret the manager projects, so it has no --account flag, and of Secrets it may read that one
// alone, in the release namespace: nothing cluster-wide, no other name.
func TestCallbackReadsOnlyThePushConfig(t *testing.T) {
	objs := byKey(renderChart(t, loadChart(t), nil))
	deploy := objs["Deployment/"+releaseNamespace+"/"+releaseName+"-controller"]
	containers, _, _ := unstructured.NestedSlice(deploy.Object, "spec", "template", "spec", "containers")
	for _, c := range containers {
		args, _, _ := unstructured.NestedStringSlice(c.(map[string]any), "args")
		for _, a := range args {
			if strings.HasPrefix(a, "--account") {
				t.Errorf("flag %s: the callback server follows the accounts without flags", a)
			}
		}
	}
	secretRules := func(o *unstructured.Unstructured) []any {
		var out []any
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			if res, _, _ := unstructured.NestedStringSlice(r.(map[string]any), "resources"); slices.Contains(res, "secrets") {
				out = append(out, r)
			}
		}
		return out
	}
	if rules := secretRules(objs["ClusterRole//"+releaseName+"-callback-role"]); len(rules) > 0 {
		t.Errorf("the callback's ClusterRole grants Secrets: %v", rules)
	}
	want := []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"secrets"}, "resourceNames": []any{"wechat-qrcode-push-config"}, "verbs": []any{"get", "list", "watch"}}}
	if diff := cmp.Diff(want, secretRules(objs["Role/"+releaseNamespace+"/"+releaseName+"-callback-role"])); diff != "" {
		t.Errorf("the callback's Role on Secrets, -want +got:\n%s", diff)
	}
}

// comparable is an object without what the two install methods label and select differently.
func comparable(o *unstructured.Unstructured) map[string]any {
	c := o.DeepCopy()
	unstructured.RemoveNestedField(c.Object, "metadata", "labels")
	unstructured.RemoveNestedField(c.Object, "spec", "selector")
	unstructured.RemoveNestedField(c.Object, "spec", "template", "metadata")
	if c.GetKind() == "NetworkPolicy" {
		unstructured.RemoveNestedField(c.Object, "spec", "podSelector")
		rules, _, _ := unstructured.NestedSlice(c.Object, "spec", "ingress")
		for _, r := range rules {
			delete(r.(map[string]any), "from")
		}
		_ = unstructured.SetNestedSlice(c.Object, rules, "spec", "ingress")
	}
	return c.Object
}

func chartCRDs(t *testing.T) []*unstructured.Unstructured {
	t.Helper()
	var objs []*unstructured.Unstructured
	for _, f := range loadChart(t).CRDObjects() {
		objs = append(objs, parseObjects(t, f.Filename, f.File.Data)...)
	}
	return objs
}

func byKey(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	m := make(map[string]*unstructured.Unstructured, len(objs))
	for _, o := range objs {
		m[key(o)] = o
	}
	return m
}

func sortedKeys(m map[string]*unstructured.Unstructured) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// selects tells whether a non-empty selector matches labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func servicePorts(svc *unstructured.Unstructured) []map[string]any {
	ports, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
	out := make([]map[string]any, 0, len(ports))
	for _, p := range ports {
		out = append(out, p.(map[string]any))
	}
	return out
}

func hasPortNamed(svc *unstructured.Unstructured, name any) bool {
	return slices.ContainsFunc(servicePorts(svc), func(p map[string]any) bool { return p["name"] == name })
}
