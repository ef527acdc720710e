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

package devstack

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPrefixWriterWritesWholeLines(t *testing.T) {
	var out strings.Builder
	c := &console{w: &out}
	a, b := c.prefixed("manager"), c.prefixed("callback")
	_, _ = a.Write([]byte("first half "))
	_, _ = b.Write([]byte("one\ntwo\n"))
	_, _ = a.Write([]byte("second half\nno newline"))
	a.Flush()
	want := "callback | one\ncallback | two\nmanager  | first half second half\nmanager  | no newline\n"
	if out.String() != want {
		t.Errorf("got\n%s\nwant\n%s", out.String(), want)
	}
}

// A stack that was killed left pids behind; by the time the next one starts, a pid may belong
// to an unrelated process, which must survive.
func TestReapLeftoversKillsOnlyOurBinaries(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep command")
	}
	sleep, _ = filepath.EvalSymlinks(sleep)
	start := func() *exec.Cmd {
		cmd := exec.Command(sleep, "60")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		return cmd
	}
	dir := t.TempDir()
	record := func(cmd *exec.Cmd) {
		if err := os.WriteFile(pidsFile(dir), fmt.Appendf(nil, "%d\n", cmd.Process.Pid), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	unrelated := start()
	record(unrelated)
	if killed := reapLeftovers(dir, t.TempDir()); len(killed) != 0 {
		t.Fatalf("killed %v, whose executable is not in the stack's directories", killed)
	}
	// Not yet waited for, a killed child would linger as a zombie: look at its state.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", unrelated.Process.Pid)); err != nil || strings.Contains(string(stat), ") Z ") {
		t.Fatalf("unrelated process gone: %s %v", stat, err)
	}

	ours := start()
	record(ours)
	killed := reapLeftovers(dir, filepath.Dir(sleep))
	if !slices.Equal(killed, []int{ours.Process.Pid}) {
		t.Fatalf("killed %v, want [%d]", killed, ours.Process.Pid)
	}
	done := make(chan struct{})
	// Wait's error is the SIGKILL the test expects.
	go func() { _ = ours.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("leftover still runs")
	}
	if _, err := os.Stat(pidsFile(dir)); !os.IsNotExist(err) {
		t.Errorf("the record of leftovers outlives the reaping: %v", err)
	}
}
