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

// Command dev runs the operator on an embedded local stack (`make dev`), simulates scans of its
// codes (`make scan`) and text messages to its account (`make message`). See internal/stack.
//
//	dev up      [--dir .dev] [--any-ports] [--no-samples]
//	dev scan    [--dir .dev] [--namespace default] [--count N] [--plaintext] NAME
//	dev message [--dir .dev] TEXT
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
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/stack"
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
	case "message":
		err = message(os.Args[2:])
	case "outage":
		err = outage(os.Args[2:])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: dev up [--dir DIR] [--any-ports] [--no-samples] | dev scan [--dir DIR] [--namespace NS] [--count N] [--plaintext] NAME | dev message [--dir DIR] TEXT | dev outage [--dir DIR] [--namespace NS] [--count N] NAME")
	os.Exit(2)
}

func up(args []string) error {
	fs := flag.NewFlagSet("up", flag.ExitOnError)
	dir := fs.String("dir", ".dev", "directory of the stack's kubeconfigs, binaries, logs and state")
	anyPorts := fs.Bool("any-ports", false, "pick free ports instead of the fixed ones (6443, 8080-8081, 8089-8094)")
	noSamples := fs.Bool("no-samples", false, "do not apply the codes of config/samples")
	_ = fs.Parse(args)

	root, err := os.Getwd()
	if err != nil {
		return err
	}
	opts := stack.Options{Root: root, Out: os.Stdout, Go: os.Getenv("GO"), Ports: stack.DevPorts, NoSamples: *noSamples}
	if opts.Dir, err = filepath.Abs(*dir); err != nil {
		return err
	}
	if *anyPorts {
		opts.Ports = stack.Ports{}
	}
	if account, ok, err := stack.AccountFromEnv(); err != nil {
		return err
	} else if ok {
		opts.Account = &account
	}

	// `make dev | tee log` loses tee to the same Ctrl-C: the stop must go on with nowhere to
	// write, not die of SIGPIPE at its first line and leave etcd and kube-apiserver running.
	signal.Ignore(syscall.SIGPIPE)
	// SIGHUP: the terminal was closed.
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		<-signals
		fmt.Println("\nstopping; Ctrl-C again kills at once")
		cancel()
		// Tools such as timeout(1) signal the process and then its group: one request, twice.
		first := time.Now()
		for range signals {
			if time.Since(first) > time.Second {
				stack.Kill(opts.Dir)
				os.Exit(130)
			}
		}
	}()
	running, err := stack.Start(ctx, opts)
	if err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: Start has stopped what it had started
		}
		return err
	}
	if err = printReady(ctx, &running.State); err == nil {
		err = running.Wait(ctx)
	}
	if ctx.Err() != nil {
		err = nil // what failed was cut short by the interruption
	}
	if stopErr := running.Stop(); stopErr != nil {
		return errors.Join(err, stopErr)
	}
	if err == nil {
		fmt.Println("stopped: nothing of the dev stack is left running")
	}
	return err
}

// printReady prints the codes and how to reach the stack from another terminal.
func printReady(ctx context.Context, st *stack.State) error {
	table, err := st.Run(ctx, nil, "get", "wechatqrcodes", "--all-namespaces")
	if err != nil {
		return err
	}
	wechat, scan := "WeChat's real API", ""
	if st.ScanURL != "" {
		wechat = "a fake WeChat at " + st.WeChatURL
		scan = "    make scan NAME=spring-sale-poster COUNT=3    # simulated scans: SCANS moves, the sink prints each\n" +
			"    make scan NAME=shop-window NAMESPACE=shop    # a code of another namespace\n" +
			"    make message TEXT=hello                      # a text message: the demo application's reply\n"
	}
	fmt.Printf(`
%s
The operator runs against a local API server and %s. The account forwards
the pushes it does not answer to the demo application at %s and sends every counted scan to the
demo sink at %s (lines "app | ..." and "sink | ..." below). In another terminal:

    export KUBECONFIG=%s
    export PATH=%s:$PATH    # the kubectl of the API server's version
    kubectl get wechatqrcodes -A -o wide
%s
Logs of etcd and kube-apiserver: %s. Ctrl-C stops everything.
`, table, wechat, st.ApplicationURL, st.SinkURL, st.Kubeconfig, filepath.Dir(st.Kubectl), scan, filepath.Join(filepath.Dir(st.Kubeconfig), "logs"))
	return nil
}

func scan(args []string) error {
	st, r, err := scanRequest("scan", args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := stack.Scan(ctx, st, r, os.Stdout); err != nil {
		return err
	}
	return showCode(ctx, st, r)
}

// outage shows durable delivery: scans counted while the demo sink is down, the callback
// server killed -9 and started again, and the events delivered by the restarted server.
func outage(args []string) error {
	st, r, err := scanRequest("outage", args)
	if err != nil {
		return err
	}
	ctx := context.Background()
	if err := stack.Outage(ctx, st, r, os.Stdout); err != nil {
		return err
	}
	return showCode(ctx, st, r)
}

// scanRequest reads the flags and the code's name of the scan and outage commands, and the
// running stack's state.
func scanRequest(cmd string, args []string) (*stack.State, stack.ScanRequest, error) {
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	dir := fs.String("dir", ".dev", "directory of the running stack")
	r := stack.ScanRequest{}
	fs.StringVar(&r.Namespace, "namespace", stack.SamplesNamespace, "namespace of the code")
	fs.IntVar(&r.Count, "count", 1, "number of scans, alternately by a new user (subscribe) and by a follower (SCAN)")
	if cmd == "scan" {
		fs.BoolVar(&r.Plaintext, "plaintext", false, "push in plaintext mode instead of safe mode (the sample account refuses it)")
	}
	_ = fs.Parse(args)
	if fs.NArg() != 1 {
		return nil, r, fmt.Errorf("%s: name the code, e.g. make %s NAME=spring-sale-poster", cmd, cmd)
	}
	r.Name = fs.Arg(0)
	st, err := stack.LoadState(*dir)
	return st, r, err
}

// showCode prints the code's line of kubectl get, with its scan count.
func showCode(ctx context.Context, st *stack.State, r stack.ScanRequest) error {
	table, err := st.Run(ctx, nil, "get", "wechatqrcode", "-n", r.Namespace, r.Name)
	fmt.Print(table)
	return err
}

func message(args []string) error {
	fs := flag.NewFlagSet("message", flag.ExitOnError)
	dir := fs.String("dir", ".dev", "directory of the running stack")
	_ = fs.Parse(args)
	if fs.NArg() != 1 || fs.Arg(0) == "" {
		return errors.New("message: give the text, e.g. make message TEXT=hello")
	}
	st, err := stack.LoadState(*dir)
	if err != nil {
		return err
	}
	return stack.Message(context.Background(), st, stack.MessageRequest{Text: fs.Arg(0)}, os.Stdout)
}
