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
	"context"
	"strings"
	"sync"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// TestServerSideDryRun sends every object the chart installs (its CRDs and templates, with the
// Ingress and the ServiceMonitor) to a real kube-apiserver as a
// server-side apply with dryRun=All: the API server's own validation, defaulting and admission
// judge them. The release namespace enforces and warns on the restricted Pod Security Standard,
// and any warning fails, so an unknown field or a Pod the standard would reject fails here.
func TestServerSideDryRun(t *testing.T) {
	env, err := testenv.Start()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Stop() })
	ctx := t.Context()
	warnings := &warningRecorder{}
	cfg := rest.CopyConfig(env.Config)
	cfg.WarningHandlerWithContext = warnings
	c, err := client.New(cfg, client.Options{Scheme: env.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	restricted := map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}
	for _, ns := range []string{releaseNamespace} {
		if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: restricted}}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: []*apiextensionsv1.CustomResourceDefinition{serviceMonitorCRD()}}); err != nil {
		t.Fatal(err)
	}
	chrt := loadChart(t)
	values := map[string]any{
		"ingress":        map[string]any{"enabled": true, "className": "nginx"},
		"serviceMonitor": map[string]any{"enabled": true, "endpoint": map[string]any{"interval": "30s"}},
	}

	t.Run("everything the chart installs is accepted", func(t *testing.T) {
		objs := append(chartCRDs(t), renderChart(t, chrt, values)...)
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.GetKind()]++
			dryRunApply(ctx, t, c, o)
		}
		for _, kind := range []string{"CustomResourceDefinition", "Deployment", "ServiceAccount", "Secret", "Service", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "PodDisruptionBudget", "Ingress", "ServiceMonitor"} {
			if kinds[kind] == 0 {
				t.Errorf("the chart rendered no %s", kind)
			}
		}
		if w := warnings.take(); len(w) > 0 {
			t.Errorf("the API server warned:\n%s", strings.Join(w, "\n"))
		}
	})

	// The check above can fail: a Pod that may run as root draws the Pod Security warning.
	t.Run("a Pod outside the restricted standard draws a warning", func(t *testing.T) {
		warnings.take()
		for _, o := range renderChart(t, chrt, map[string]any{"podSecurityContext": map[string]any{"runAsNonRoot": false}}) {
			if o.GetKind() == "Deployment" {
				dryRunApply(ctx, t, c, o)
			}
		}
		w := strings.Join(warnings.take(), "\n")
		if !strings.Contains(w, "restricted") || !strings.Contains(w, "runAsNonRoot") {
			t.Errorf("want a restricted Pod Security warning about runAsNonRoot, got %q", w)
		}
	})
}

func dryRunApply(ctx context.Context, t *testing.T, c client.Client, o *unstructured.Unstructured) {
	t.Helper()
	err := c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.DryRunAll, client.FieldOwner("helm-chart-test"), client.ForceOwnership)
	if err != nil {
		t.Errorf("%s: %v", key(o), err)
	}
}

// warningRecorder keeps the API server's warnings (Warning response headers).
type warningRecorder struct {
	mu       sync.Mutex
	warnings []string
}

func (r *warningRecorder) HandleWarningHeaderWithContext(_ context.Context, _ int, _ string, text string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.warnings = append(r.warnings, text)
}

func (r *warningRecorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.warnings
	r.warnings = nil
	return w
}

// serviceMonitorCRD stands in for the Prometheus Operator's CRD, which the test API server lacks:
// it makes the API server accept the kind in the right group, version and scope, and checks no
// field of its spec.
func serviceMonitorCRD() *apiextensionsv1.CustomResourceDefinition {
	preserve := true
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "servicemonitors.monitoring.coreos.com"},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: "monitoring.coreos.com",
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: "ServiceMonitor", ListKind: "ServiceMonitorList", Plural: "servicemonitors", Singular: "servicemonitor"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type: "object", XPreserveUnknownFields: &preserve,
				}},
			}},
		},
	}
}
