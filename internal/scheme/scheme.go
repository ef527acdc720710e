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

// Package scheme builds the runtime scheme of every client of the operator (manager, callback
// server, tests, dev stack, benchmarks): the built-in Kubernetes types and the WeChatQRCode API.
package scheme

import (
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

var builder = runtime.NewSchemeBuilder(clientgoscheme.AddToScheme, v1alpha1.AddToScheme)

// New returns a new scheme, one a caller may add to without affecting anyone else's.
func New() *runtime.Scheme {
	s := runtime.NewScheme()
	// Registering compiled-in types fails only on a programming error (a kind registered twice
	// with different types), which no test would miss.
	if err := builder.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}
