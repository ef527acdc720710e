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
	"bytes"
	"io"
	"net/http"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxreply"
)

// The encoding/xml builders of replies (pushwire's tests hold its byte builders to them): what the
// tests expect a reply to be, and read replies with.

type (
	textReply      = wxreply.Text
	encryptedReply = wxreply.Envelope
)

func oracleTextReply(t testing.TB, to, from, text string, now int64) string {
	t.Helper()
	b, err := wxreply.MarshalText(to, from, text, now)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func oracleEnvelope(t testing.TB, enc, sig string, now int64, nonce string) string {
	t.Helper()
	b, err := wxreply.MarshalEnvelope(enc, sig, strconv.FormatInt(now, 10), nonce)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// BenchmarkPushReply is the CPU cost of a safe-mode push that is counted and answered with an
// encrypted passive reply: the envelope and the message parsed, the reply and its envelope built.
// The stub counter takes every push after the first for a retry, so nothing else is measured.
func BenchmarkPushReply(b *testing.B) {
	s, _, pushers := unitServer(b, newStubCounter())
	req := pushers[safe].build(b, scanXML("o1", 1, "SCAN", "2", "TICKET-S"))
	for b.Loop() {
		if code, reply := req.serve(s); code != http.StatusOK || reply == "success" {
			b.Fatal(code, reply)
		}
	}
}

// BenchmarkPushText is the CPU cost of the push make bench-peer sends: a safe-mode text message,
// both signatures verified, decrypted, scanned, counted in the metrics and answered "success".
// The request and the response writer are reused, so that what is measured is the handler's own
// work, not httptest's. cpu-ns/op is the process's CPU time per push, which the other users of a
// shared machine disturb less than ns/op, the wall time.
func BenchmarkPushText(b *testing.B) {
	s, _, pushers := unitServer(b, newStubCounter())
	p := pushers[safe].build(b, textXML("o-text-1", time.Now().Unix(), "hello 1"))
	req := p.request()
	body := bytes.NewReader(p.body)
	req.Body = io.NopCloser(body)
	w := &reusedWriter{header: http.Header{}}
	b.ReportAllocs()
	before := processCPU(b)
	for b.Loop() {
		body.Reset(p.body)
		clear(w.header)
		w.code, w.body = http.StatusOK, w.body[:0]
		s.ServeHTTP(w, req)
		if w.code != http.StatusOK || string(w.body) != "success" {
			b.Fatal(w.code, string(w.body))
		}
	}
	b.ReportMetric(float64(processCPU(b)-before)/float64(b.N), "cpu-ns/op")
}

// processCPU is the user and system CPU time the process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reusedWriter is an http.ResponseWriter that a benchmark resets between requests.
type reusedWriter struct {
	header http.Header
	code   int
	body   []byte
}

func (w *reusedWriter) Header() http.Header  { return w.header }
func (w *reusedWriter) WriteHeader(code int) { w.code = code }
func (w *reusedWriter) Write(b []byte) (int, error) {
	w.body = append(w.body, b...)
	return len(b), nil
}
