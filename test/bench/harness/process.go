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

package harness

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// Binaries are the operator's programs, built from this tree.
type Binaries struct {
	Manager, Callback string
}

// Build compiles cmd/manager and cmd/callback into dir. It takes seconds with a warm build cache,
// and guarantees that what is measured is the code in the tree.
func Build(ctx context.Context, dir string) (Binaries, error) {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(filepath.Separator), "./cmd/manager", "./cmd/callback")
	cmd.Dir = testenv.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build ./cmd/manager ./cmd/callback: %w\n%s", err, out)
	}
	return Binaries{Manager: filepath.Join(dir, "manager"), Callback: filepath.Join(dir, "callback")}, nil
}

// Process is a program started in its own process group, its output in a log file.
type Process struct {
	Name string
	// Log is the file its standard output and error go to.
	Log string

	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartProcess starts bin with args and, besides this process's environment, env (KEY=VALUE),
// its output appended to <logDir>/<name>.log.
func StartProcess(name, bin string, args, env []string, logDir string) (*Process, error) {
	p := &Process{Name: name, Log: filepath.Join(logDir, name+".log"), done: make(chan struct{})}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	p.cmd.SysProcAttr = &syscall.SysProcAttr{
		// Its own group: a kill reaches it and nothing else of ours.
		Setpgid: true,
		// A benchmark or test that dies (timeout, Ctrl-C) takes its processes along.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := p.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		_ = f.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Kill sends SIGKILL to the process group, the kill -9 of a node failure or an OOM kill, and
// waits until the process is gone, so that nothing it had in flight can still arrive anywhere.
func (p *Process) Kill() {
	select {
	case <-p.done:
		// Reaped: its pid may already belong to someone else.
		return
	default:
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
	<-p.done
}

// Stop sends SIGTERM, as a kubelet does, and SIGKILL if the process has not exited after grace.
func (p *Process) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.Kill()
	}
}

// PeakRSS is the process's peak resident set size so far (VmHWM of /proc/<pid>/status), in bytes.
// Only while it runs: /proc forgets it at exit.
func (p *Process) PeakRSS() (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

// exitError says how the process ended on its own, with the end of its log.
func (p *Process) exitError() error {
	b, _ := os.ReadFile(p.Log)
	if len(b) > 4096 {
		b = b[len(b)-4096:]
	}
	return fmt.Errorf("%s exited (%v); end of %s:\n%s", p.Name, p.err, p.Log, b)
}

// FreeAddr returns a loopback address with a port free at the time of the call.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String(), nil
}

// WaitReady polls url until it answers 200, the process exits or ctx ends.
func (p *Process) WaitReady(ctx context.Context, url string) error {
	for {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return p.exitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w", p.Name, url, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Metric sums the samples of a Prometheus text exposition at url whose name is name and whose
// labels contain every one of labels (each written as in the exposition: `result="success"`).
func Metric(url, name string, labels ...string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	var sum float64
	for line := range bytes.Lines(body) {
		s := strings.TrimSpace(string(line))
		rest, ok := strings.CutPrefix(s, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		sp := strings.LastIndexByte(rest, ' ')
		if sp < 0 || !containsAll(rest[:sp], labels) {
			continue
		}
		v, err := strconv.ParseFloat(rest[sp+1:], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", s, err)
		}
		sum += v
	}
	return sum, nil
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
