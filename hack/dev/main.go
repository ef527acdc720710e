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

// Command dev runs the operator on an embedded local stack (`make dev`) and simulates scans of
// its codes (`make scan`). See internal/devstack.
//
//	dev up   [--dir .dev] [--any-ports]
//	dev scan [--dir .dev] [--count N] [--plaintext] NAME
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/devstack"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "up":
		err = up(os.Args[2:])
	case "scan":
		err = scan(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dev up [--dir DIR] [--any-ports] | dev scan [--dir DIR] [--count N] [--plaintext] NAME")
	os.Exit(2)
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", ".dev", "directory of the stack's kubeconfigs, binaries, logs and state")
	anyPorts := fs.Bool("any-ports", false, "pick free ports instead of the fixed ones (6443, 8080-8081, 8089-8092)")
	_ = fs.Parse(args)

	root, err := os.Getwd()
	if err != nil {
		return err
	}
	opts := devstack.Options{Root: root, Out: os.Stdout, Go: os.Getenv("GO"), Ports: devstack.DevPorts}
	if opts.Dir, err = filepath.Abs(*dir); err != nil {
		return err
	}
	if *anyPorts {
		opts.Ports = devstack.Ports{}
	}
	if account, ok, err := devstack.AccountFromEnv(); err != nil {
		return err
	} else if ok {
		opts.Account = &account
	}

	// SIGHUP: the terminal was closed.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	var stack *devstack.Stack
	go func() {
		<-signals
		fmt.Println("\nstopping; Ctrl-C again kills at once")
		cancel()
		<-signals
		devstack.KillChildren()
		os.Exit(130)
	}()
	stack, err = devstack.Start(ctx, opts)
	if err == nil {
		if err = printReady(ctx, &stack.State); err == nil {
			err = stack.Wait(ctx)
		}
		stack.Stop()
	}
	if ctx.Err() != nil {
		fmt.Println("stopped: nothing of the dev stack is left running")
		return nil
	}
	return err
}

// printReady prints the codes and how to reach the stack from another terminal.
func printReady(ctx context.Context, st *devstack.State) error {
	table, err := st.Run(ctx, nil, "get", "wechatqrcodes", "-o", "wide")
	if err != nil {
		return err
	}
	fmt.Printf(`
%s
The operator runs against a local API server and %s. In another terminal:

    export KUBECONFIG=%s
    export PATH=%s:$PATH    # the kubectl of the API server's version
    kubectl get wechatqrcodes
    make scan NAME=spring-sale-poster COUNT=3    # simulated scans: the SCANS column moves

Logs of etcd and kube-apiserver: %s. Ctrl-C stops everything.
`, table, wechatName(st), st.Kubeconfig, filepath.Dir(st.Kubectl), filepath.Join(filepath.Dir(st.Kubeconfig), "logs"))
	return nil
}

func wechatName(st *devstack.State) string {
	if st.WeChatURL == "" {
		return "WeChat's real API"
	}
	return "a fake WeChat at " + st.WeChatURL
}

func scan(args []string) error {
	return errors.New("not yet")
}
