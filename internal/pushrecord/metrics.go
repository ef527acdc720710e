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

package pushrecord

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
)

var statusPatches = prometheus.NewCounterVec(prometheus.CounterOpts{
	Namespace: metricnames.Namespace,
	Subsystem: "callback",
	Name:      "account_status_patches_total",
	Help:      "Patches of an account's status.callback by the folder, by result: ok, gone (account deleted), error.",
}, []string{"result"})

func init() {
	metrics.Registry.MustRegister(statusPatches)
}
