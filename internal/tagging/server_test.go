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
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	"sigs.k8s.io/yaml"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

var env testenv.Lazy

func TestMain(m *testing.M) {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	os.Exit(code)
}

// TestServerTrust: the endpoint as the manager serves it, against a real API server: TLS with
// the certificate it publishes in the push config (a client trusting anything else fails), and
// only a token of a ServiceAccount granted post on /tagging by config/rbac/tagging is served;
// any other caller is refused before a scan is read.
func TestServerTrust(t *testing.T) {
	e := env.Get(t)
	ctx := t.Context()
	cs := kubernetes.NewForConfigOrDie(e.Config)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "tagging-"}}
	ns, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role, binding := rbacOf(t, ns.Name)
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	callback, other := tokenOf(t, cs, ns.Name, "callback"), tokenOf(t, cs, ns.Name, "someone-else")

	r := newRig(t, Options{BatchWait: 0, Remember: 100, Calls: 1}, "a")
	filter, err := filters.WithAuthenticationAndAuthorization(e.Config, mustHTTPClient(t, e.Config))
	if err != nil {
		t.Fatal(err)
	}
	published := make(chan *pushconfig.Tagging, 1)
	srv := NewServer(r.t, ServerOptions{BindAddress: "127.0.0.1:0", AdvertiseHost: "127.0.0.1"}, filter,
		func(p *pushconfig.Tagging) { published <- p }, e.Client.Status(), r.t.log)
	sctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(sctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("tagging server: %v", err)
		}
	})
	var ep *pushconfig.Tagging
	select {
	case ep = <-published:
	case err := <-done:
		t.Fatalf("the server stopped: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no endpoint published")
	}
	if !strings.HasPrefix(ep.URL, "https://127.0.0.1:") || !strings.HasSuffix(ep.URL, Path) {
		t.Fatalf("published %s", ep.URL)
	}
	r.srv.URL = ep.URL
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ep.CA)) {
		t.Fatal("the published CA is not PEM")
	}

	o := r.follower(1)
	for _, c := range []struct {
		what, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"a ServiceAccount without post on /tagging", other, http.StatusForbidden},
		{"the callback server's ServiceAccount", callback, http.StatusNoContent},
	} {
		r.client = &http.Client{Transport: &bearer{token: c.token, rt: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}}
		if got := r.post(t, "shop/poster", o); got != c.want {
			t.Errorf("%s: answered %d, want %d", c.what, got, c.want)
		}
		if tagged := r.tagged(o, "a"); tagged != (c.want == http.StatusNoContent) {
			t.Errorf("%s: tagged %v", c.what, tagged)
		}
	}

	r.client = &http.Client{Transport: &bearer{token: callback, rt: http.DefaultTransport}}
	if _, err := r.do(t, "shop/poster", o); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client trusting the system's CAs, not the published certificate: %v, want a certificate error", err)
	}
}

// rbacOf is config/rbac/tagging, bound to the ServiceAccount callback of namespace.
func rbacOf(t *testing.T, namespace string) (*rbacv1.ClusterRole, *rbacv1.ClusterRoleBinding) {
	dir := testenv.RepoRoot() + "/config/rbac/tagging/"
	role, binding := &rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}
	for file, obj := range map[string]any{"role.yaml": role, "role_binding.yaml": binding} {
		b, err := os.ReadFile(dir + file)
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, obj); err != nil {
			t.Fatal(err)
		}
	}
	role.Name += "-" + namespace
	binding.Name += "-" + namespace
	binding.RoleRef.Name = role.Name
	binding.Subjects[0].Namespace = namespace
	return role, binding
}

// tokenOf is a token of a new ServiceAccount name, as a Pod's projected token would be.
func tokenOf(t *testing.T, cs kubernetes.Interface, namespace, name string) string {
	ctx := t.Context()
	if _, err := cs.CoreV1().ServiceAccounts(namespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := cs.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

func mustHTTPClient(t *testing.T, cfg *rest.Config) *http.Client {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return hc
}

// bearer adds a token, as client-go's bearer round tripper does for the deliverer.
type bearer struct {
	token string
	rt    http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	if b.token != "" {
		req = req.Clone(req.Context())
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	return b.rt.RoundTrip(req)
}
