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

package stack

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/demoapp"
)

// startDemo runs internal/dev/demoapp's application and sink on loopback and points the account at
// them (spec.forward.url, spec.sink.uri), as a user puts the operator in front of an existing
// application: text messages reach the application through the callback server, which relays its
// reply; every counted scan reaches the sink as a CloudEvent.
func (s *Stack) startDemo(a Account, account *unstructured.Unstructured) error {
	app, err := demoapp.NewApp(a.Token, a.AppID, a.EncodingAESKey, clock.RealClock{}, s.con.prefixed("app"))
	if err != nil {
		return err
	}
	s.sinkLines = &sightings{out: s.con.prefixed("sink"), changed: make(chan struct{})}
	s.sink = &switchable{Handler: demoapp.NewSink(s.sinkLines)}
	appURL, err := s.serve(s.opts.Ports.Application, app)
	if err != nil {
		return err
	}
	if s.SinkURL, err = s.serve(s.opts.Ports.Sink, s.sink); err != nil {
		return err
	}
	s.ApplicationURL = appURL + "/wx"
	if err := unstructured.SetNestedField(account.Object, s.ApplicationURL, "spec", "forward", "url"); err != nil {
		return err
	}
	if err := unstructured.SetNestedField(account.Object, s.SinkURL, "spec", "sink", "uri"); err != nil {
		return err
	}
	s.log.Printf("demo application on %s (spec.forward), demo sink on %s (spec.sink)", s.ApplicationURL, s.SinkURL)
	return nil
}

// serve serves h on the loopback port until the stack stops, and returns its base URL.
func (s *Stack) serve(port int, h http.Handler) (string, error) {
	l, err := net.Listen("tcp", hostPort(port))
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	s.servers = append(s.servers, srv)
	return "http://" + l.Addr().String(), nil
}

// sightings prints the demo sink's lines and keeps them, so that `make scan` can show the event
// the sink received for each of its scans.
type sightings struct {
	out   demoapp.Printer
	mu    sync.Mutex
	lines []string
	// changed is closed and replaced at every line.
	changed chan struct{}
}

func (s *sightings) Printf(format string, args ...any) {
	s.out.Printf(format, args...)
	line := strings.TrimSpace(fmt.Sprintf(format, args...))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lines = append(s.lines, line)
	close(s.changed)
	s.changed = make(chan struct{})
}

// waitFor returns the first line with every part, once the sink printed it, or false when ctx
// ends first.
func (s *sightings) waitFor(ctx context.Context, parts ...string) (string, bool) {
	for {
		s.mu.Lock()
		for _, l := range s.lines {
			if containsAll(l, parts) {
				s.mu.Unlock()
				return l, true
			}
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return "", false
		}
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
