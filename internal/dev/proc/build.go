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

package proc

import (
	"context"
	"os/exec"
	"path/filepath"
)

// Binaries are the operator's programs.
type Binaries struct {
	Manager, Callback string
}

// BuildCommand is the go build (goTool, with flags) of cmd/manager and cmd/callback in the tree at
// root into dir, and where the programs will be. A caller builds every time: it takes a second
// when nothing changed, and what runs must be the code as it is in the tree.
func BuildCommand(ctx context.Context, goTool, root, dir string, flags ...string) (*exec.Cmd, Binaries) {
	args := append(append([]string{"build"}, flags...), "-o", dir+string(filepath.Separator), "./cmd/manager", "./cmd/callback")
	cmd := exec.CommandContext(ctx, goTool, args...)
	cmd.Dir = root
	return cmd, Binaries{Manager: filepath.Join(dir, "manager"), Callback: filepath.Join(dir, "callback")}
}
