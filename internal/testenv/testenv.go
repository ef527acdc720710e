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

// Package testenv starts a real kube-apiserver and etcd (built from source by
// hack/controlplane.sh) with the project's CRDs installed, for tests that need the API server's
// own validation, watches and optimistic concurrency rather than a fake client.
package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
)

// Env is a running control plane.
type Env struct {
	Config *rest.Config
	Client client.Client
	Scheme *k8sruntime.Scheme
	// AssetsDir holds the etcd, kube-apiserver and kubectl binaries.
	AssetsDir string

	env *envtest.Environment
}

// RepoRoot is the module's root directory, found from this file's location so that tests in any
// package can reach config/ and hack/.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// Assets returns KUBEBUILDER_ASSETS, or builds the control plane (once, cached) when it is unset,
// so that a plain `go test` works as well as `make test`.
func Assets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "controlplane.sh"))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("building the local control plane (hack/controlplane.sh): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// Start starts etcd and kube-apiserver and installs the CRDs from config/crd/bases.
func Start() (*Env, error) {
	assets, err := Assets()
	if err != nil {
		return nil, err
	}
	s := scheme.New()
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		Scheme:                s,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: s})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, Scheme: s, AssetsDir: assets, env: env}, nil
}

// Stop stops the control plane.
func (e *Env) Stop() error { return e.env.Stop() }

// Run is a TestMain body: it starts a control plane, hands it to setup, runs the tests and stops
// it. A package whose tests all need the API server uses it as
//
//	func TestMain(m *testing.M) { testenv.Run(m, func(e *testenv.Env) { env = e }) }
func Run(m interface{ Run() int }, setup func(*Env)) {
	e, err := Start()
	if err != nil {
		fmt.Fprintln(os.Stderr, "testenv:", err)
		os.Exit(1)
	}
	setup(e)
	code := m.Run()
	if err := e.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "testenv: stopping:", err)
	}
	os.Exit(code)
}

// Lazy is a control plane started by the first test that asks for it, so that a package's unit
// tests and fuzz targets run without one (each fuzz worker process runs TestMain too).
type Lazy struct {
	once sync.Once
	env  *Env
	err  error
}

// Get starts the control plane on first use; when it cannot start, every test that asks fails.
func (l *Lazy) Get(t testing.TB) *Env {
	t.Helper()
	l.once.Do(func() { l.env, l.err = Start() })
	if l.err != nil {
		t.Fatal(l.err)
	}
	return l.env
}

// Stop stops the control plane if a test started it: TestMain calls it after m.Run.
func (l *Lazy) Stop() error {
	if l.env == nil {
		return nil
	}
	return l.env.Stop()
}
