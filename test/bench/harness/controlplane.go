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
	"path/filepath"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// ControlPlane is a real etcd and kube-apiserver with the CRD (internal/testenv), and a
// kubeconfig for the processes this package starts.
type ControlPlane struct {
	*testenv.Env
	// Kubeconfig authenticates as the control plane's admin.
	Kubeconfig string
}

// adminKubeconfig authenticates with the credentials of the control plane's rest.Config.
var adminKubeconfig = proc.Kubeconfig{Cluster: "local", User: "admin"}

// StartControlPlane starts a control plane and writes its kubeconfig into dir.
func StartControlPlane(dir string) (*ControlPlane, error) {
	env, err := testenv.Start()
	if err != nil {
		return nil, err
	}
	cp := &ControlPlane{Env: env, Kubeconfig: filepath.Join(dir, "kubeconfig")}
	if err := adminKubeconfig.Write(cp.Kubeconfig, env.Config); err != nil {
		_ = env.Stop()
		return nil, err
	}
	return cp, nil
}

// LimitedClient is a client of the control plane limited to qps requests per second with burst, as
// client-go limits the manager (--kube-api-qps, --kube-api-burst): a baseline measured with this
// client pays the same client-side limits as the process it is compared with.
func (cp *ControlPlane) LimitedClient(qps float64, burst int) (client.Client, error) {
	cfg := rest.CopyConfig(cp.Config)
	cfg.QPS, cfg.Burst = float32(qps), burst
	return client.New(cfg, client.Options{Scheme: cp.Scheme})
}
