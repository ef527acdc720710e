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

package main

import (
	"archive/tar"
	"bytes"
	"crypto/x509"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
)

// TestRelease builds a release for this machine's architecture and checks what a cluster gets: the
// image's config, that a registry takes it under the digest release prints, that its filesystem holds the binaries, the CA roots and the user and nothing to
// run a shell with, that the binaries taken out of its layers are static and report the stamped
// version, and that Helm loads the chart at that version with that image.
func TestRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the manager and the callback server")
	}
	const version = "v9.8.7-rc.1"
	o := options{
		imageOptions: imageOptions{
			repoRoot: "../..",
			version:  version,
			revision: "0123456789abcdef0123456789abcdef01234567",
			goos:     "linux",
			goarch:   runtime.GOARCH,
			created:  time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC),
		},
		image:    "registry.example:5000/wqo:" + version,
		chartDir: "../../dist/chart",
		outDir:   t.TempDir(),
	}
	a, err := release(o)
	if err != nil {
		t.Fatal(err)
	}

	img, err := tarball.ImageFromPath(a.image, nil)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Config.User != "65532:65532" {
		t.Errorf("User = %q, want 65532:65532", cfg.Config.User)
	}
	if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/manager" {
		t.Errorf("Entrypoint = %q, want /manager", got)
	}
	if cfg.OS != "linux" || cfg.Architecture != runtime.GOARCH {
		t.Errorf("platform = %s/%s, want linux/%s", cfg.OS, cfg.Architecture, runtime.GOARCH)
	}
	for k, want := range map[string]string{
		"org.opencontainers.image.version":  version,
		"org.opencontainers.image.revision": o.revision,
		"org.opencontainers.image.source":   "https://github.com/qrcode-operator/wechat-qrcode-operator",
		"org.opencontainers.image.title":    "wechat-qrcode-operator",
	} {
		if got := cfg.Config.Labels[k]; got != want {
			t.Errorf("label %s = %q, want %q", k, got, want)
		}
	}
	if !cfg.Created.Time.Equal(o.created) {
		t.Errorf("Created = %v, want the commit time %v", cfg.Created.Time, o.created)
	}

	pushed := push(t, img)
	if pushed != a.digest {
		t.Errorf("the registry has the image as %s, release printed %s", pushed, a.digest)
	}

	files := imageFiles(t, img)
	// Exactly these, so no shell, package manager or stray build output can slip in.
	var paths []string
	for p := range files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	want := []string{"callback", "etc", "etc/group", "etc/passwd", "etc/ssl", "etc/ssl/certs",
		"etc/ssl/certs/ca-certificates.crt", "home", "home/nonroot", "manager"}
	if !slices.Equal(paths, want) {
		t.Errorf("the image's files are %q, want %q", paths, want)
	}
	if roots := x509.NewCertPool(); !roots.AppendCertsFromPEM(files["etc/ssl/certs/ca-certificates.crt"]) {
		t.Error("the image has no CA roots at /etc/ssl/certs/ca-certificates.crt")
	}
	if !bytes.Contains(files["etc/passwd"], []byte("nonroot:x:65532:65532:")) {
		t.Errorf("/etc/passwd has no nonroot 65532:\n%s", files["etc/passwd"])
	}

	bin := t.TempDir()
	for _, name := range binaries {
		path := filepath.Join(bin, name)
		if err := os.WriteFile(path, files[name], 0o755); err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "linux" {
			continue // built for Linux, so it runs only there
		}
		out, err := exec.Command(path, "--version").CombinedOutput()
		if want := name + " version " + version + "\n"; err != nil || string(out) != want {
			t.Errorf("/%s --version = %q (%v), want %q", name, out, err, want)
		}
	}

	c, err := loader.Load(a.chart)
	if err != nil {
		t.Fatal(err)
	}
	if c.Metadata.Version != "9.8.7-rc.1" || c.Metadata.AppVersion != version {
		t.Errorf("chart version %q, appVersion %q, want 9.8.7-rc.1, %s", c.Metadata.Version, c.Metadata.AppVersion, version)
	}
	if filepath.Base(a.chart) != "wechat-qrcode-operator-9.8.7-rc.1.tgz" {
		t.Errorf("chart archive %s", a.chart)
	}
	image, _ := c.Values["image"].(map[string]any)
	if image["repository"] != "registry.example:5000/wqo" || image["tag"] != version {
		t.Errorf("chart image values %v, want repository registry.example:5000/wqo, tag %s", image, version)
	}
}

// push pushes img, as `crane push image.tar` does, to a registry in this process and returns the
// digest the registry serves it under.
func push(t *testing.T, img v1.Image) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	ref, err := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/wqo:test")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest.String()
}

// imageFiles reads the image's flattened filesystem: regular files with their contents, the rest
// with none.
func imageFiles(t *testing.T, img v1.Image) map[string][]byte {
	t.Helper()
	rc := mutate.Extract(img)
	defer rc.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[strings.TrimSuffix(h.Name, "/")] = data
	}
}

func TestChartVersion(t *testing.T) {
	for version, want := range map[string]string{
		"v1.2.3":              "1.2.3",
		"1.2.3":               "1.2.3",
		"v1.2.3-rc.1":         "1.2.3-rc.1",
		"v1.2.3-4-gcd4b901":   "1.2.3-4-gcd4b901",
		"cd4b901":             "0.0.0-dev-cd4b901",
		"cd4b901-dirty":       "0.0.0-dev-cd4b901-dirty",
		"0123456":             "0.0.0-dev-0123456",
		"v1.2.3-4-gcd4-dirty": "1.2.3-4-gcd4-dirty",
	} {
		if got, err := chartVersion(version); err != nil || got != want {
			t.Errorf("chartVersion(%q) = %q, %v, want %q", version, got, err, want)
		}
	}
	if got, err := chartVersion("not a version!"); err == nil {
		t.Errorf("chartVersion(%q) = %q, want an error", "not a version!", got)
	}
}

func TestSplitImage(t *testing.T) {
	for image, want := range map[string][2]string{
		"wqo:v1":                            {"wqo", "v1"},
		"registry.example:5000/team/wqo:v1": {"registry.example:5000/team/wqo", "v1"},
	} {
		if repo, tag, err := splitImage(image); err != nil || repo != want[0] || tag != want[1] {
			t.Errorf("splitImage(%q) = %q, %q, %v, want %q", image, repo, tag, err, want)
		}
	}
	for _, image := range []string{"wqo", "registry.example:5000/wqo", "wqo@sha256:0123"} {
		if _, _, err := splitImage(image); err == nil {
			t.Errorf("splitImage(%q): want an error", image)
		}
	}
}
