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

// Package version says which build of the operator is running. `make build` and `make release`
// stamp Version from `git describe` at link time; any other build (go run, go test, an IDE) falls
// back to what the Go toolchain recorded, so a binary never claims a release it is not.
package version

import (
	"fmt"
	"io"
	"runtime/debug"
)

// Version is set with -ldflags "-X github.com/qrcode-operator/wechat-qrcode-operator/internal/version.Version=v1.2.3".
// A variable, not a constant: the linker can only overwrite string variables.
var Version string

// String is the stamped version, else the module version of `go install ...@v1.2.3`, else "dev"
// with the VCS revision when the toolchain recorded one (it does not under -buildvcs=false).
func String() string {
	if Version != "" {
		return Version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	return "dev" + vcsSuffix(info.Settings)
}

// vcsSuffix is "-<revision>" (and "-dirty" for a modified tree) from the build settings, or "".
func vcsSuffix(settings []debug.BuildSetting) string {
	var revision, modified string
	for _, s := range settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return ""
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	if modified == "true" {
		return "-" + revision + "-dirty"
	}
	return "-" + revision
}

// Print writes the line --version prints, in the form cobra gives the kubectl plugin's, so that
// the three binaries answer alike: "manager version v1.2.3".
func Print(w io.Writer, program string) {
	fmt.Fprintf(w, "%s version %s\n", program, String())
}
