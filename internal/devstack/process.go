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
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is a child started in its own process group. The terminal's Ctrl-C then reaches only
// the dev program, which stops the children in order (the operator before the API server it
// talks to) instead of every process dying at once and logging the others' deaths; and stopping
// a group also ends whatever the child started itself.
type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // the Wait result, valid once done is closed
}

func startProcess(name, path string, args []string, env []string, out *console) (*process, error) {
	cmd := exec.Command(path, args...)
	cmd.Env = append(os.Environ(), env...)
	w := out.prefixed(name)
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the dev program itself is killed (SIGKILL, OOM), nothing is left to stop the
		// children in order: the kernel ends them.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		w.Flush()
		close(p.done)
	}()
	return p, nil
}

// stop sends SIGTERM to the process group and SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	pgid := p.cmd.Process.Pid
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-p.done:
		// A child of the child may still hold the group.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return nil
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
		return fmt.Errorf("%s did not stop within %s and was killed", p.name, grace)
	}
}

// exitError says how a process ended on its own.
func (p *process) exitError() error {
	if p.err == nil {
		return fmt.Errorf("%s exited", p.name)
	}
	return fmt.Errorf("%s exited: %w", p.name, p.err)
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

// children lists the processes whose parent is this one: with envtest's etcd and kube-apiserver
// among them, whose process handles envtest keeps to itself.
func children() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	self := os.Getpid()
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...: comm may hold spaces and parentheses, so parse after the last ')'.
		fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(self) {
			pids = append(pids, pid)
		}
	}
	return pids, nil
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
	pids, err := children()
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
	pids, _ := children()
	for _, pid := range pids {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(stateFile(dir))
	_ = os.Remove(pidsFile(dir))
}
