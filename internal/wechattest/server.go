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

// Package wechattest is a fake WeChat that behaves as WeChat documents (see
// docs/wechat-platform.md): access tokens with their overlap and force-refresh rules, QR code
// creation with its validation, quotas and permanent cap, the image endpoint (a JPEG, as
// WeChat's), knobs to inject latency, errcodes, HTTP failures and hangs, and a Pusher that sends
// event pushes to a callback as WeChat does. Everything time-based follows an injectable clock,
// so tests move time instead of sleeping.
//
// Where WeChat's documentation is silent the fake picks, and the tests pin:
//   - an empty access_token answers 41001, one that cannot be a token 40014, an unknown or
//     replaced one 40001, an expired one 42001;
//   - a body that is not a JSON object answers 47001 (data format error);
//   - expire_seconds above 2592000 is clamped to it; omitted or not positive, it is 60;
//   - every call with a valid token counts against the daily qrcode/create quota, rejected
//     ones included; the quota day starts at midnight Beijing time;
//   - force_refresh sooner than 30 s after the previous one answers 45011;
//   - tags/get lists the reserved tag 星标组 (id 2), which does not count against the 100 tags;
//     created tags get ids from 100 up; an empty tag name answers 45157; batchtagging is all or
//     nothing and answers the first error of its OpenIDs;
//   - an OpenID is a follower of the AppID the fake first pushed an event of it for (or that a
//     test named in AddFollower); no daily quota is kept for the tag endpoints (inject 45009);
//   - openapi/quota/get answers for the APIs the fake serves (qrcode/create and the token
//     endpoints), 76021 for any other path, and has no daily limit of its own.
package wechattest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// Endpoint paths, also the keys of the call counters.
const (
	EndpointToken       = "/cgi-bin/token"
	EndpointStableToken = "/cgi-bin/stable_token"
	EndpointCreate      = "/cgi-bin/qrcode/create"
	EndpointShowQRCode  = "/cgi-bin/showqrcode"
)

// WeChat's documented limits, the defaults of Options.
const (
	DefaultCreateDailyQuota = 100000 // qrcode/create calls per account per day (test accounts: 10,000)
	DefaultPermanentCap     = 100000 // permanent codes per account, ever
	TokenDailyLimit         = 2000   // /cgi-bin/token calls per account per day
	StableForceDailyLimit   = 20     // stable_token force_refresh per account per day
	StableForceSpacing      = 30 * time.Second
	StableMinuteLimit       = 10000 // stable_token calls per account per minute
	StableDailyLimit        = 500000
	TokenLifetime           = 7200 * time.Second
	// ClassicOverlap: a /cgi-bin/token call leaves the previous token valid this long.
	ClassicOverlap = 5 * time.Minute
	// StableMinRemaining: stable_token never hands out a token with less left; it re-issues.
	StableMinRemaining = 300 * time.Second
	MaxExpireSeconds   = 2592000
	// DefaultExpireSeconds is what WeChat applies when expire_seconds is omitted (new docs: 60 s).
	DefaultExpireSeconds = 60
	MaxPermanentSceneID  = 100000
	MaxSceneStrLength    = 64
)

// Options configure a Server. The zero value behaves like WeChat with real time.
type Options struct {
	// Addr to listen on; default 127.0.0.1:0.
	Addr string
	// Clock for token expiry, code expiry and quota days (which start at midnight Beijing time).
	Clock clock.PassiveClock
	// Latency added to every answer (wall clock).
	Latency time.Duration
	// CreateDailyQuota and PermanentCap default to WeChat's numbers.
	CreateDailyQuota int
	PermanentCap     int
	// Seed makes random faults, tokens and tickets reproducible; 0 picks a random seed.
	Seed uint64
}

// Fault is what an injected failure answers instead of the real behaviour.
type Fault struct {
	Errcode    int  // {"errcode":Errcode,"errmsg":...} with HTTP 200, as WeChat fails
	HTTPStatus int  // or this HTTP status with an empty body (a proxy or load balancer failing)
	Hang       bool // or no answer until the client gives up or the server closes
}

