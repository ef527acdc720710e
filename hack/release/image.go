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
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"golang.org/x/crypto/x509roots/fallback/bundle"
)

// The image's facts; the Dockerfile states the same ones and must stay in step with them.
const (
	// nonroot is distroless's nonroot user: config/manager's Pod runs as non-root, and the
	// restricted Pod Security level it enforces needs a numeric user.
	nonroot    = 65532
	imageUser  = "65532:65532"
	entrypoint = "/manager"
	// The path Go's crypto/x509 reads first on Linux, so no SSL_CERT_FILE is needed.
	caBundlePath = "/etc/ssl/certs/ca-certificates.crt"
	sourceURL    = "https://github.com/qrcode-operator/wechat-qrcode-operator"
	title        = "wechat-qrcode-operator"
	versionPkg   = "github.com/qrcode-operator/wechat-qrcode-operator/internal/version"
)

// binaries are the commands the image holds, both at its root: config/manager runs /manager and
// /callback as two containers of one Pod from this one image.
var binaries = []string{"manager", "callback"}

// imageOptions says what to build and how to stamp it.
type imageOptions struct {
	repoRoot string // the operator's module root
	version  string // stamped into the binaries and the version label
	revision string // the git commit, for the revision label
	goos     string
	goarch   string
	// created dates the image and every file in it: the commit's time, so that building one
	// commit twice gives the same image digest.
	created time.Time
}

// buildBinaries compiles the image's commands into dir: static (no libc in the image), without
// the build machine's paths, stamped with the version.
func buildBinaries(o imageOptions, dir string) error {
	args := []string{"build", "-trimpath", "-buildvcs=false",
		"-ldflags=-s -w -X " + versionPkg + ".Version=" + o.version, "-o", dir + string(filepath.Separator)}
	for _, b := range binaries {
		args = append(args, "./cmd/"+b)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = o.repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+o.goos, "GOARCH="+o.goarch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %v: %w", binaries, err)
	}
	return nil
}

// buildImage builds the binaries and wraps them in an image with nothing else but what they need:
// CA roots (WeChat's API is HTTPS), a passwd entry for the user, no shell and no package manager.
func buildImage(o imageOptions) (v1.Image, error) {
	dir, err := os.MkdirTemp("", "release-bin-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if err := buildBinaries(o, dir); err != nil {
		return nil, err
	}
	base, err := baseLayer(o.created)
	if err != nil {
		return nil, err
	}
	files := newTarBuilder(o.created)
	for _, b := range binaries {
		data, err := os.ReadFile(filepath.Join(dir, b))
		if err != nil {
			return nil, err
		}
		files.file("/"+b, 0o755, data)
	}
	bin, err := files.layer()
	if err != nil {
		return nil, err
	}

	cfg := &v1.ConfigFile{
		Architecture: o.goarch,
		OS:           o.goos,
		Created:      v1.Time{Time: o.created},
		Config: v1.Config{
			User:       imageUser,
			Entrypoint: []string{entrypoint},
			WorkingDir: "/",
			Labels: map[string]string{
				"org.opencontainers.image.version":  o.version,
				"org.opencontainers.image.revision": o.revision,
				"org.opencontainers.image.source":   sourceURL,
				"org.opencontainers.image.title":    title,
			},
		},
	}
	// Docker's media types (empty.Image's), not OCI's: a docker tarball keeps no manifest, and whoever
	// reads it (crane push, kind, docker load) writes one with Docker's, so only with those does
	// the digest release prints stay the digest the registry serves.
	img, err := mutate.ConfigFile(empty.Image, cfg)
	if err != nil {
		return nil, err
	}
	// Two layers: the base changes only with the CA roots, so a registry that has one release
	// already stores it and a push uploads the binaries alone.
	return mutate.Append(img,
		mutate.Addendum{Layer: base, History: v1.History{Created: v1.Time{Time: o.created},
			CreatedBy: "hack/release: CA roots from golang.org/x/crypto/x509roots/fallback, /etc/passwd"}},
		mutate.Addendum{Layer: bin, History: v1.History{Created: v1.Time{Time: o.created},
			CreatedBy: "hack/release: go build -trimpath ./cmd/manager ./cmd/callback (CGO_ENABLED=0)"}},
	)
}

// baseLayer holds what a static Go binary still needs of a root filesystem.
func baseLayer(created time.Time) (v1.Layer, error) {
	roots, err := caBundle()
	if err != nil {
		return nil, err
	}
	t := newTarBuilder(created)
	t.dir("/etc", 0o755, 0)
	// os/user and anything that logs the user name look the UID up here.
	t.file("/etc/passwd", 0o644, []byte(fmt.Sprintf(
		"root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", nonroot, nonroot)))
	t.file("/etc/group", 0o644, []byte(fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", nonroot)))
	t.dir("/etc/ssl", 0o755, 0)
	t.dir("/etc/ssl/certs", 0o755, 0)
	t.file(caBundlePath, 0o644, roots)
	t.dir("/home", 0o755, 0)
	t.dir("/home/nonroot", 0o700, nonroot)
	return t.layer()
}

// caBundle is Mozilla's NSS root store as Go's own x509roots/fallback module ships it, in PEM:
// pinned by go.sum and the same on every build machine, where /etc/ssl/certs would be whatever
// the machine has installed. Roots NSS trusts only for certificates issued before a date are left
// out: a PEM bundle cannot carry that limit, so including them would trust them without it.
func caBundle() ([]byte, error) {
	var out bytes.Buffer
	for root := range bundle.Roots() {
		if root.Constraint != nil {
			continue
		}
		if err := pem.Encode(&out, &pem.Block{Type: "CERTIFICATE", Bytes: root.Certificate}); err != nil {
			return nil, err
		}
	}
	return out.Bytes(), nil
}

// tarBuilder writes a layer's tar with fixed times and owners, so that its digest depends on the
// contents alone.
type tarBuilder struct {
	buf     bytes.Buffer
	w       *tar.Writer
	created time.Time
	err     error
}

func newTarBuilder(created time.Time) *tarBuilder {
	t := &tarBuilder{created: created}
	t.w = tar.NewWriter(&t.buf)
	return t
}

func (t *tarBuilder) dir(path string, mode int64, owner int) {
	t.header(&tar.Header{Typeflag: tar.TypeDir, Name: path[1:] + "/", Mode: mode, Uid: owner, Gid: owner})
}

func (t *tarBuilder) file(path string, mode int64, data []byte) {
	t.header(&tar.Header{Typeflag: tar.TypeReg, Name: path[1:], Mode: mode, Size: int64(len(data))})
	if t.err == nil {
		_, t.err = t.w.Write(data)
	}
}

func (t *tarBuilder) header(h *tar.Header) {
	if t.err != nil {
		return
	}
	h.ModTime = t.created
	t.err = t.w.WriteHeader(h)
}

func (t *tarBuilder) layer() (v1.Layer, error) {
	if t.err == nil {
		t.err = t.w.Close()
	}
	if t.err != nil {
		return nil, t.err
	}
	data := t.buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithCompressedCaching)
}
