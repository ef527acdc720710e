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

package version

import (
	"bytes"
	"runtime/debug"
	"testing"
)

func TestString(t *testing.T) {
	saved := Version
	t.Cleanup(func() { Version = saved })
	Version = "v1.2.3"
	var out bytes.Buffer
	Print(&out, "manager")
	if got, want := out.String(), "manager version v1.2.3\n"; got != want {
		t.Errorf("Print = %q, want %q", got, want)
	}
	Version = ""
	// A test binary's main module is the test's, at "(devel)", so the fallback applies.
	if got := String(); got[:3] != "dev" {
		t.Errorf("String without a stamp = %q, want it to start with dev", got)
	}
}

func TestVCSSuffix(t *testing.T) {
	for _, tc := range []struct {
		settings []debug.BuildSetting
		want     string
	}{
		{nil, ""},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}, "-0123456789ab"},
		{[]debug.BuildSetting{{Key: "vcs.revision", Value: "abc"}, {Key: "vcs.modified", Value: "true"}}, "-abc-dirty"},
	} {
		if got := vcsSuffix(tc.settings); got != tc.want {
			t.Errorf("vcsSuffix(%v) = %q, want %q", tc.settings, got, tc.want)
		}
	}
}
