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
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/clocked"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/ledger"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushrecord"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// PathPrefix starts every account's path: /wechat/<appID>.
const PathPrefix = "/wechat/"

// What became of a verified scan: the result label of the events metric.
const (
	resultCounted   = "counted"
	resultDuplicate = "duplicate" // counted before: a retry
	resultUnmatched = "unmatched" // no code has the ticket (or the scene)
	resultAmbiguous = "ambiguous" // several codes have the scene
)

// scanCounter persists scans: package ledger's Writer. The server answers WeChat only once Count
// has returned: the HTTP tests drive the server with a stand-in, and the ledger's own tests run
// against an API server.
type scanCounter interface {
	// Count returns once e is durable (duplicate when this replica knows it already was), or with
	// an error: then e may or may not be durable, and WeChat's retry will tell. It gives up when
	// ctx ends, and its write at deadline.
	Count(ctx context.Context, e qrv1alpha1.LedgerEntry, deadline time.Time) (duplicate bool, err error)
	// Known is whether Count would now answer duplicate for the event key of code (namespace/name)
	// without waiting: what the forwarded push tells the application.
	Known(code, key string) bool
}

// Server is the push endpoint of every configured account (an http.Handler).
type Server struct {
	opts    Options
	keyring *keyring
	stats   *pushrecord.Stats
	counter scanCounter
	codes   codeIndex
	log     logr.Logger
	sampler *clocked.Sampler
	// forwarder hands pushes on to the account's application.
	forwarder *forward.Forwarder
	// clock times everything of a push: the timestamp check, the reply deadline, the reply's
	// CreateTime, the log sampler and the push duration.
	clock clock.WithDelayedExecution
}

// ServeHTTP answers WeChat: GET is the URL verification; a POST, an event push, is
// authenticated, opened, classified, attributed to a code, counted and answered, in that order.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.clock.Now()
	q := pushwire.ParseQuery(r.URL.RawQuery)
	keys, rf := s.authenticate(r, q)
	if rf != nil {
		s.refuse(w, r, keys, rf)
		return
	}
	if r.Method == http.MethodGet {
		s.echo(w, r, keys, q)
		return
	}
	m, c, body, rf := s.open(w, r, keys, q)
	if rf != nil {
		s.refuse(w, r, keys, rf)
		return
	}
	s.stats.Verified(keys.appID)
	defer func() { pushDuration.Observe(s.clock.Since(start).Seconds()) }()

	sc, kind := classify(m)
	if sc == nil {
		events.WithLabelValues(kind, "acknowledged").Inc()
		s.relay(w, keys, m, c, s.forward(r, keys, body, nil))
		return
	}
	deadline := start.Add(s.opts.ReplyDeadline)
	ctx, cancel := clocked.WithDeadline(r.Context(), s.clock, deadline)
	defer cancel()
	code, result, err := attribute(s.codes, keys.appID, sc)
	var app <-chan *forward.Answer
	// A code with a reply is answered by the operator alone: WeChat takes one reply. The scan's
	// headers cost a lookup of the event and a map: only for an account that forwards.
	if err == nil && (code == nil || code.Spec.Reply == nil) && keys.forwards() {
		app = s.forward(r, keys, body, s.scanHeaders(code, sc))
	}
	if err == nil && code != nil {
		result, err = s.count(ctx, keys, code, sc, m, start, deadline)
	}
	if err != nil {
		// Not "success": WeChat retries.
		events.WithLabelValues(kind, "failed").Inc()
		s.log.Error(err, "scan not counted; WeChat will retry", "appID", keys.appID)
		http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
		return
	}
	events.WithLabelValues(kind, result).Inc()
	if app != nil {
		s.relay(w, keys, m, c, app)
		return
	}
	var reply *qrv1alpha1.ReplyMessage
	if result == resultCounted || result == resultDuplicate {
		// A retry gets the very reply the original got: the same spec, the same kind of scan.
		reply = greeting(code.Spec.Reply, sc.kind)
	}
	s.answer(w, keys, m, c, reply)
}

