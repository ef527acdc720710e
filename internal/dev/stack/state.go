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
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// State is what a running stack tells other programs (`make scan`, the e2e test) through the
// state file in its directory. The file exists only while the stack is ready.
type State struct {
	// Kubeconfig is the admin kubeconfig.
	Kubeconfig string `json:"kubeconfig"`
	// Kubectl is the kubectl binary of the API server's version.
	Kubectl string `json:"kubectl"`
	// CallbackURL is the callback server's base URL; pushes for an account go to
	// <CallbackURL>/wechat/<AppID>.
	CallbackURL string `json:"callbackURL"`
	// WeChatURL is the fake WeChat's base URL; empty with a real account.
	WeChatURL string `json:"wechatURL,omitempty"`
	// ScanURL is where Scan asks the fake WeChat to push scans, MessageURL where Message asks
	// it to push a text message; empty with a real account.
	ScanURL    string `json:"scanURL,omitempty"`
	MessageURL string `json:"messageURL,omitempty"`
	// OutageURL is where Outage asks for its demonstration; empty with a real account.
	OutageURL string `json:"outageURL,omitempty"`
	// ApplicationURL is the demo application's (the account's spec.forward.url), SinkURL the demo
	// sink's (its spec.sink.uri).
	ApplicationURL string `json:"applicationURL"`
	SinkURL        string `json:"sinkURL"`
	// Account is the name of the ClusterWeChatAccount the sample codes use, AccountSecret the
	// name of its Secret in install.OperatorNamespace.
	Account       string `json:"account"`
	AccountSecret string `json:"accountSecret"`
	// PIDs of every process the stack started itself, so that a test can check that none
	// outlives it.
	PIDs []int `json:"pids"`
}

func stateFile(dir string) string { return filepath.Join(dir, "state.json") }

func (st *State) write(dir string) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(stateFile(dir), b, 0o600)
}

// ErrNotRunning is returned by LoadState when no stack is ready in the directory.
var ErrNotRunning = errors.New("no dev stack is running (start one with `make dev`)")

// LoadState reads the state of the stack running in dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(stateFile(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotRunning
	}
	if err != nil {
		return nil, err
	}
	st := &State{}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("%s: %w", stateFile(dir), err)
	}
	return st, nil
}

// Run runs kubectl as the admin and returns its standard output; the error carries its standard
// error, where kubectl says why.
func (st *State) Run(ctx context.Context, stdin []byte, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, st.Kubectl, append([]string{"--kubeconfig=" + st.Kubeconfig}, args...)...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}
