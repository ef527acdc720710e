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
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/proc"
)

// startProcess starts a child whose output goes to the console under its name. The children
// stop in order when the dev program stops them (the operator before the API server it talks to);
// if the dev program itself is killed (SIGKILL, OOM), nothing is left to do that, and the kernel
// ends them.
func startProcess(name, path string, args []string, env []string, out *console) (*proc.Process, error) {
	w := out.prefixed(name)
	return proc.Start(proc.Spec{Name: name, Path: path, Args: args, Env: env, Out: w, Pdeathsig: syscall.SIGTERM, Exited: w.Flush})
}

// console is the terminal that the dev program and its children share. Each writer it hands out
// prefixes the lines of one source with its name ("manager  | ..."), so that the interleaved
// output of several processes stays readable, and writes whole lines under one lock.
type console struct {
	mu sync.Mutex
	w  io.Writer
}

// prefixWidth aligns the prefixes of the usual source names.
const prefixWidth = 8

func (c *console) prefixed(name string) *prefixWriter {
	return &prefixWriter{console: c, prefix: fmt.Appendf(nil, "%-*s | ", prefixWidth, name)}
}

type prefixWriter struct {
	console *console
	prefix  []byte
	buf     []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.emit(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes a last line that had no newline.
func (w *prefixWriter) Flush() {
	if len(w.buf) > 0 {
		w.emit(append(w.buf, '\n'))
		w.buf = nil
	}
}

func (w *prefixWriter) emit(line []byte) {
	w.console.mu.Lock()
	defer w.console.mu.Unlock()
	_, _ = w.console.w.Write(append(append([]byte{}, w.prefix...), line...))
}

// Printf writes one line.
func (w *prefixWriter) Printf(format string, args ...any) {
	w.emit(fmt.Appendf(nil, format+"\n", args...))
}

// lockDir takes an exclusive lock on dir for as long as this process lives, so that two stacks
// never share a directory. The kernel drops the lock when the process dies, however it dies.
func lockDir(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return fmt.Errorf("another dev stack is running in %s", dir)
	}
	// f stays open, and locked, until the process exits.
	return nil
}

func pidsFile(dir string) string { return filepath.Join(dir, "pids") }

// recordChildren writes the pids of this process's children into dir, for reapLeftovers.
func recordChildren(dir string) ([]int, error) {
	pids, err := proc.Children()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, pid := range pids {
		fmt.Fprintln(&b, pid)
	}
	return pids, os.WriteFile(pidsFile(dir), []byte(b.String()), 0o600)
}

// reapLeftovers kills what a stack that died without stopping (SIGKILL, a crash) left running
// in dir, as recordChildren recorded it. Only processes whose executable lies in one of binDirs
// are touched: a recorded pid may since have been reused by an unrelated process.
func reapLeftovers(dir string, binDirs ...string) []int {
	b, err := os.ReadFile(pidsFile(dir))
	if err != nil {
		return nil
	}
	var killed []int
	for _, field := range strings.Fields(string(b)) {
		pid, err := strconv.Atoi(field)
		if err != nil {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", field, "exe"))
		if err != nil {
			continue
		}
		exeDir := filepath.Dir(strings.TrimSuffix(exe, " (deleted)"))
		for _, d := range binDirs {
			if exeDir == filepath.Clean(d) {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				killed = append(killed, pid)
			}
		}
	}
	_ = os.Remove(pidsFile(dir))
	return killed
}

// Kill kills every child of this process, with its process group, at once, and forgets the
// stack in dir: the way out when an orderly stop takes too long for the user.
func Kill(dir string) {
	pids, _ := proc.Children()
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(stateFile(dir))
	_ = os.Remove(pidsFile(dir))
}
