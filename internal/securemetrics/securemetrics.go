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

// Package securemetrics is how the manager and the callback server serve /metrics: over HTTPS,
// and only to callers the API server authenticates (TokenReview) and authorizes
// (SubjectAccessReview of "get" on the non-resource URL /metrics), as kubebuilder's scaffold does.
// Both binaries bind the same flags, so that one scrape configuration fits both.
package securemetrics

import (
	"crypto/tls"
	"flag"

	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// Serving says how /metrics is served. The zero value is plain HTTP to anyone, for tests and
// `make dev`; the flags default to Secure.
type Serving struct {
	// Secure serves HTTPS and asks the API server about every caller.
	Secure bool
	// CertPath is a directory holding CertName and CertKey (e.g. a mounted cert-manager Secret),
	// reloaded when they change; empty, or either file absent: a self-signed certificate made at
	// start, which Prometheus accepts with insecureSkipVerify.
	CertPath, CertName, CertKey string
}

// BindFlags adds --metrics-secure and --metrics-cert-{path,name,key} to fs, kubebuilder's names.
func (s *Serving) BindFlags(fs *flag.FlagSet) {
	fs.BoolVar(&s.Secure, "metrics-secure", true,
		"serve /metrics over HTTPS to callers the API server authenticates and authorizes (get on /metrics); false: plain HTTP to anyone")
	fs.StringVar(&s.CertPath, "metrics-cert-path", "", "directory of the metrics server's certificate (default: a self-signed one)")
	fs.StringVar(&s.CertName, "metrics-cert-name", "tls.crt", "certificate file in --metrics-cert-path")
	fs.StringVar(&s.CertKey, "metrics-cert-key", "tls.key", "key file in --metrics-cert-path")
}

// Options are the controller-runtime metrics server options for bindAddress ("0" disables).
func (s Serving) Options(bindAddress string) metricsserver.Options {
	o := metricsserver.Options{BindAddress: bindAddress}
	if !s.Secure {
		return o
	}
	o.SecureServing = true
	o.FilterProvider = filters.WithAuthenticationAndAuthorization
	o.CertDir, o.CertName, o.KeyName = s.CertPath, s.CertName, s.CertKey
	// HTTP/2 stays off, as in kubebuilder's scaffold: its stream handling has been the subject of
	// denial-of-service advisories (Rapid Reset, CVE-2023-44487), and a scraper needs none of it.
	o.TLSOpts = []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }}
	return o
}
