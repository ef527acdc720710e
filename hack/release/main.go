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

// Command release builds what `make release` publishes, without Docker: the operator's image (the
// manager and the callback server, from Go alone) as a tarball that `docker load`,
// `kind load image-archive` and `crane push` read, and the Helm chart packaged for that image.
// The Makefile adds the install manifest beside them.
//
//	go run . -root ../.. -version v1.2.3 -image ghcr.io/qrcode-operator/wechat-qrcode-operator:v1.2.3 -out ../../dist/release/v1.2.3
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// imageFile is the image tarball's name in the release directory.
const imageFile = "image.tar"

// options is one release.
type options struct {
	imageOptions
	image    string // the reference the tarball tags the image with, and the chart deploys
	chartDir string
	outDir   string
}

// artifacts are the paths release wrote.
type artifacts struct {
	image, chart string
	// digest is the image manifest's, which a registry keeps when the tarball is pushed: what
	// to pin the deployment to.
	digest string
}

func release(o options) (artifacts, error) {
	ref, err := name.NewTag(o.image)
	if err != nil {
		return artifacts{}, fmt.Errorf("-image: %w", err)
	}
	if err := os.MkdirAll(o.outDir, 0o755); err != nil {
		return artifacts{}, err
	}
	// The chart first: it fails fast on a version Helm cannot take, before minutes of compiling.
	chartPath, err := packageChart(o.chartDir, o.outDir, o.version, o.image, o.created)
	if err != nil {
		return artifacts{}, fmt.Errorf("packaging the chart: %w", err)
	}
	img, err := buildImage(o.imageOptions)
	if err != nil {
		return artifacts{}, err
	}
	imagePath := filepath.Join(o.outDir, imageFile)
	if err := tarball.WriteToFile(imagePath, ref, img); err != nil {
		return artifacts{}, fmt.Errorf("writing %s: %w", imagePath, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return artifacts{}, err
	}
	return artifacts{image: imagePath, chart: chartPath, digest: digest.String()}, nil
}

func main() {
	var o options
	var platform string
	flag.StringVar(&o.repoRoot, "root", "../..", "the operator's module root")
	flag.StringVar(&o.version, "version", "", "the release version, e.g. v1.2.3 (required)")
	flag.StringVar(&o.revision, "revision", "", "the git commit the release is built from (default: HEAD of -root)")
	flag.StringVar(&o.image, "image", "", "the image reference, repository:tag, e.g. ghcr.io/qrcode-operator/wechat-qrcode-operator:v1.2.3 (required)")
	flag.StringVar(&o.chartDir, "chart", "", "the Helm chart's directory (default: -root's dist/chart)")
	flag.StringVar(&o.outDir, "out", "", "the directory to write the release into (required)")
	flag.StringVar(&platform, "platform", "linux/"+runtime.GOARCH, "os/arch of the image")
	created := flag.Int64("created", -1, "Unix time of the image and the files in it (default: the commit time of -revision)")
	flag.Parse()
	if err := complete(&o, platform, *created); err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		flag.Usage()
		os.Exit(2)
	}
	a, err := release(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "release:", err)
		os.Exit(1)
	}
	fmt.Printf("image %s@%s (%s): %s\nchart: %s\n", o.image, a.digest, platform, a.image, a.chart)
}

// complete checks the required flags and fills the defaults that come from git.
func complete(o *options, platform string, created int64) error {
	if o.version == "" || o.image == "" || o.outDir == "" {
		return fmt.Errorf("-version, -image and -out are required")
	}
	var ok bool
	if o.goos, o.goarch, ok = strings.Cut(platform, "/"); !ok {
		return fmt.Errorf("-platform %q: want os/arch", platform)
	}
	if o.chartDir == "" {
		o.chartDir = filepath.Join(o.repoRoot, "dist", "chart")
	}
	if o.revision == "" {
		rev, err := git(o.repoRoot, "rev-parse", "HEAD")
		if err != nil {
			return err
		}
		o.revision = rev
	}
	if created < 0 {
		ct, err := git(o.repoRoot, "log", "-1", "--format=%ct", o.revision)
		if err != nil {
			return err
		}
		if created, err = strconv.ParseInt(ct, 10, 64); err != nil {
			return err
		}
	}
	o.created = time.Unix(created, 0).UTC()
	return nil
}

func git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}
