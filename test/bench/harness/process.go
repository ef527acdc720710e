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
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// Binaries are the operator's programs, built from this tree.
type Binaries = proc.Binaries

// Build compiles cmd/manager and cmd/callback into dir. It takes seconds with a warm build cache,
// and guarantees that what is measured is the code in the tree.
func Build(ctx context.Context, dir string) (Binaries, error) {
	cmd, bins := proc.BuildCommand(ctx, "go", testenv.RepoRoot(), dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		return Binaries{}, fmt.Errorf("go build ./cmd/manager ./cmd/callback: %w\n%s", err, out)
	}
	return bins, nil
}

// Process is a program started in its own process group, its output in a log file.
type Process struct {
	*proc.Process
}

// StartProcess starts bin with args and, besides this process's environment, env (KEY=VALUE),
// its output appended to <logDir>/<name>.log.
func StartProcess(name, bin string, args, env []string, logDir string) (*Process, error) {
	p, err := proc.Start(proc.Spec{
		Name: name, Path: bin, Args: args, Env: env,
		Log: filepath.Join(logDir, name+".log"),
		// A benchmark or test that dies (timeout, Ctrl-C) takes its processes along at once: a
		// benchmark's processes have nothing to finish.
		Pdeathsig: syscall.SIGKILL,
	})
	if err != nil {
		return nil, err
	}
	return &Process{p}, nil
}

// readyPoll is short: the time to readiness is part of what a restart costs in a measurement.
const readyPoll = 50 * time.Millisecond

// WaitReady polls url until it answers 200, the process exits or ctx ends.
func (p *Process) WaitReady(ctx context.Context, url string) error {
	return p.Process.WaitReady(ctx, url, readyPoll)
}

// PeakRSS is the process's peak resident set size so far (VmHWM of /proc/<pid>/status), in bytes.
// Only while it runs: /proc forgets it at exit.
func (p *Process) PeakRSS() (int64, error) { return memoryOf(p.Pid(), "VmHWM") }

// FileRSS is the part of the process's resident set now that is file pages (RssFile of
// /proc/<pid>/status): its binary's code and data, which the kernel can drop and read again under
// pressure; VmHWM and VmRSS count them.
func (p *Process) FileRSS() (int64, error) { return memoryOf(p.Pid(), "RssFile") }

// memoryOf is a size field of /proc/<pid>/status (VmHWM, VmRSS), in bytes.
func memoryOf(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// FreeAddr returns a loopback address with a port free at the time of the call.
func FreeAddr() (string, error) {
	addrs, err := FreeAddrs(1)
	if err != nil {
		return "", err
	}
	return addrs[0], nil
}

// FreeAddrs returns n loopback addresses with ports free at the time of the call, all
// different: each is held until all are chosen, as FreeAddr called n times does not guarantee
// (a port closed is free to be picked again, and a callback server once got the same one for
// its pushes and its metrics).
func FreeAddrs(n int) ([]string, error) {
	addrs := make([]string, n)
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer func() { _ = l.Close() }()
		addrs[i] = l.Addr().String()
	}
	return addrs, nil
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