type faultRule struct {
	remaining int     // FailNext: how many calls are left; -1 for a rate rule
	rate      float64 // SetFaultRate: probability per call
	fault     Fault
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the base URL to give a client as both API and image base URL.
	URL string

	ts        *httptest.Server
	clock     clock.PassiveClock
	closed    chan struct{}
	closeOnce sync.Once

	mu          sync.Mutex
	rng         *rand.Rand
	latency     time.Duration
	createQuota int
	permCap     int
	accounts    map[string]*account
	tokens      map[string]*issuedToken
	codes       map[string]*Code
	followers   map[string]string // OpenID → the AppID it belongs to
	faults      map[string][]*faultRule
	calls       map[string]int
	errcodes    map[callKey]int
}

type callKey struct {
	endpoint string
	errcode  int
}

// NewServer starts a fake WeChat. Close it when done.
func NewServer(opts Options) (*Server, error) {
	s := newServer(opts)
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s.ts = httptest.NewUnstartedServer(s)
	_ = s.ts.Listener.Close()
	s.ts.Listener = l
	s.ts.Start()
	s.URL = s.ts.URL
	return s, nil
}

func newServer(opts Options) *Server {
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	if opts.CreateDailyQuota <= 0 {
		opts.CreateDailyQuota = DefaultCreateDailyQuota
	}
	if opts.PermanentCap <= 0 {
		opts.PermanentCap = DefaultPermanentCap
	}
	seed := opts.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Server{
		clock:       opts.Clock,
		closed:      make(chan struct{}),
		rng:         rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		latency:     opts.Latency,
		createQuota: opts.CreateDailyQuota,
		permCap:     opts.PermanentCap,
		accounts:    map[string]*account{},
		tokens:      map[string]*issuedToken{},
		codes:       map[string]*Code{},
		followers:   map[string]string{},
		faults:      map[string][]*faultRule{},
		calls:       map[string]int{},
		errcodes:    map[callKey]int{},
	}
}

// Close stops the server, releasing hung requests first. It may be called more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.ts.Close()
	})
}

// AddAccount registers an Official Account (a verified service account), or resets the secret
// of a known one as the admin console does: issued tokens and codes stay valid.
func (s *Server) AddAccount(appID, secret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if a, ok := s.accounts[appID]; ok {
		a.secret = secret
		return
	}
	s.accounts[appID] = &account{appID: appID, secret: secret, permanent: map[string]*Code{}, tags: newTagState()}
}

// SetLatency changes the latency added to every answer.
func (s *Server) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// SetCreateQuota overrides the daily qrcode/create quota of every account.
func (s *Server) SetCreateQuota(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.createQuota = n
}

// FailNext makes the next n calls to endpoint ("" for any endpoint) fail with f.
func (s *Server) FailNext(endpoint string, n int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[endpoint] = append(s.faults[endpoint], &faultRule{remaining: n, fault: f})
}

// SetFaultRate makes each call to endpoint ("" for any) fail with f with probability rate;
// rate 0 removes the rate rules of that endpoint.
func (s *Server) SetFaultRate(endpoint string, rate float64, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rules := s.faults[endpoint][:0:0]
	for _, r := range s.faults[endpoint] {
		if r.remaining >= 0 {
			rules = append(rules, r)
		}
	}
	if rate > 0 {
		rules = append(rules, &faultRule{remaining: -1, rate: rate, fault: f})
	}
	s.faults[endpoint] = rules
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = map[string][]*faultRule{}
}

// Calls counts every request to endpoint, whatever its outcome.
func (s *Server) Calls(endpoint string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[endpoint]
}

// CallsWithErrcode counts the answers of endpoint with that errcode (0: success).
// Injected HTTP failures, hangs and image answers have no errcode and are only in Calls.
func (s *Server) CallsWithErrcode(endpoint string, errcode int) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.errcodes[callKey{endpoint, errcode}]
}

// pickFaultLocked returns the fault to inject into this call, if any.
func (s *Server) pickFaultLocked(endpoint string) (Fault, bool) {
	for _, key := range []string{endpoint, ""} {
		for i, r := range s.faults[key] {
			switch {
			case r.remaining > 0:
				r.remaining--
				if r.remaining == 0 {
					s.faults[key] = append(s.faults[key][:i:i], s.faults[key][i+1:]...)
				}
				return r.fault, true
			case r.remaining < 0 && s.rng.Float64() < r.rate:
				return r.fault, true
			}
		}
	}
	return Fault{}, false
}

