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

package stack

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	record := func(cmd *exec.Cmd, exe string) {
		if err := os.WriteFile(pidsFile(dir), fmt.Appendf(nil, "%d %s\n", cmd.Process.Pid, exe), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	unrelated := start()
	// The pid was the stack's kube-apiserver's; it now runs something else.
	record(unrelated, filepath.Join(t.TempDir(), "kube-apiserver"))
	if killed := reapLeftovers(dir); len(killed) != 0 {
		t.Fatalf("killed %v, which no longer runs the recorded executable", killed)
	}
	// Not yet waited for, a killed child would linger as a zombie: look at its state.
	if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", unrelated.Process.Pid)); err != nil || strings.Contains(string(stat), ") Z ") {
		t.Fatalf("unrelated process gone: %s %v", stat, err)
	}

	ours := start()
	record(ours, sleep)
	killed := reapLeftovers(dir)
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

// A second stack in the same directory is refused, names the first, and leaves its files alone.
// flock belongs to an open file description, so two opens in one process contend as two
// processes do; the garbage collections show that the lock outlives any dropped reference.
func TestSecondStackInADirectoryIsRefusedAndHarmsNothing(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	for _, f := range []string{stateFile(dir), pidsFile(dir)} {
		if err := os.WriteFile(f, []byte("the first stack's\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	if second, err := lockDir(dir); err == nil {
		second.release()
		t.Fatal("a second lock of the same directory was granted")
	}
	var out strings.Builder
	_, err = Start(context.Background(), Options{Dir: dir, Root: t.TempDir(), Out: &out})
	want := fmt.Sprintf("a dev stack is already running in %s (process %d holds %s)", dir, os.Getpid(), lockFile(dir))
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("second stack: %v\nwant an error containing %q", err, want)
	}
	for _, f := range []string{stateFile(dir), pidsFile(dir)} {
		if b, err := os.ReadFile(f); err != nil || string(b) != "the first stack's\n" {
			t.Errorf("the refused stack touched %s: %q %v", f, b, err)
		}
	}

	first.release()
	third, err := lockDir(dir)
	if err != nil {
		t.Fatalf("once the first stack stopped: %v", err)
	}
	third.release()
}

// A taken port is reported before anything is built: Root has nothing to build from, so an error
// from the build would mean the check came after it.
func TestTakenPortIsReportedBeforeTheBuild(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = l.Close() }()
	taken := l.Addr().(*net.TCPAddr).Port
	var out strings.Builder
	_, err = Start(context.Background(), Options{Dir: t.TempDir(), Root: t.TempDir(), Out: &out, Ports: Ports{Callback: taken}})
	want := fmt.Sprintf("port %d on 127.0.0.1 is taken", taken)
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "DEV_ARGS=--any-ports") {
		t.Fatalf("got %v, want an error containing %q and the way out", err, want)
	}
}
