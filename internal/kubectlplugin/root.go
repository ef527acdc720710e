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

// Package kubectlplugin is `kubectl wechat`, the kubectl plugin for WeChatQRCodes: a status
// screen for one code, its image drawn locally (terminal, PNG, SVG, or every code of a namespace
// for a printer), an early re-issue, and the list of accounts with their health. It reads what the operator wrote — status, the callback
// server's annotations, Events — and writes only the renew annotation; it never calls WeChat.
package kubectlplugin

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Exit codes. A script tells "the code is not usable" (ExitNotReady) from "the command could
// not find out" (ExitFailure).
const (
	ExitFailure  = 1
	ExitNotReady = 2
)

// ExitError ends the command with Code after printing Message (when not empty) on stderr.
type ExitError struct {
	Code    int
	Message string
}

func (e *ExitError) Error() string { return e.Message }

// plugin is what every subcommand shares: kubectl's connection flags, the streams, the clock.
type plugin struct {
	flags   *genericclioptions.ConfigFlags
	streams genericiooptions.IOStreams
	clock   clock.PassiveClock
}

// NewCommand builds `kubectl wechat`. The clock is the one every age, expiry and renew time is
// measured against.
func NewCommand(streams genericiooptions.IOStreams, clk clock.PassiveClock) *cobra.Command {
	p := &plugin{flags: genericclioptions.NewConfigFlags(true), streams: streams, clock: clk}
	root := &cobra.Command{
		Use:   "kubectl-wechat",
		Short: "Inspect, draw and renew WeChat QR codes (WeChatQRCode resources)",
		Long: "kubectl wechat shows the state of the WeChatQRCodes the operator manages, draws their images " +
			"locally from status.url (no call to WeChat) and asks the operator for an early re-issue.",
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl wechat"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	p.flags.AddFlags(root.PersistentFlags())
	root.AddCommand(p.statusCommand(), p.qrCommand(), p.renewCommand(), p.accountsCommand())
	return root
}

// Execute runs cmd and returns the process's exit code, having printed any error on stderr.
func Execute(cmd *cobra.Command, stderr io.Writer) int {
	err := cmd.Execute()
	if err == nil {
		return 0
	}
	var exit *ExitError
	if errors.As(err, &exit) {
		if exit.Message != "" {
			fmt.Fprintln(stderr, "error:", exit.Message)
		}
		return exit.Code
	}
	fmt.Fprintln(stderr, "error:", err)
	return ExitFailure
}

var scheme = func() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, eventsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}()

// client connects with kubectl's flags (--kubeconfig, --context, --server, …). It reads the API
// server directly: a plugin runs once, a cache would only cost a list and a watch.
func (p *plugin) client() (client.Client, error) {
	cfg, err := p.flags.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// namespace is --namespace, or the kubeconfig context's namespace, or "default".
func (p *plugin) namespace() (string, error) {
	ns, _, err := p.flags.ToRawKubeConfigLoader().Namespace()
	return ns, err
}

// getCode reads one code, with messages that say what is wrong rather than a bare API error.
func (p *plugin) getCode(cmd *cobra.Command, name string) (client.Client, *v1alpha1.WeChatQRCode, error) {
	c, err := p.client()
	if err != nil {
		return nil, nil, err
	}
	ns, err := p.namespace()
	if err != nil {
		return nil, nil, err
	}
	code := &v1alpha1.WeChatQRCode{}
	if err := c.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: name}, code); err != nil {
		return nil, nil, explain(err, fmt.Sprintf("WeChatQRCode %s/%s", ns, name))
	}
	return c, code, nil
}

func explain(err error, what string) error {
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Errorf("%s not found", what)
	case meta.IsNoMatchError(err):
		return fmt.Errorf("this cluster has no WeChatQRCode API (install the operator's CRD: make install): %w", err)
	}
	return fmt.Errorf("reading %s: %w", what, err)
}

// ready reports whether the code's status is current and says Ready=True, and why not otherwise.
func ready(code *v1alpha1.WeChatQRCode) (bool, string) {
	cond := code.ReadyCondition()
	switch {
	case cond == nil:
		return false, "Unknown: the operator has not reported on this code yet"
	case code.Status.ObservedGeneration != code.Generation:
		return false, fmt.Sprintf("%s (%s), but for generation %d of the spec; the spec is at generation %d: the operator has not caught up",
			cond.Status, cond.Reason, code.Status.ObservedGeneration, code.Generation)
	case cond.Status != "True":
		return false, fmt.Sprintf("%s, %s: %s", cond.Status, cond.Reason, cond.Message)
	}
	return true, fmt.Sprintf("True, %s: %s", cond.Reason, cond.Message)
}
