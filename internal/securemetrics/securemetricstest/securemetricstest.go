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

// Package securemetricstest checks the /metrics endpoint of a running manager or callback server
// against a real API server: who may scrape it, and whether it serves what the shipped Grafana
// dashboard queries.
package securemetricstest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/yaml"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// Start starts an API server for one test, stopped when it ends, with a new namespace for the
// test's objects.
func Start(t *testing.T) (*testenv.Env, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts an API server")
	}
	// Shown by `go test` only when a test fails (or with -v).
	ctrllog.SetLogger(zap.New(zap.WriteTo(os.Stderr)))
	env, err := testenv.Start()
	must(t, err)
	t.Cleanup(func() { _ = env.Stop() })
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "codes-"}}
	must(t, env.Client.Create(context.Background(), ns))
	return env, ns.Name
}

// Run runs a manager's Start (or main's run) until the test ends, and fails the test if it
// returns an error.
func Run(t *testing.T, what string, run func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", what, err)
		}
	})
}

// FreeAddr returns a loopback address with a free port.
func FreeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// Scrapers are two ServiceAccounts' tokens: Reader's account is bound to the metrics-reader
// ClusterRole of config/rbac/metrics, Stranger's to nothing.
type Scrapers struct{ Reader, Stranger string }

// NewScrapers creates both ServiceAccounts in a new namespace and mints their tokens with the
// TokenRequest API, as a Pod's projected token is minted. It returns once the API server's RBAC
// authorizer lets Reader get /metrics: the metrics server caches a denial for a while, so a
// scrape that raced the binding would fail for longer than the test.
func NewScrapers(t *testing.T, rc *rest.Config) Scrapers {
	t.Helper()
	ctx := context.Background()
	cs, err := kubernetes.NewForConfig(rc)
	must(t, err)
	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "metrics-"}}, metav1.CreateOptions{})
	must(t, err)
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "config", "rbac", "metrics", "reader_role.yaml"))
	must(t, err)
	role := &rbacv1.ClusterRole{}
	must(t, yaml.UnmarshalStrict(raw, role))
	role.Name += "-" + ns.Name
	_, err = cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{})
	must(t, err)
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "reader", Namespace: ns.Name}},
	}
	_, err = cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	must(t, err)
	token := func(name string) string {
		_, err := cs.CoreV1().ServiceAccounts(ns.Name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		must(t, err)
		tr, err := cs.CoreV1().ServiceAccounts(ns.Name).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		must(t, err)
		return tr.Status.Token
	}
	s := Scrapers{Reader: token("reader"), Stranger: token("stranger")}
	err = wait.PollUntilContextTimeout(ctx, 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:                  "system:serviceaccount:" + ns.Name + ":reader",
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: "/metrics", Verb: "get"},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed, nil
	})
	if err != nil {
		t.Fatalf("the API server never let the metrics-reader ServiceAccount get /metrics: %v", err)
	}
	return s
}

