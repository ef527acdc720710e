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
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	chartutil "helm.sh/helm/v4/pkg/chart/v2/util"
)

// chartVersion is the release version as the SemVer 2 a chart's version must be: "v1.2.3" is
// 1.2.3, and "v1.2.3-4-gcd4b901" (4 commits past it) 1.2.3-4-gcd4b901. A checkout with no tag
// behind it ("cd4b901-dirty") is 0.0.0-dev-cd4b901-dirty: "dev-" because a pre-release part that is
// all digits may not start with 0, and an abbreviated commit can be all digits. Either pre-release
// Helm installs only when asked for by version or with --devel.
func chartVersion(version string) (string, error) {
	v := strings.TrimPrefix(version, "v")
	if _, err := semver.StrictNewVersion(v); err == nil {
		return v, nil
	}
	v = "0.0.0-dev-" + version
	if _, err := semver.StrictNewVersion(v); err != nil {
		return "", fmt.Errorf("version %q: no chart version can be made of it: %w", version, err)
	}
	return v, nil
}

// packageChart writes the chart in dir as <name>-<chart version>.tgz into outDir, its appVersion
// the release version and its default image the released one, and returns the archive's path.
func packageChart(dir, outDir, version, image string, created time.Time) (string, error) {
	c, err := loader.LoadDir(dir)
	if err != nil {
		return "", err
	}
	if c.Metadata.Version, err = chartVersion(version); err != nil {
		return "", err
	}
	c.Metadata.AppVersion = version
	if err := setImage(c, image); err != nil {
		return "", err
	}
	// The files' times are the checkout's; the commit's make the archive the same on every machine.
	c.ModTime = created
	for _, files := range [][]*common.File{c.Raw, c.Templates, c.Files} {
		for _, f := range files {
			f.ModTime = created
		}
	}
	return chartutil.Save(c, outDir)
}

// unindented ends a block of values.yaml.
var unindented = regexp.MustCompile(`(?m)^\S`)

// imageLine finds the two lines of values.yaml under `image:` that setImage rewrites.
var imageLine = regexp.MustCompile(`(?m)^(  (repository|tag): )(.*)$`)

// setImage points the chart's image.repository and image.tag at image. values.yaml is edited as
// text, not re-marshalled, because Helm packages it as written and its comments are the chart's
// documentation of every value.
func setImage(c *chart.Chart, image string) error {
	repository, tag, err := splitImage(image)
	if err != nil {
		return err
	}
	for _, f := range c.Raw {
		if f.Name != chartutil.ValuesfileName {
			continue
		}
		start := bytes.Index(f.Data, []byte("\nimage:\n"))
		if start < 0 {
			return fmt.Errorf("%s has no top-level image block", f.Name)
		}
		// The block runs to the next line that is not indented.
		block := f.Data[start+len("\nimage:\n"):]
		if end := unindented.FindIndex(block); end != nil {
			block = block[:end[0]]
		}
		want := map[string]string{"repository": repository, "tag": tag}
		replaced := map[string]bool{}
		edited := imageLine.ReplaceAllFunc(block, func(line []byte) []byte {
			m := imageLine.FindSubmatch(line)
			key := string(m[2])
			replaced[key] = true
			return append(m[1], want[key]...)
		})
		if len(replaced) != 2 {
			return fmt.Errorf("%s: the image block lacks a repository or a tag line", f.Name)
		}
		offset := start + len("\nimage:\n")
		f.Data = append(append(append([]byte{}, f.Data[:offset]...), edited...), f.Data[offset+len(block):]...)
		image, _ := c.Values["image"].(map[string]any)
		if image == nil {
			return fmt.Errorf("%s: image is not a map", f.Name)
		}
		image["repository"], image["tag"] = repository, tag
		return nil
	}
	return fmt.Errorf("the chart has no %s", chartutil.ValuesfileName)
}

// splitImage splits "registry:5000/name:tag" at the tag's colon, not the port's.
func splitImage(image string) (repository, tag string, err error) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") || strings.Contains(image, "@") {
		return "", "", fmt.Errorf("image %q: want repository:tag", image)
	}
	return image[:i], image[i+1:], nil
}
