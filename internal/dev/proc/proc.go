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

// Package proc runs the operator's programs (cmd/manager, cmd/callback) as local child processes
// against a local API server, for the dev stack (internal/dev/stack) and for the benchmarks and
// fault tests (test/bench/harness): building them from the tree, starting and stopping them as a
// kubelet would, waiting for their readiness probe, and writing the kubeconfig they are given.
// What the two callers want differently (where the output goes, what the kernel sends a child
// whose parent died) is the caller's to say.
package proc

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Spec says how to start a process.
type Spec struct {
	Name string
	Path string
	Args []string
	// Env is added to this process's environment (KEY=VALUE).
	Env []string
	// Out receives the standard output and error. Ignored when Log is set.
	Out io.Writer
	// Log is a file the output is appended to instead, and whose end an ExitError shows: the
	// output is otherwise nowhere a reader of the error would see it.
	Log string
	// Pdeathsig is what the kernel sends the process when this one dies without stopping it
	// (SIGKILL, OOM kill, a test timeout): nothing else would end it then.
	Pdeathsig syscall.Signal
	// Exited runs once the process has been waited for, before Done is closed: the place to
	// flush what Out still buffers, so that the process's last words precede the news of its end.
	Exited func()
}

// Process is a child started in its own process group, so that a signal to the group reaches it
// and whatever it started itself, and nothing else of ours (a terminal's Ctrl-C reaches only the
// parent, which then stops its children in order).
type Process struct {
	Name string
	// Log is Spec.Log.
	Log string

	cmd  *exec.Cmd
	done chan struct{}
	err  error // the Wait result, valid once done is closed
}

// Start starts the process of s.
func Start(s Spec) (*Process, error) {
	p := &Process{Name: s.Name, Log: s.Log, done: make(chan struct{})}
	out, closeOut := s.Out, func() {}
	if s.Log != "" {
		f, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		out, closeOut = f, func() { _ = f.Close() }
	}
	p.cmd = exec.Command(s.Path, s.Args...)
	p.cmd.Env = append(os.Environ(), s.Env...)
	p.cmd.Stdout, p.cmd.Stderr = out, out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: s.Pdeathsig}
	if err := p.cmd.Start(); err != nil {
		closeOut()
		return nil, fmt.Errorf("starting %s: %w", s.Name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		closeOut()
		if s.Exited != nil {
			s.Exited()
		}
		close(p.done)
	}()
	return p, nil
}

// Pid is the process's id, and its process group's.
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

// Stop sends SIGTERM to the process group, as a kubelet does, and SIGKILL if the process has not
// exited after grace, which the error then says.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	_ = syscall.Kill(-p.Pid(), syscall.SIGTERM)
	select {
	case <-p.done:
		// A child of the child may still hold the group.
		_ = syscall.Kill(-p.Pid(), syscall.SIGKILL)
		return nil
	case <-time.After(grace):
		p.Kill()
		return fmt.Errorf("%s did not stop within %s and was killed", p.Name, grace)
	}
}

// logTail is how much of the end of its log an ExitError shows: enough for a panic's first
// goroutine or the last few log lines.
const logTail = 4096

// ExitError says how the process ended on its own, with the end of its log if it has one.
func (p *Process) ExitError() error {
	if p.Log != "" {
		b, _ := os.ReadFile(p.Log)
		if len(b) > logTail {
			b = b[len(b)-logTail:]
		}
		return fmt.Errorf("%s exited (%v); end of %s:\n%s", p.Name, p.err, p.Log, b)
	}
	if p.err == nil {
		return fmt.Errorf("%s exited", p.Name)
	}
	return fmt.Errorf("%s exited: %w", p.Name, p.err)
}

// WaitReady polls url every poll until it answers 200, the process exits or ctx ends: a
// readiness probe, as a kubelet waits for one before sending traffic.
func (p *Process) WaitReady(ctx context.Context, url string, poll time.Duration) error {
	for {
		if resp, err := http.Get(url); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return p.ExitError()
		case <-ctx.Done():
			return fmt.Errorf("%s not ready at %s: %w", p.Name, url, ctx.Err())
		case <-time.After(poll):
		}
	}
}