// Get scrapes url with a bearer token ("" for none). The certificate is not verified: the
// servers make a self-signed one, and what is tested here is who gets an answer.
func Get(url, token string) (int, string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// RequireAccess checks that the HTTPS /metrics at addr answers 401 to a request without a token,
// 403 to the Stranger, nothing to plain HTTP, and the metrics to the Reader.
func (s Scrapers) RequireAccess(t *testing.T, addr string) {
	t.Helper()
	url := "https://" + addr + "/metrics"
	for _, c := range []struct {
		who, token string
		want       int
	}{{"no token", "", http.StatusUnauthorized}, {"a ServiceAccount without metrics-reader", s.Stranger, http.StatusForbidden}} {
		status, body, err := Get(url, c.token)
		if err != nil || status != c.want || strings.Contains(body, "# TYPE") {
			t.Errorf("%s: HTTP %d (%v), want %d and no metrics", c.who, status, err, c.want)
		}
	}
	if status, body, err := Get("http://"+addr+"/metrics", s.Reader); err == nil && (status == http.StatusOK || strings.Contains(body, "# TYPE")) {
		t.Errorf("plain HTTP: HTTP %d with metrics, want HTTPS only", status)
	}
	if status, body, err := Get(url, s.Reader); err != nil || status != http.StatusOK || !strings.Contains(body, "# TYPE") {
		t.Errorf("metrics-reader: HTTP %d (%v), want 200 and metrics", status, err)
	}
}

// DashboardMetrics returns the metric names that the PromQL queries of the dashboards in
// config/grafana select, each once: the callback server's (their own prefix) if callback, else
// the rest, which are the manager's. The two binaries' tests between them check every name.
func DashboardMetrics(t *testing.T, callback bool) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "grafana", "*.json"))
	must(t, err)
	if len(files) == 0 {
		t.Fatal("no dashboard in config/grafana")
	}
	var names []string
	for _, f := range files {
		raw, err := os.ReadFile(f)
		must(t, err)
		var dashboard any
		must(t, json.Unmarshal(raw, &dashboard))
		exprs := queries(dashboard)
		if len(exprs) == 0 {
			t.Fatalf("%s: no PromQL query", f)
		}
		for _, e := range exprs {
			n, err := MetricNames(e)
			if err != nil || len(n) == 0 {
				t.Fatalf("%s: query %q: names %q, %v; want at least one name", f, e, n, err)
			}
			for _, name := range n {
				if strings.HasPrefix(name, "wechat_qrcode_operator_callback_") == callback {
					names = append(names, name)
				}
			}
		}
	}
	if len(names) == 0 {
		t.Fatalf("the dashboards query no metric of the %s", map[bool]string{true: "callback server", false: "manager"}[callback])
	}
	slices.Sort(names)
	return slices.Compact(names)
}

// queries collects the "expr" strings anywhere in a dashboard: panel targets, rows' panels.
func queries(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if e, ok := v["expr"].(string); ok {
			out = append(out, e)
		}
		for _, x := range v {
			out = append(out, queries(x)...)
		}
	case []any:
		for _, x := range v {
			out = append(out, queries(x)...)
		}
	}
	return out
}

// Exposed returns the series names of a text exposition that carry at least one sample: a
// counter or gauge family's own name; a histogram's name_bucket, name_sum and name_count; a
// summary's name, name_sum and name_count. A family with only HELP and TYPE lines would not
// count, but client_golang writes none: a vector without children is left out altogether, so a
// metric is there only once something has been recorded in it.
func Exposed(t *testing.T, exposition string) map[string]bool {
	t.Helper()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(exposition))
	must(t, err)
	names := map[string]bool{}
	for name, f := range families {
		if len(f.GetMetric()) == 0 {
			continue
		}
		switch f.GetType().String() {
		case "HISTOGRAM", "GAUGE_HISTOGRAM":
			names[name+"_bucket"], names[name+"_sum"], names[name+"_count"] = true, true, true
		case "SUMMARY":
			names[name], names[name+"_sum"], names[name+"_count"] = true, true, true
		default:
			names[name] = true
		}
	}
	return names
}

// RequireServed scrapes https://addr/metrics as the Reader until it serves every name of want,
// calling exercise (if not nil) before each scrape to make the metrics appear, and fails the test
// with the names still missing after a minute.
func (s Scrapers) RequireServed(t *testing.T, addr string, want []string, exercise func()) {
	t.Helper()
	var missing []string
	_ = wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, time.Minute, true, func(context.Context) (bool, error) {
		if exercise != nil {
			exercise()
		}
		status, body, err := Get("https://"+addr+"/metrics", s.Reader)
		if err != nil || status != http.StatusOK {
			missing = []string{fmt.Sprintf("all: HTTP %d, %v", status, err)}
			return false, nil
		}
		have := Exposed(t, body)
		missing = missing[:0]
		for _, n := range want {
			if !have[n] {
				missing = append(missing, n)
			}
		}
		return len(missing) == 0, nil
	})
	if len(missing) > 0 {
		t.Errorf("the dashboard queries metrics that %s/metrics does not serve: %q", addr, missing)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
