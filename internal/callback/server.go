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
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// The callback server writes only annotations (metadata), never status, and reads Secrets by
// name through a Role limited with resourceNames that the deployment writes, not through these
// markers.
//
// +kubebuilder:rbac:groups=wechat.qrcode-operator.io,resources=wechatqrcodes,verbs=get;list;watch;patch

// PathPrefix starts every account's path: /wechat/<appID>.
const PathPrefix = "/wechat/"

// Options is how the server treats pushes; see the package comment for what each one bounds.
type Options struct {
	// Accounts are the Secrets (namespace/name) of the accounts served.
	Accounts []types.NamespacedName
	// SecretRefreshInterval is how often the Secrets are read again.
	SecretRefreshInterval time.Duration
	// MaxClockSkew is how far a push's timestamp may be from our clock, either way.
	MaxClockSkew time.Duration
	// MaxBodyBytes caps a push's body.
	MaxBodyBytes int64
	// ReplyDeadline is how long a push may wait for its count to be persisted.
	ReplyDeadline time.Duration
	// CommitWindow is the group-commit window: at most one patch per code per window.
	CommitWindow time.Duration
	// RecentEvents is N, the length of each code's ring of recently counted event keys.
	RecentEvents int
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{
		SecretRefreshInterval: time.Minute,
		MaxClockSkew:          5 * time.Minute,
		MaxBodyBytes:          64 << 10,
		ReplyDeadline:         3 * time.Second,
		CommitWindow:          25 * time.Millisecond,
		RecentEvents:          1024,
	}
}

// maxRecentEvents keeps the ring (13 bytes a key) well inside the API server's 256 KiB limit on
// an object's annotations.
const maxRecentEvents = 8192

func (o Options) validate() error {
	switch {
	case len(o.Accounts) == 0:
		return errors.New("no account Secret given (--account=<namespace>/<name>)")
	case o.SecretRefreshInterval <= 0, o.MaxClockSkew <= 0, o.MaxBodyBytes <= 0, o.CommitWindow < 0:
		return errors.New("durations and sizes must be positive")
	case o.ReplyDeadline <= o.CommitWindow || o.ReplyDeadline >= 5*time.Second:
		return errors.New("the reply deadline must be longer than the commit window and shorter than WeChat's 5 s")
	case o.RecentEvents < 1 || o.RecentEvents > maxRecentEvents:
		return fmt.Errorf("recent events must be between 1 and %d", maxRecentEvents)
	}
	return nil
}

// Server is the push endpoint of every configured account (an http.Handler).
type Server struct {
	opts     Options
	accounts *accounts
	counter  scanCounter
	cache    client.Reader
	log      logr.Logger
	sampler  sampler
	// clock times everything of a push: the timestamp check, the reply deadline, the reply's
	// CreateTime, the log sampler and the push duration.
	clock clock.WithDelayedExecution
}

// Setup adds the server's cache indexes and Secret reader to mgr, whose cache must not have
// started yet, and its readiness check: ready once the cache has synced and the Secrets have been
// read once. Serving it is the caller's business (see NewManager).
func Setup(mgr ctrl.Manager, opts Options) (*Server, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	log := mgr.GetLogger().WithName("callback")
	if err := addIndexes(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	// Secrets are read uncached, by name: a cached read would list and watch every Secret.
	s := newServer(opts, clock.RealClock{}, mgr.GetAPIReader(), mgr.GetCache(), mgr.GetClient(), log)
	if err := mgr.Add(s.accounts); err != nil {
		return nil, err
	}
	return s, mgr.AddReadyzCheck("callback", func(r *http.Request) error {
		if !s.accounts.loaded.Load() {
			return errors.New("account Secrets not read yet")
		}
		ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
		defer cancel()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			return errors.New("cache not synced")
		}
		return nil
	})
}

// scanCounter persists scans. The server answers WeChat only once count has returned: the HTTP
// tests drive the server with a stand-in, and the counter's own tests run against an API server.
type scanCounter interface {
	// count returns once the scan s, made at at, is persisted in code's annotations (duplicate
	// when it already was), or with an error: then the scan may or may not be persisted, and
	// WeChat's retry will tell. It gives up when ctx ends, and its write at deadline.
	count(ctx context.Context, code types.NamespacedName, s *scan, at, deadline time.Time) (duplicate bool, err error)
}

// newServer wires a Server: api reads, uncached, the account Secrets and the codes after a
// conflict; cache serves the index lookups; writer patches the codes; clk times everything.
func newServer(opts Options, clk clock.WithDelayedExecution, api, cache client.Reader, writer client.Writer, log logr.Logger) *Server {
	return &Server{
		opts:     opts,
		accounts: &accounts{reader: api, refs: dedupe(opts.Accounts), interval: opts.SecretRefreshInterval, clock: clk, log: log},
		counter:  newCounter(clk, writer, cache, api, opts.CommitWindow, opts.RecentEvents),
		cache:    cache,
		log:      log,
		sampler:  sampler{clock: clk},
		clock:    clk,
	}
}

