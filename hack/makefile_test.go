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

package hack_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// makeOut runs make in the repository's root and returns its standard output.
func makeOut(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make")
	}
	cmd := exec.Command("make", append([]string{"--no-print-directory"}, args...)...)
	cmd.Dir = testenv.RepoRoot()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("make %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

// TestMakeHelp: what `make help` says of a target is what the target does.
func TestMakeHelp(t *testing.T) {
	help := regexp.MustCompile(`\x1b\[[0-9;]*m`).ReplaceAllString(makeOut(t, "help"), "")
	lines := map[string]string{}
	for _, l := range strings.Split(help, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			lines[f[0]] = strings.Join(f[1:], " ")
		}
	}
	for target, want := range map[string][]string{
		"build":     {"kubectl plugin", "bin/kubectl-wechat"},
		"dev":       {"WECHAT_APP_ID", "WECHAT_APP_SECRET", "WECHAT_TOKEN", "WECHAT_ENCODING_AES_KEY", "DEV_ARGS=--any-ports"},
		"scan":      {"NAME=", "NAMESPACE=", "COUNT="},
		"install":   {"the CRDs (all six"},
		"uninstall": {"the CRDs", "DELETES every account, code and scan tally"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[target], w) {
				t.Errorf("make help, %s: %q does not say %q", target, lines[target], w)
			}
		}
	}
}

// TestMakeDevTargetsPassTheirVariables: the variables the help names reach the commands (make -n
// prints the commands without running them).
func TestMakeDevTargetsPassTheirVariables(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-n", "dev", "DEV_ARGS=--any-ports"}, "/dev up --dir .dev --any-ports"},
		{[]string{"-n", "scan", "NAME=booth", "NAMESPACE=marketing", "COUNT=2"}, "/dev scan --dir .dev --namespace 'marketing' --count 2 'booth'"},
		{[]string{"-n", "scan", "NAME=spring-sale-poster"}, "--namespace 'default'"},
		// ./cmd/... holds what ships: the manager, the callback server and cmd/kubectl-wechat.
		{[]string{"-n", "build"}, " -o " + testenv.RepoRoot() + "/bin/ ./cmd/..."},
		{[]string{"-n", "build", "VERSION=v9.8.7"}, "internal/version.Version=v9.8.7'"},
		{[]string{"-n", "outage", "NAME=booth", "COUNT=4"}, "/dev outage --dir .dev --namespace 'default' --count 4 'booth'"},
	} {
		if out := makeOut(t, tc.args...); !strings.Contains(out, tc.want) {
			t.Errorf("make %s runs\n%s\nwant %q in it", strings.Join(tc.args, " "), out, tc.want)
		}
	}
}
