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

package callback

import (
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
)

// Config is a callback server process: Options plus its three listeners, each "0" to disable.
// Pushes come from the internet through an Ingress; probes and metrics stay inside the cluster,
// hence separate ports.
type Config struct {
	Options
	BindAddress            string
	HealthProbeBindAddress string
	MetricsBindAddress     string
}

// NewManager returns a manager that serves pushes on cfg.BindAddress, and the Server itself for
// callers (tests) that serve it some other way.
func NewManager(rc *rest.Config, cfg Config) (manager.Manager, *Server, error) {
	mgr, err := ctrl.NewManager(rc, ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: cfg.MetricsBindAddress},
		HealthProbeBindAddress: cfg.HealthProbeBindAddress,
		// Every replica serves; there is nothing to lead.
		LeaderElection: false,
		Cache:          cache.Options{DefaultTransform: cache.TransformStripManagedFields()},
		// Belt and braces: a cached Secret read would need list and watch on every Secret.
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}},
	})
	if err != nil {
		return nil, nil, err
	}
	s, err := Setup(mgr, cfg.Options)
	if err != nil {
		return nil, nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, nil, err
	}
	if cfg.BindAddress != "" && cfg.BindAddress != "0" {
		// Let in-flight pushes finish their commits when the Pod stops.
		shutdown := cfg.ReplyDeadline + time.Second
		err := mgr.Add(&manager.Server{
			Name: "wechat-push",
			Server: &http.Server{
				Addr: cfg.BindAddress,
				// Not a mux: every path goes through the refusal metric.
				Handler:           s,
				ReadHeaderTimeout: 2 * time.Second,
				ReadTimeout:       4 * time.Second,
				WriteTimeout:      cfg.ReplyDeadline + 2*time.Second,
				IdleTimeout:       90 * time.Second,
				MaxHeaderBytes:    16 << 10,
			},
			ShutdownTimeout: &shutdown,
		})
		if err != nil {
			return nil, nil, err
		}
	}
	return mgr, s, nil
}
