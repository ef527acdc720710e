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

// Package hack_test checks what the scripts of hack/ build.
package hack_test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// pinned is the version hack/controlplane/go.mod pins of module.
func pinned(t *testing.T, module string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", module)
	cmd.Dir = filepath.Join(testenv.RepoRoot(), "hack", "controlplane")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list -m %s: %v", module, err)
	}
	return strings.TrimSpace(string(out))
}

// run runs one of the control plane's binaries and returns its standard output.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	dir, err := testenv.Assets()
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(filepath.Join(dir, bin), args...).Output()
	if err != nil {
		t.Fatalf("%s %s: %v", bin, strings.Join(args, " "), err)
	}
	return string(out)
}

// TestControlPlaneVersions: the binaries hack/controlplane.sh builds report the versions go.mod
// pins, not the v0.0.0-master placeholder of an unstamped build, so that a version skew between
// them and a cluster shows.
func TestControlPlaneVersions(t *testing.T) {
	k8s := pinned(t, "k8s.io/kubernetes")
	var v struct {
		ClientVersion struct {
			Major, Minor, GitVersion, GitTreeState, BuildDate string
		}
	}
	out := run(t, "kubectl", "version", "--client", "-o", "json")
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("kubectl version: %v in %s", err, out)
	}
	c := v.ClientVersion
	major, rest, _ := strings.Cut(strings.TrimPrefix(k8s, "v"), ".")
	minor, _, _ := strings.Cut(rest, ".")
	if c.GitVersion != k8s || c.Major != major || c.Minor != minor || c.GitTreeState != "clean" {
		t.Errorf("kubectl version --client = %+v, want %s (major %s, minor %s), clean tree", c, k8s, major, minor)
	}
	if c.BuildDate == "1970-01-01T00:00:00Z" {
		t.Errorf("kubectl's build date is the unstamped default %s", c.BuildDate)
	}
	if got, want := strings.TrimSpace(run(t, "kube-apiserver", "--version")), "Kubernetes "+k8s; got != want {
		t.Errorf("kube-apiserver --version = %q, want %q", got, want)
	}
	etcd := pinned(t, "go.etcd.io/etcd/server/v3")
	if got, want := run(t, "etcd", "--version"), "etcd Version: "+strings.TrimPrefix(etcd, "v")+"\n"; !strings.HasPrefix(got, want) {
		t.Errorf("etcd --version = %q, want it to start with %q", got, want)
	}
}

// modules lists the module (as replaced) of every package `go list -deps args...` reaches from dir,
// with the version selected.
func modules(t *testing.T, dir string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command("go", append([]string{"list", "-deps", "-f",
		"{{with .Module}}{{with .Replace}}{{.Path}} {{.Version}}{{else}}{{.Path}} {{.Version}}{{end}}{{end}}"}, args...)...)
	cmd.Dir = filepath.Join(testenv.RepoRoot(), dir)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if exit := (*exec.ExitError)(nil); errors.As(err, &exit) {
			stderr = exit.Stderr
		}
		t.Fatalf("go list -deps %s in %s: %v\n%s", strings.Join(args, " "), dir, err, stderr)
	}
	mods := map[string]string{}
	for line := range strings.Lines(string(out)) {
		if path, version, ok := strings.Cut(strings.TrimSpace(line), " "); ok && version != "" {
			mods[path] = version
		}
	}
	return mods
}

// The control plane's build, the operator's tests and the chart's tests compile their common
// packages once (make test's cold run is several minutes shorter) only while each module they
// share is selected at one version in all three go.mod files.
func TestSharedModuleVersions(t *testing.T) {
	operator := modules(t, ".", "-test", "./...")
	for _, other := range []struct {
		dir  string
		args []string
	}{
		{"hack/controlplane", []string{"./etcd", "./kube-apiserver", "./kubectl"}},
		{"test/helm", []string{"-test", "./..."}},
	} {
		for path, version := range modules(t, other.dir, other.args...) {
			if v, ok := operator[path]; ok && v != version {
				t.Errorf("%s builds %s@%s, the operator %s@%s: raise the lower (go get %s@<higher> in its module, then go mod tidy)",
					other.dir, path, version, path, v, path)
			}
		}
	}
}
