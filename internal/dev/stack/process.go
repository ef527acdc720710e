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
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
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

// dirLock is the exclusive lock of a stack's directory, so that two stacks never share one: a
// second stack would reap the first's processes and wipe its etcd. It is an flock on an open file,
// released when the file is closed or the process dies, however it dies; the file must therefore
// stay referenced for the stack's whole life (an *os.File that is dropped is closed by the
// garbage collector's finalizer, and the lock with it).
type dirLock struct{ f *os.File }

func lockFile(dir string) string { return filepath.Join(dir, "lock") }

// lockDir takes the lock of dir, or says which process holds it. The holder's PID is written into
// the lock file only once the lock is ours, so that the file names the holder, never a loser.
func lockDir(dir string) (*dirLock, error) {
	f, err := os.OpenFile(lockFile(dir), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		holder := "another process"
		if b, _ := os.ReadFile(lockFile(dir)); len(bytes.TrimSpace(b)) > 0 {
			holder = "process " + string(bytes.TrimSpace(b))
		}
		return nil, fmt.Errorf("a dev stack is already running in %s (%s holds %s); this one stops and leaves it alone. Use it (make scan, make message), stop it with Ctrl-C in its terminal, or run a second stack in another directory on other ports: make dev DEV_DIR=.dev2 DEV_ARGS=--any-ports",
			dir, holder, lockFile(dir))
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt(strconv.AppendInt(nil, int64(os.Getpid()), 10), 0)
	}
	return &dirLock{f: f}, nil
}

// release gives the directory up. The file stays: removing it would let a third process lock a
// new file of the same name while a second still waits on the old one.
func (l *dirLock) release() {
	if l != nil {
		_ = l.f.Truncate(0)
		_ = l.f.Close()
	}
}

func pidsFile(dir string) string { return filepath.Join(dir, "pids") }

// recordChildren writes the pids of this process's children into dir, each with its executable,
// for reapLeftovers.
func recordChildren(dir string) ([]int, error) {
	pids, err := proc.Children()
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	for _, pid := range pids {
		if exe, err := executable(pid); err == nil {
			fmt.Fprintln(&b, pid, exe)
		}
	}
	return pids, os.WriteFile(pidsFile(dir), []byte(b.String()), 0o600)
}

// executable is the path of the program pid runs, as it was when it started.
func executable(pid int) (string, error) {
	exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe"))
	// A binary rebuilt since it started shows as deleted; it is still the stack's.
	return strings.TrimSuffix(exe, " (deleted)"), err
}

// reapLeftovers kills what a stack that died without stopping (SIGKILL, a crash) left running
// in dir, as recordChildren recorded it. A recorded pid may since have been reused by an
// unrelated process: only a process still running the recorded executable is touched. It needs
// nothing built, so it runs before the ports are checked: a leftover kube-apiserver holds 6443.
func reapLeftovers(dir string) []int {
	b, err := os.ReadFile(pidsFile(dir))
	if err != nil {
		return nil
	}
	var killed []int
	for line := range strings.Lines(string(b)) {
		field, recorded, ok := strings.Cut(strings.TrimSpace(line), " ")
		pid, err := strconv.Atoi(field)
		if !ok || err != nil {
			continue
		}
		if exe, err := executable(pid); err == nil && exe == recorded {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			killed = append(killed, pid)
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