// authenticate finds the push keys of the path and checks the URL signature and timestamp, which
// every request carries.
func (s *Server) authenticate(r *http.Request, q pushwire.Query) (*pushKeys, *refusal) {
	appID, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	var keys *pushKeys
	if ok {
		keys = s.keyring.lookup(appID)
	}
	if keys == nil {
		return nil, newRefusal(http.StatusNotFound, "unknown_account", nil)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return keys, newRefusal(http.StatusMethodNotAllowed, "method", nil)
	}
	timestamp, nonce, signature := q.Timestamp, q.Nonce, q.Signature
	if timestamp == "" || nonce == "" || signature == "" {
		return keys, newRefusal(http.StatusBadRequest, "missing_parameter", nil)
	}
	if rf := s.checkTimestamp(timestamp); rf != nil {
		return keys, rf
	}
	if !wxcrypto.VerifySignature(signature, keys.token, timestamp, nonce) {
		return keys, newRefusal(http.StatusForbidden, "bad_signature", nil)
	}
	return keys, nil
}

// checkTimestamp bounds how long a captured request can be replayed.
func (s *Server) checkTimestamp(ts string) *refusal {
	if len(ts) > 12 || strings.Trim(ts, "0123456789") != "" {
		return newRefusal(http.StatusBadRequest, "bad_timestamp", nil)
	}
	sec, _ := strconv.ParseInt(ts, 10, 64)
	skew := s.clock.Since(time.Unix(sec, 0))
	if skew > s.opts.MaxClockSkew || -skew > s.opts.MaxClockSkew {
		return newRefusal(http.StatusForbidden, "stale_timestamp", nil)
	}
	return nil
}

// echo answers the URL verification WeChat sends when the server URL is configured.
func (s *Server) echo(w http.ResponseWriter, r *http.Request, keys *pushKeys, q pushwire.Query) {
	echo := q.EchoStr
	if echo == "" {
		s.refuse(w, r, keys, newRefusal(http.StatusBadRequest, "missing_parameter", nil))
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	_, _ = io.WriteString(w, echo)
}

// readBody reads a push's body, at most limit bytes. A body of declared length (WeChat's always
// is) is read into a buffer of that size: io.ReadAll, growing its buffer from 512 bytes, made a
// safe-mode push's largest allocations after decryption (BenchmarkPush -benchmem).
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	body := http.MaxBytesReader(w, r.Body, limit)
	if n := r.ContentLength; n >= 0 && n <= limit {
		buf := make([]byte, n)
		_, err := io.ReadFull(body, buf)
		return buf, err
	}
	return io.ReadAll(body)
}

