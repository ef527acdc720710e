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

// kubectl-wechat is the kubectl plugin for WeChatQRCodes: on PATH, `kubectl wechat` runs it.
package main

import (
	"os"

	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/kubectlplugin"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/version"
)

func main() {
	streams := genericiooptions.IOStreams{In: os.Stdin, Out: os.Stdout, ErrOut: os.Stderr}
	cmd := kubectlplugin.NewCommand(streams, clock.RealClock{})
	// cobra adds --version once Version is set.
	cmd.Version = version.String()
	os.Exit(kubectlplugin.Execute(cmd, streams.ErrOut))
}