func dedupe(refs []types.NamespacedName) []types.NamespacedName {
	var out []types.NamespacedName
	seen := map[types.NamespacedName]bool{}
	for _, r := range refs {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	return out
}

// refusal is a request turned away with a 4xx.
type refusal struct {
	status int
	reason string
	err    error // safe to log: never carries a token, key or signature
}

func refuse(status int, reason string, err error) *refusal {
	return &refusal{status: status, reason: reason, err: err}
}

// ServeHTTP answers WeChat: GET is the URL verification, POST an event push.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := s.clock.Now()
	q := r.URL.Query()
	acct, rf := s.authenticate(r, q)
	if rf != nil {
		s.refuse(w, r, acct, rf)
		return
	}
	if r.Method == http.MethodGet {
		echo := q.Get("echostr")
		if echo == "" {
			s.refuse(w, r, acct, refuse(http.StatusBadRequest, "missing_parameter", nil))
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		_, _ = io.WriteString(w, echo)
		return
	}
	m, c, rf := s.open(w, r, acct, q)
	if rf != nil {
		s.refuse(w, r, acct, rf)
		return
	}
	s.handle(w, r, acct, m, c, start)
	pushDuration.Observe(s.clock.Since(start).Seconds())
}

// authenticate finds the account of the path and checks the URL signature and timestamp, which
// every request carries.
func (s *Server) authenticate(r *http.Request, q url.Values) (*account, *refusal) {
	appID, ok := strings.CutPrefix(r.URL.Path, PathPrefix)
	var acct *account
	if ok {
		acct = s.accounts.get(appID)
	}
	if acct == nil {
		return nil, refuse(http.StatusNotFound, "unknown_account", nil)
	}
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		return acct, refuse(http.StatusMethodNotAllowed, "method", nil)
	}
	timestamp, nonce, signature := q.Get("timestamp"), q.Get("nonce"), q.Get("signature")
	if timestamp == "" || nonce == "" || signature == "" {
		return acct, refuse(http.StatusBadRequest, "missing_parameter", nil)
	}
	if rf := s.checkTimestamp(timestamp); rf != nil {
		return acct, rf
	}
	if !wxcrypto.VerifySignature(signature, acct.token, timestamp, nonce) {
		return acct, refuse(http.StatusForbidden, "bad_signature", nil)
	}
	return acct, nil
}

// checkTimestamp bounds how long a captured request can be replayed.
func (s *Server) checkTimestamp(ts string) *refusal {
	if len(ts) > 12 || strings.Trim(ts, "0123456789") != "" {
		return refuse(http.StatusBadRequest, "bad_timestamp", nil)
	}
	sec, _ := strconv.ParseInt(ts, 10, 64)
	skew := s.clock.Since(time.Unix(sec, 0))
	if skew > s.opts.MaxClockSkew || -skew > s.opts.MaxClockSkew {
		return refuse(http.StatusForbidden, "stale_timestamp", nil)
	}
	return nil
}

// open reads, authenticates and decrypts the body of a push. It returns the cipher that decrypted
// it, nil for a plaintext push.
func (s *Server) open(w http.ResponseWriter, r *http.Request, acct *account, q url.Values) (*message, *wxcrypto.Cipher, *refusal) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return nil, nil, refuse(http.StatusRequestEntityTooLarge, "body_too_large", nil)
		}
		return nil, nil, refuse(http.StatusBadRequest, "read_error", nil)
	}
	var encrypted bool
	switch q.Get("encrypt_type") {
	case "", "raw":
	case "aes":
		encrypted = true
	default:
		return nil, nil, refuse(http.StatusBadRequest, "bad_encrypt_type", nil)
	}
	switch {
	case !encrypted && len(acct.ciphers) > 0:
		return nil, nil, refuse(http.StatusForbidden, "encryption_required",
			errors.New("the account Secret has an encodingAESKey, so only encrypted pushes are accepted: set the account to safe or compatible mode, or remove encodingAESKey"))
	case encrypted && len(acct.ciphers) == 0:
		return nil, nil, refuse(http.StatusForbidden, "no_encoding_aes_key",
			errors.New("encrypted push for an account whose Secret has no encodingAESKey"))
	}
	m, err := parseMessage(body)
	if err != nil {
		return nil, nil, refuse(http.StatusBadRequest, "malformed_body", err)
	}
	if !encrypted {
		return m, nil, nil
	}
	if m.Encrypt == "" || q.Get("msg_signature") == "" {
		return nil, nil, refuse(http.StatusBadRequest, "missing_parameter", nil)
	}
	if !wxcrypto.VerifySignature(q.Get("msg_signature"), acct.token, q.Get("timestamp"), q.Get("nonce"), m.Encrypt) {
		return nil, nil, refuse(http.StatusForbidden, "bad_msg_signature", nil)
	}
	plain, c, err := acct.decrypt(m.Encrypt)
	if err != nil {
		reason := "decrypt_failed"
		if errors.Is(err, wxcrypto.ErrAppIDMismatch) {
			reason = "appid_mismatch"
		}
		return nil, nil, refuse(http.StatusBadRequest, reason, err)
	}
	if m, err = parseMessage(plain); err != nil {
		return nil, nil, refuse(http.StatusBadRequest, "malformed_body", err)
	}
	return m, c, nil
}