// open reads, authenticates and decrypts the body of a push. It returns the cipher that decrypted
// it, nil for a plaintext push, and the body as read, for the application behind the account.
func (s *Server) open(w http.ResponseWriter, r *http.Request, keys *pushKeys, q pushwire.Query) (*pushwire.Message, *wxcrypto.Cipher, []byte, *refusal) {
	body, err := readBody(w, r, s.opts.MaxBodyBytes)
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, nil, nil, newRefusal(http.StatusRequestEntityTooLarge, "body_too_large", nil)
		}
		return nil, nil, nil, newRefusal(http.StatusBadRequest, "read_error", nil)
	}
	var encrypted bool
	switch q.EncryptType {
	case "", "raw":
	case "aes":
		encrypted = true
	default:
		return nil, nil, nil, newRefusal(http.StatusBadRequest, "bad_encrypt_type", nil)
	}
	switch {
	case !encrypted && len(keys.ciphers) > 0:
		return nil, nil, nil, newRefusal(http.StatusForbidden, "encryption_required",
			errors.New("the account Secret has an encodingAESKey, so only encrypted pushes are accepted: set the account to safe or compatible mode, or remove encodingAESKey"))
	case encrypted && len(keys.ciphers) == 0:
		return nil, nil, nil, newRefusal(http.StatusForbidden, "no_encoding_aes_key",
			errors.New("encrypted push for an account whose Secret has no encodingAESKey"))
	}
	if !encrypted {
		m, err := pushwire.ParseMessage(body)
		if err != nil {
			return nil, nil, nil, newRefusal(http.StatusBadRequest, "malformed_body", err)
		}
		return m, nil, body, nil
	}
	enc, err := pushwire.EnvelopeEncrypt(body)
	if err != nil {
		return nil, nil, nil, newRefusal(http.StatusBadRequest, "malformed_body", err)
	}
	if enc == "" || q.MsgSignature == "" {
		return nil, nil, nil, newRefusal(http.StatusBadRequest, "missing_parameter", nil)
	}
	if !wxcrypto.VerifySignature(q.MsgSignature, keys.token, q.Timestamp, q.Nonce, enc) {
		return nil, nil, nil, newRefusal(http.StatusForbidden, "bad_msg_signature", nil)
	}
	plain, c, err := keys.decrypt(enc)
	if err != nil {
		reason := "decrypt_failed"
		if errors.Is(err, wxcrypto.ErrAppIDMismatch) {
			reason = "appid_mismatch"
		}
		return nil, nil, nil, newRefusal(http.StatusBadRequest, reason, err)
	}
	m, err := pushwire.ParseMessage(plain)
	if err != nil {
		return nil, nil, nil, newRefusal(http.StatusBadRequest, "malformed_body", err)
	}
	return m, c, body, nil
}

// count makes a scan attributed to code durable in the ledger and returns the result label of
// the events metric. The entry carries its scan event's data (the OpenID among it) only when the
// account or the code has a sink, declared even if not resolved yet, or the scan tags its
// scanner (spec.tags): the ledger is the events' outbox (package delivery; the manager's tagging
// endpoint is one more target), and an event not stored now could never be sent.
func (s *Server) count(ctx context.Context, keys *pushKeys, code *qrv1alpha1.WeChatQRCode, sc *scan, m *pushwire.Message, at, deadline time.Time) (string, error) {
	e := qrv1alpha1.LedgerEntry{
		Key:       sc.key,
		Code:      client.ObjectKeyFromObject(code).String(),
		UID:       code.UID,
		Subscribe: sc.kind == kindQRSubscribe,
		At:        at.UnixMilli(),
		Scanner:   ledger.ScannerHash(m.FromUserName),
	}
	if keys.hasSink() || code.Spec.Sink != nil || code.Spec.TagsScan(e.Subscribe) {
		createTime, _ := strconv.ParseInt(m.CreateTime, 10, 64)
		e.Event = qrv1alpha1.LedgerEvent{AppID: keys.appID, CreateTime: createTime, OpenID: m.FromUserName, Scene: sc.scene, Ticket: sc.ticket}
	}
	duplicate, err := s.counter.Count(ctx, e, deadline)
	switch {
	case err != nil:
		return "", err
	case duplicate:
		return resultDuplicate, nil
	}
	return resultCounted, nil
}

// answer acknowledges a push with "success" (reply nil), or with the passive reply, encrypted
// like the push was.
func (s *Server) answer(w http.ResponseWriter, keys *pushKeys, m *pushwire.Message, c *wxcrypto.Cipher, reply *qrv1alpha1.ReplyMessage) {
	if reply == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "success")
		return
	}
	now := s.clock.Now().Unix()
	body := appendGreeting(nil, m, reply, now)
	if c != nil {
		var err error
		if body, err = pushwire.Seal(keys.token, c, body, now); err != nil {
			// The scan is persisted: acknowledging it without the reply beats a retry.
			s.log.Error(err, "sealing the passive reply; answering success", "appID", keys.appID)
			s.answer(w, keys, m, nil, nil)
			return
		}
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	_, _ = w.Write(body)
}
