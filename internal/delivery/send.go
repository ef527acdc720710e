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

package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

// sender makes one try to deliver events to a sink: a binary-mode request of one event, or a
// batched-mode request of several.
type sender struct {
	client cloudevents.Client
	// batches sends batched mode's requests, over the same transport as client.
	batches *http.Client
	workers int
	// auth adds the callback server's ServiceAccount token (its rest.Config's, the file re-read
	// as the kubelet rotates it) to the requests to the tagging endpoint.
	auth func(http.RoundTripper) (http.RoundTripper, error)

	mu sync.Mutex
	// tagging sends to the tagging endpoint whose certificate is ca: one manager serves it at a
	// time, and a new one comes with its own certificate.
	tagging *http.Client
	ca      string
}

func newSender(workers int, rc *rest.Config) *sender {
	t := newTransport(workers)
	c, err := cloudevents.NewClientHTTP(cehttp.WithRoundTripper(t))
	if err != nil {
		// Only an option can fail it, and these are constant.
		panic(err)
	}
	return &sender{client: c, batches: &http.Client{Transport: t}, workers: workers,
		auth: func(rt http.RoundTripper) (http.RoundTripper, error) {
			return transport.NewBearerAuthWithRefreshRoundTripper(rc.BearerToken, rc.BearerTokenFile, rt)
		}}
}

// newTransport keeps a connection per worker to each sink between events: with fewer idle
// connections than workers, every burst would close and reopen some. No limit across sinks:
// workers per sink bound them, and IdleConnTimeout closes those of a sink no longer sent to.
func newTransport(workers int) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = workers
	t.MaxIdleConns = 0
	return t
}

// taggingClient is the client of the tagging endpoint whose certificate is ca: TLS trusting that
// certificate alone, with the token.
func (s *sender) taggingClient(ca string) (*http.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tagging != nil && s.ca == ca {
		return s.tagging, nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM([]byte(ca)) {
		return nil, errors.New("the tagging endpoint's CA in the push config is not a PEM certificate")
	}
	t := newTransport(s.workers)
	t.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	rt, err := s.auth(t)
	if err != nil {
		return nil, fmt.Errorf("the ServiceAccount token for the tagging endpoint: %w", err)
	}
	if s.tagging != nil {
		s.tagging.CloseIdleConnections()
	}
	s.tagging, s.ca = &http.Client{Transport: rt}, ca
	return s.tagging, nil
}

// send returns the answer's status, 0 with the cause when there was none.
func (s *sender) send(ctx context.Context, t Target, events []cloudevents.Event) (int, error) {
	if t.MaxEvents == 0 {
		res := s.client.Send(cloudevents.ContextWithTarget(ctx, t.URI), events[0])
		var hr *cehttp.Result
		if cloudevents.ResultAs(res, &hr) {
			return hr.StatusCode, res
		}
		return 0, res
	}
	hc := s.batches
	if t.Tagging {
		var err error
		if hc, err = s.taggingClient(t.CA); err != nil {
			return 0, err
		}
	}
	req, err := cehttp.NewHTTPRequestFromEvents(ctx, t.URI, events)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	// Read to the end (within reason), so that the connection is reused.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
}

// Outcomes of a try, and of an event: the result label of the deliveries metric.
const (
	resultOK       = "ok"
	resultRejected = "rejected" // a 4xx other than 408 and 429: trying again would get the same
	resultExpired  = "expired"  // older than the sink's retention, or pushed out by the backlog limit
	resultNoSink   = "no_sink"  // its account and code no longer have a sink
)

// verdict is what a sink's answer status means for the events of the request, 0 being no answer:
// resultOK, resultRejected, or "" to try again.
func verdict(status int) string {
	switch {
	case status >= 200 && status < 300:
		return resultOK
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		return resultRejected
	}
	return ""
}

// sinkHost names a sink in logs and status: a URI may carry a token in its user info or query.
func sinkHost(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "(unparsable)"
	}
	return u.Scheme + "://" + u.Host + u.Path
}

// deliveryError is a failed try's cause without the URL (which *url.Error repeats).
func deliveryError(status int, res error) string {
	if status != 0 {
		return fmt.Sprintf("answered %d %s", status, http.StatusText(status))
	}
	if res == nil {
		return ""
	}
	if ue, ok := errors.AsType[*url.Error](res); ok {
		return ue.Err.Error()
	}
	return res.Error()
}