// handle counts a verified push if it is a scan of a known code, and answers it.
func (s *Server) handle(w http.ResponseWriter, r *http.Request, acct *account, m *message, c *wxcrypto.Cipher, start time.Time) {
	sc, kind := classify(m)
	if sc == nil {
		events.WithLabelValues(kind, "acknowledged").Inc()
		s.answer(w, acct, m, c, "")
		return
	}
	deadline := start.Add(s.opts.ReplyDeadline)
	ctx, cancel := withDeadline(r.Context(), s.clock, deadline)
	defer cancel()
	code, why, err := attribute(ctx, s.cache, acct.appID, sc)
	if err != nil {
		s.fail(w, kind, acct, err)
		return
	}
	if code == nil {
		events.WithLabelValues(kind, why).Inc()
		s.answer(w, acct, m, c, "")
		return
	}
	dup, err := s.counter.count(ctx, client.ObjectKeyFromObject(code), sc, start, deadline)
	switch {
	case errors.Is(err, errGone):
		events.WithLabelValues(kind, "gone").Inc()
		s.answer(w, acct, m, c, "")
		return
	case err != nil:
		s.fail(w, kind, acct, err)
		return
	case dup:
		events.WithLabelValues(kind, "duplicate").Inc()
	default:
		events.WithLabelValues(kind, "counted").Inc()
	}
	var reply string
	if code.Spec.Reply != nil {
		reply = code.Spec.Reply.Text
	}
	s.answer(w, acct, m, c, reply)
}

// fail answers a scan that could not be counted with a 503, so that WeChat retries it.
func (s *Server) fail(w http.ResponseWriter, kind string, acct *account, err error) {
	events.WithLabelValues(kind, "failed").Inc()
	s.log.Error(err, "scan not counted; WeChat will retry", "appID", acct.appID)
	http.Error(w, http.StatusText(http.StatusServiceUnavailable), http.StatusServiceUnavailable)
}

// answer acknowledges a push with "success", or with the passive reply text, encrypted like the
// push was.
func (s *Server) answer(w http.ResponseWriter, acct *account, m *message, c *wxcrypto.Cipher, text string) {
	if text == "" {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = io.WriteString(w, "success")
		return
	}
	now := s.clock.Now().Unix()
	body, err := newTextReply(m, text, now)
	if err == nil && c != nil {
		body, err = seal(acct.token, c, body, now)
	}
	if err != nil {
		// The scan is persisted: acknowledging it without the reply beats a retry.
		s.log.Error(err, "building the passive reply; answering success", "appID", acct.appID)
		s.answer(w, acct, m, nil, "")
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	_, _ = w.Write(body)
}

// seal encrypts and signs a passive reply (safe and compatible mode).
func seal(token string, c *wxcrypto.Cipher, reply []byte, now int64) ([]byte, error) {
	enc, err := c.Encrypt(reply)
	if err != nil {
		return nil, err
	}
	ts, nonce := strconv.FormatInt(now, 10), rand.Text()
	return xml.Marshal(encryptedReply{
		Encrypt:      cdata{enc},
		MsgSignature: cdata{wxcrypto.Signature(token, ts, nonce, enc)},
		TimeStamp:    ts,
		Nonce:        cdata{nonce},
	})
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, acct *account, rf *refusal) {
	refusals.WithLabelValues(rf.reason).Inc()
	if s.sampler.allow(rf.reason) {
		kv := []any{"reason", rf.reason, "status", rf.status, "remote", r.RemoteAddr, "method", r.Method}
		// The path is the attacker's text unless it names one of our accounts.
		if acct != nil {
			kv = append(kv, "appID", acct.appID)
		}
		if rf.err != nil {
			kv = append(kv, "error", rf.err.Error())
		}
		s.log.Info("push refused", kv...)
	}
	if rf.status == http.StatusMethodNotAllowed {
		w.Header().Set("Allow", "GET, POST")
	}
	http.Error(w, http.StatusText(rf.status), rf.status)
}

// sampler lets one log line per refusal reason through per second, so that a flood of hostile
// requests does not become a flood of logs; the refusals metric still counts every one.
type sampler struct {
	clock clock.PassiveClock

	mu   sync.Mutex
	last map[string]time.Time
}

func (s *sampler) allow(reason string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if now.Sub(s.last[reason]) < time.Second {
		return false
	}
	if s.last == nil {
		s.last = map[string]time.Time{}
	}
	s.last[reason] = now
	return true
}

// withDeadline is context.WithDeadline on clk, so that a test steps a deadline instead of waiting
// for it. The context ends with cause context.DeadlineExceeded. It does not report the deadline
// through Deadline(): a dialer or a client would compare that with the real time.
func withDeadline(parent context.Context, clk clock.WithDelayedExecution, deadline time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	left := deadline.Sub(clk.Now())
	if left <= 0 {
		cancel(context.DeadlineExceeded)
		return ctx, func() {}
	}
	t := clk.AfterFunc(left, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}
