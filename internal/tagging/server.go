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

package tagging

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/cert"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
)

// Path is the tagging endpoint's path: the nonResourceURL the callback server's ServiceAccount
// may post to (config/rbac/tagging), and nothing else.
const Path = "/tagging"

// ServerOptions place the endpoint.
type ServerOptions struct {
	// BindAddress is where it listens; "0" serves no endpoint (codes' scanners are not tagged).
	BindAddress string
	// AdvertiseHost is the address the callback server reaches this manager at: the Pod's IP.
	AdvertiseHost string
	// StatusInterval is how often the codes' status.tagging is written, each code at most once.
	StatusInterval time.Duration
}

// DefaultStatusInterval is the codes' status.tagging's: at most maxReports writes that often.
const DefaultStatusInterval = 10 * time.Second

// Server serves the Tagger's endpoint over TLS while its manager leads, and publishes it.
type Server struct {
	tagger *Tagger
	opts   ServerOptions
	// filter authenticates (TokenReview) and authorizes (SubjectAccessReview: post on Path)
	// each request, as the metrics endpoint's does.
	filter metricsserver.Filter
	// publish makes the endpoint known to the callback servers (the push config).
	publish func(*pushconfig.Tagging)
	// status writes the codes' status.tagging.
	status client.SubResourceWriter
	log    logr.Logger
}

// NewServer is a Server of t.
func NewServer(t *Tagger, opts ServerOptions, filter metricsserver.Filter, publish func(*pushconfig.Tagging), status client.SubResourceWriter, log logr.Logger) *Server {
	if opts.StatusInterval <= 0 {
		opts.StatusInterval = DefaultStatusInterval
	}
	return &Server{tagger: t, opts: opts, filter: filter, publish: publish, status: status, log: log}
}

// Start serves until ctx ends. The certificate is made here, at each start: a self-signed one
// for the advertised address, which the push config publishes as the one to trust, so that
// nothing is provisioned and no key is stored.
func (s *Server) Start(ctx context.Context) error {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	ln, err := net.Listen("tcp", s.opts.BindAddress)
	if err != nil {
		return fmt.Errorf("the tagging endpoint: %w", err)
	}
	var ips []net.IP
	if ip := net.ParseIP(s.opts.AdvertiseHost); ip != nil {
		ips = append(ips, ip)
	}
	certPEM, keyPEM, err := cert.GenerateSelfSignedCertKey(s.opts.AdvertiseHost, ips, nil)
	if err != nil {
		return err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return err
	}
	h, err := s.filter(s.log, s.tagger.Handler())
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(Path, h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}}
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	tagged := make(chan error, 1)
	go func() { tagged <- s.tagger.Start(ctx) }()
	reported := make(chan struct{})
	go func() { defer close(reported); s.report(ctx) }()

	port := ln.Addr().(*net.TCPAddr).Port
	url := "https://" + net.JoinHostPort(s.opts.AdvertiseHost, strconv.Itoa(port)) + Path
	s.publish(&pushconfig.Tagging{URL: url, CA: string(certPEM)})
	s.log.Info("serving the tagging endpoint", "url", url)

	select {
	case <-ctx.Done():
	case err = <-served:
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if srv.Shutdown(shutdown) != nil {
		// Requests still waiting for their batches: closed, so that the deliverer sends them
		// again to the next leader now rather than at its timeout.
		_ = srv.Close()
	}
	stop()
	taggerErr := <-tagged
	<-reported
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		// The endpoint ended with the term; only the batcher can have failed.
		return taggerErr
	}
	return err
}

// report writes the codes' status.tagging every StatusInterval until ctx ends.
func (s *Server) report(ctx context.Context) {
	r := &reporter{status: s.status, since: metav1.NewTime(s.tagger.clock.Now().Truncate(time.Second)), written: map[string]figures{}}
	ticker := s.tagger.clock.NewTicker(s.opts.StatusInterval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C():
			r.round(ctx, s.tagger.Stats())
		}
	}
}

// NeedLeaderElection is true: only the manager that holds the access tokens tags.
func (s *Server) NeedLeaderElection() bool { return true }