// ServeHTTP lets the fake be mounted in another server; NewServer serves it itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	handlers := map[string]func(http.ResponseWriter, *http.Request){
		EndpointToken:        s.serveToken,
		EndpointStableToken:  s.serveStableToken,
		EndpointCreate:       s.serveCreate,
		EndpointShowQRCode:   s.serveShowQRCode,
		EndpointQuotaGet:     s.serveQuotaGet,
		EndpointTagsGet:      s.serveTagsGet,
		EndpointTagsCreate:   s.serveTagsCreate,
		EndpointBatchTagging: s.serveBatchTagging,
		EndpointGetIDList:    s.serveGetIDList,
	}
	if r.URL.Path == EndpointFollowerTags {
		s.serveFollowerTags(w, r)
		return
	}
	handle, ok := handlers[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	s.calls[r.URL.Path]++
	latency := s.latency
	fault, faulty := s.pickFaultLocked(r.URL.Path)
	s.mu.Unlock()

	if !s.wait(r, latency) {
		return
	}
	if faulty {
		s.inject(w, r, fault)
		return
	}
	handle(w, r)
}

// wait sleeps d unless the client or the server gives up first.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.closed:
	}
	return false
}

func (s *Server) inject(w http.ResponseWriter, r *http.Request, f Fault) {
	switch {
	case f.Hang:
		select {
		case <-r.Context().Done():
		case <-s.closed:
		}
	case f.HTTPStatus != 0:
		w.WriteHeader(f.HTTPStatus)
	default:
		s.fail(w, r, f.Errcode)
	}
}

// errmsgs are WeChat's messages for the codes the fake answers.
var errmsgs = map[int]string{
	-1:    "system error",
	40001: "invalid credential, access_token is invalid or not latest",
	40002: "invalid grant_type",
	40013: "invalid appid",
	40014: "invalid access_token",
	40052: "invalid action name",
	40053: "invalid action info, please check document",
	40125: "invalid appsecret",
	40164: "invalid ip, not in whitelist",
	41001: "access_token missing",
	42001: "access_token expired",
	43002: "require POST method",
	40003: "invalid openid",
	40032: "invalid openid list size",
	45009: "reach max api daily quota limit",
	45011: "api minute-quota reach limit  mustslower  retry next minute",
	45029: "qrcode count out of limit",
	45056: "too many tags now, no need to add new",
	45059: "user tag count exceed limit",
	45157: "invalid tag name",
	45158: "tag name too long",
	45159: "invalid tag id",
	47001: "data format error",
	48001: "api unauthorized",
	49003: "not match openid with appid",
	76003: "invalid cgi_path",
	76021: "cgi_path not found, please check",
	76022: "could not use this cgi_path, no permission",
}

// fail answers an errcode the way WeChat does: HTTP 200, errmsg with a request id.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, errcode int) {
	msg, ok := errmsgs[errcode]
	if !ok {
		msg = "error"
	}
	if errcode == 40164 {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		msg = fmt.Sprintf("invalid ip %s ipv6 ::ffff:%s, not in whitelist", host, host)
	}
	s.mu.Lock()
	rid := fmt.Sprintf("%08x-%08x-%08x", s.rng.Uint32(), s.rng.Uint32(), s.rng.Uint32())
	s.mu.Unlock()
	s.answer(w, r, errcode, map[string]any{"errcode": errcode, "errmsg": msg + " rid: " + rid})
}

// answer writes a JSON answer and counts it under its errcode.
func (s *Server) answer(w http.ResponseWriter, r *http.Request, errcode int, body any) {
	s.mu.Lock()
	s.errcodes[callKey{r.URL.Path, errcode}]++
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json; encoding=utf-8")
	_ = json.NewEncoder(w).Encode(body)
}

// beijing is the zone of WeChat's quota days.
var beijing = time.FixedZone("CST", 8*60*60)

// window counts events in the current period (a day, a minute) and forgets older ones.
type window struct {
	period string
	n      int
}

// take counts one event in period unless limit are already counted there.
func (c *window) take(period string, limit int) bool {
	if c.period != period {
		c.period, c.n = period, 0
	}
	if c.n >= limit {
		return false
	}
	c.n++
	return true
}

func (s *Server) day() string { return s.clock.Now().In(beijing).Format(time.DateOnly) }

func (s *Server) minute() string { return s.clock.Now().In(beijing).Format("2006-01-02T15:04") }
