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

// Package forward hands a push to the account's application (spec.forward) unchanged, as if WeChat
// had called it, and holds its answer until the server decides what WeChat gets. It is a small
// client rather than httputil.ReverseProxy because the answer must be buffered whole: the scan is
// counted while the application works, and an application that does not answer in time, or
// fails half way, must turn into "success" — a streaming proxy has already written the status
// by then. Its own work per push is a header copy and a body of at most maxForwardReply bytes.
package forward

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/clocked"
)

// Headers the operator adds to a forwarded QR scan. The application may trust them only because
// every incoming header with their prefix is dropped first.
const (
	headerPrefix        = "X-Wechat-Qrcode-"
	HeaderCodeNamespace = "X-WeChat-QRCode-Namespace"
	HeaderCodeName      = "X-WeChat-QRCode-Name"
	// HeaderScan is "new" for a scan the operator is counting now (it answers WeChat only once the
	// count is durable) and "duplicate" for a WeChat retry of a scan it already counted.
	HeaderScan = "X-WeChat-QRCode-Scan"
	// HeaderEventID is the scan's dedupe key: the id of its CloudEvent on the sinks.
	HeaderEventID = "X-WeChat-QRCode-Event-Id"
)

// maxForwardReply caps the application's answer: a passive reply is a few KiB.
const maxForwardReply = 1 << 20

// Results of a forward, the result label of the forwards metric.
const (
	forwardOK      = "ok" // 2xx
	forwardTimeout = "timeout"
	forwardError   = "error" // no answer: refused connection, reset, oversized answer…
)

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1, which a proxy does not pass on.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

// Answer is the application's answer.
type Answer struct {
	status int
	header http.Header
	body   []byte
}

// Forwarder sends pushes on to the accounts' applications.
type Forwarder struct {
	transport http.RoundTripper
	clock     clock.WithDelayedExecution
	log       logr.Logger
	// sampler lets one line per result through per second: a dead application would otherwise
	// log every push.
	sampler *clocked.Sampler
}

// New forwards on clk, logging to log (sampled).
func New(clk clock.WithDelayedExecution, log logr.Logger) *Forwarder {
	return &Forwarder{transport: newTransport(), clock: clk, log: log, sampler: clocked.NewSampler(clk)}
}

func newTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	// The application's answer goes back as it is: no transparent gzip.
	t.DisableCompression = true
	// Every push of an account goes to one host: keep enough connections for a burst of scans.
	t.MaxIdleConnsPerHost = 64
	return t
}

// Start sends the push (r with its already read body) to target and returns where its answer
// arrives: nil when the application did not answer within timeout or failed, which the server
// turns into "success". extra are the operator's own headers. The forward ends with r's context,
// so a push the server answers otherwise (a failed count: WeChat retries) abandons it.
func (f *Forwarder) Start(r *http.Request, appID, target string, timeout time.Duration, body []byte, extra http.Header) <-chan *Answer {
	out := make(chan *Answer, 1)
	start := f.clock.Now()
	ctx, cancel := clocked.WithDeadline(r.Context(), f.clock, start.Add(timeout))
	go func() {
		defer cancel()
		a, err := f.do(ctx, r, target, body, extra)
		var result string
		switch {
		case err == nil && a.status/100 == 2:
			result = forwardOK
		case err == nil:
			result = "http_" + strconv.Itoa(a.status/100) + "xx"
		case errors.Is(context.Cause(ctx), context.DeadlineExceeded):
			result = forwardTimeout
		default:
			result = forwardError
		}
		forwards.WithLabelValues(result).Inc()
		forwardDuration.Observe(f.clock.Since(start).Seconds())
		if a == nil && r.Context().Err() == nil && f.sampler.Allow("forward_"+result) {
			kv := []any{"appID", appID, "result", result, "timeout", timeout.String()}
			if err != nil {
				kv = append(kv, "error", err.Error())
			}
			f.log.Info("the application did not answer the forwarded push; answering success", kv...)
		}
		out <- a
	}()
	return out
}

func (f *Forwarder) do(ctx context.Context, in *http.Request, target string, body []byte, extra http.Header) (*Answer, error) {
	u, err := url.Parse(target)
	if err != nil {
		return nil, errors.New("the forward URL does not parse")
	}
	// The path is the application's; the query is WeChat's (signature, timestamp, nonce, openid,
	// encrypt_type, msg_signature), byte for byte.
	if u.RawQuery == "" {
		u.RawQuery = in.URL.RawQuery
	} else if in.URL.RawQuery != "" {
		u.RawQuery += "&" + in.URL.RawQuery
	}
	out, err := http.NewRequestWithContext(ctx, in.Method, u.String(), bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	out.Header = requestHeader(in)
	for k, v := range extra {
		out.Header[k] = v
	}
	resp, err := f.transport.RoundTrip(out)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxForwardReply+1))
	switch {
	case err != nil:
		return nil, err
	case len(b) > maxForwardReply:
		return nil, errors.New("the application's answer is over 1 MiB")
	}
	h := resp.Header.Clone()
	removeHop(h)
	h.Del("Content-Length")
	return &Answer{status: resp.StatusCode, header: h, body: b}, nil
}

// requestHeader is what the application gets of WeChat's request headers: all but the hop-by-hop
// ones and the operator's own prefix, plus the X-Forwarded-* of a reverse proxy.
func requestHeader(in *http.Request) http.Header {
	h := in.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	removeHop(h)
	for k := range h {
		if strings.HasPrefix(k, headerPrefix) {
			delete(h, k)
		}
	}
	if ip, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
		if prior := h.Values("X-Forwarded-For"); len(prior) > 0 {
			ip = strings.Join(prior, ", ") + ", " + ip
		}
		h.Set("X-Forwarded-For", ip)
	}
	h.Set("X-Forwarded-Host", in.Host)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	if h.Get("X-Forwarded-Proto") == "" {
		h.Set("X-Forwarded-Proto", proto)
	}
	// Go's client sends its own User-Agent when none is set; keep WeChat's absence of one visible.
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = []string{""}
	}
	return h
}

// removeHop drops the hop-by-hop headers and those the Connection header names.
func removeHop(h http.Header) {
	for _, v := range h.Values("Connection") {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				h.Del(name)
			}
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

// Write relays the application's answer to WeChat as it is.
func (a *Answer) Write(w http.ResponseWriter) {
	for k, v := range a.header {
		w.Header()[k] = v
	}
	w.WriteHeader(a.status)
	_, _ = w.Write(a.body)
}

// DefaultTimeout is spec.forward.timeout's default, for a projection that left it out.
const DefaultTimeout = 3 * time.Second
