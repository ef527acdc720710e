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
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
)

// Binaries are the programs a stack runs.
type Binaries struct {
	// ControlPlane is the directory of etcd, kube-apiserver and kubectl.
	ControlPlane string
	proc.Binaries
}

// Kubectl is the kubectl built with the control plane, of the same version as the API server.
func (b Binaries) Kubectl() string { return filepath.Join(b.ControlPlane, "kubectl") }

// heartbeat is how often a long build says it is still running.
const heartbeat = 15 * time.Second

// Build builds what is missing: the control plane (hack/controlplane.sh, minutes the first
// time, cached afterwards; KUBEBUILDER_ASSETS short-cuts it as it does for the tests) and the
// manager and callback binaries into binDir.
func Build(ctx context.Context, root, goTool, binDir string, log *prefixWriter) (Binaries, error) {
	var b Binaries
	var err error
	if b.ControlPlane, err = controlPlane(ctx, root, log); err != nil {
		return b, err
	}
	var cmd *exec.Cmd
	cmd, b.Binaries = proc.BuildCommand(ctx, goTool, root, binDir, "-v")
	// -v names each package as it is compiled, nothing when the build cache has it all: the
	// count is the progress of a first build.
	var compiled atomic.Int64
	var tail strings.Builder
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return b, err
	}
	err = withProgress(log, "manager and callback", func() string {
		return fmt.Sprintf("%d packages compiled", compiled.Load())
	}, func() error {
		if err := cmd.Start(); err != nil {
			return err
		}
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			// Compiler errors are the lines that are not package paths.
			if line := sc.Text(); strings.ContainsAny(line, " :") {
				tail.WriteString(line + "\n")
			} else {
				compiled.Add(1)
			}
		}
		return cmd.Wait()
	})
	if err != nil {
		return b, fmt.Errorf("go build ./cmd/manager ./cmd/callback: %w\n%s", err, tail.String())
	}
	return b, nil
}

func controlPlane(ctx context.Context, root string, log *prefixWriter) (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "hack", "controlplane.sh"))
	cmd.Dir = root
	// The script says which binary it is building; the heartbeat says it has not hung.
	cmd.Stderr = log
	var out strings.Builder
	cmd.Stdout = &out
	err := withProgress(log, "the control plane", nil, cmd.Run)
	if err != nil {
		return "", fmt.Errorf("hack/controlplane.sh: %w", err)
	}
	return strings.TrimSpace(out.String()), nil
}

// withProgress runs run and, while it lasts, says every heartbeat that it is still building.
func withProgress(log *prefixWriter, what string, status func() string, run func() error) error {
	start := time.Now()
	done := make(chan struct{})
	go func() {
		t := time.NewTicker(heartbeat)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				extra := ""
				if status != nil {
					extra = ", " + status()
				}
				log.Printf("still building %s (%s%s)", what, time.Since(start).Round(time.Second), extra)
			}
		}
	}()
	err := run()
	close(done)
	if err == nil && time.Since(start) > heartbeat {
		log.Printf("built %s in %s", what, time.Since(start).Round(time.Second))
	}
	return err
}
