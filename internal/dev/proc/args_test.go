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

package proc_test

import (
	"context"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// TestArgsAreTheProgramsFlags runs the programs with every flag the builders can write, then
// -help: the flag package stops at the first flag a program does not define (exit 2) and exits 0
// at -help, so a flag renamed in cmd/ and not here fails this test rather than a dev stack or a
// benchmark.
func TestArgsAreTheProgramsFlags(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build, bins := proc.BuildCommand(ctx, "go", testenv.RepoRoot(), t.TempDir())
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	manager := proc.ManagerArgs{
		Kubeconfig: "kc", LeaderElect: true, LeaderElectionNamespace: "ns", ClusterResourceNamespace: "ns",
		MetricsAddr: ":1", ProbeAddr: ":2", PprofAddr: ":3", WeChatURL: "http://wechat",
		WeChatQPS: 1.5, WeChatBurst: 2, WeChatTimeout: time.Second,
		KubeQPS: 10, KubeBurst: 20, Workers: 3, Console: true,
	}
	callback := proc.CallbackArgs{
		Kubeconfig: "kc", Namespace: "ns", Identity: "replica-0",
		BindAddr: ":1", ProbeAddr: ":2", MetricsAddr: ":3", Console: true,
	}
	for _, c := range []struct {
		path string
		args []string
	}{
		{bins.Manager, manager.Args()},
		{bins.Callback, callback.Args()},
	} {
		out, err := exec.CommandContext(ctx, c.path, append(c.args, "-help")...).CombinedOutput()
		if err != nil {
			t.Errorf("%s %v -help: %v\n%s", c.path, c.args, err, out)
		}
	}
}

// TestArgsLeaveZeroOut: a zero field leaves the program's default, but leader election, on by
// default, is always said.
func TestArgsLeaveZeroOut(t *testing.T) {
	got := proc.ManagerArgs{Kubeconfig: "kc"}.Args()
	want := []string{"--kubeconfig=kc", "--leader-elect=false"}
	if !slices.Equal(got, want) {
		t.Errorf("Args() = %q, want %q", got, want)
	}
	if got := (proc.CallbackArgs{}).Args(); len(got) != 0 {
		t.Errorf("zero CallbackArgs.Args() = %q, want none", got)
	}
}
