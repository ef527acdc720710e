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

package wechattest

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

type account struct {
	appID, secret string

	classic    *issuedToken // the latest /cgi-bin/token token
	classicDay window

	stable                  *issuedToken
	stableDay, stableMinute window
	forceDay                window
	lastForce               time.Time

	createDay window
	// permanent codes by scene ("id:5", "str:abc"): WeChat answers the same ticket again.
	permanent map[string]*Code

	tags *tagState
}

type issuedToken struct {
	appID     string
	value     string
	expiresAt time.Time
	invalidAt time.Time // zero: valid until expiresAt
}

const tokenAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"

// tokenLength is in the range of real tokens (136 to 157 characters).
const tokenLength = 136

func (s *Server) issueTokenLocked(a *account) *issuedToken {
	var b strings.Builder
	for range tokenLength {
		b.WriteByte(tokenAlphabet[s.rng.IntN(len(tokenAlphabet))])
	}
	t := &issuedToken{appID: a.appID, value: b.String(), expiresAt: s.clock.Now().Add(TokenLifetime)}
	s.tokens[t.value] = t
	return t
}

// expireLocked makes t invalid from at on, unless it already is earlier.
func (t *issuedToken) expireLocked(at time.Time) {
	if t != nil && (t.invalidAt.IsZero() || at.Before(t.invalidAt)) {
		t.invalidAt = at
	}
}

// InvalidateTokens simulates another system taking the AppID's tokens: a stable_token
// force_refresh and a /cgi-bin/token call elsewhere, without the overlap. Every token issued so
// far for appID answers 40001 from now on.
func (s *Server) InvalidateTokens(appID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	for _, t := range s.tokens {
		if t.appID == appID {
			t.expireLocked(now)
		}
	}
	if a := s.accounts[appID]; a != nil {
		a.classic, a.stable = nil, nil
	}
}

// IssuedTokens lists every token ever issued for appID, so that tests can check that none leaks.
func (s *Server) IssuedTokens(appID string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for v, t := range s.tokens {
		if t.appID == appID {
			out = append(out, v)
		}
	}
	return out
}

// checkTokenLocked returns the account of a usable token, or the errcode WeChat answers.
func (s *Server) checkTokenLocked(value string) (*account, int) {
	if value == "" {
		return nil, 41001
	}
	if len(value) < 32 || strings.Trim(value, tokenAlphabet) != "" {
		return nil, 40014
	}
	t := s.tokens[value]
	now := s.clock.Now()
	switch {
	case t == nil:
		return nil, 40001
	case !now.Before(t.expiresAt):
		return nil, 42001
	case !t.invalidAt.IsZero() && !now.Before(t.invalidAt):
		return nil, 40001
	}
	return s.accounts[t.appID], 0
}

// credentialsLocked checks grant_type, appid and secret as both token endpoints do.
func (s *Server) credentialsLocked(grantType, appID, secret string) (*account, int) {
	if grantType != "client_credential" {
		return nil, 40002
	}
	a := s.accounts[appID]
	switch {
	case a == nil:
		return nil, 40013
	case a.secret != secret:
		return nil, 40125
	}
	return a, 0
}

func (s *Server) answerToken(w http.ResponseWriter, r *http.Request, t *issuedToken) {
	left := t.expiresAt.Sub(s.clock.Now()).Round(time.Second) / time.Second
	s.answer(w, r, 0, map[string]any{"access_token": t.value, "expires_in": int64(left)})
}

// serveToken is /cgi-bin/token: every call issues a new token; the previous one keeps working
// for ClassicOverlap.
func (s *Server) serveToken(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	s.mu.Lock()
	a, code := s.credentialsLocked(q.Get("grant_type"), q.Get("appid"), q.Get("secret"))
	if code == 0 && !a.classicDay.take(s.day(), TokenDailyLimit) {
		code = 45009
	}
	if code != 0 {
		s.mu.Unlock()
		s.fail(w, r, code)
		return
	}
	a.classic.expireLocked(s.clock.Now().Add(ClassicOverlap))
	a.classic = s.issueTokenLocked(a)
	t := a.classic
	s.mu.Unlock()
	s.answerToken(w, r, t)
}

type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// serveStableToken is /cgi-bin/stable_token. Limits: 10,000 calls a minute (45011 beyond) and
// 500,000 a day (45009); force_refresh 20 a day (45009) and 30 s apart (45011: WeChat documents
// the spacing but not its errcode; the minute-quota code is the closest documented meaning).
func (s *Server) serveStableToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.fail(w, r, 43002)
		return
	}
	var in stableTokenRequest
	if err := json.NewDecoder(r.Body).Decode(&in); err != nil {
		s.fail(w, r, 47001)
		return
	}
	s.mu.Lock()
	now := s.clock.Now()
	a, code := s.credentialsLocked(in.GrantType, in.AppID, in.Secret)
	switch {
	case code != 0:
	case !a.stableMinute.take(s.minute(), StableMinuteLimit):
		code = 45011
	case !a.stableDay.take(s.day(), StableDailyLimit):
		code = 45009
	case in.ForceRefresh && !a.lastForce.IsZero() && now.Sub(a.lastForce) < StableForceSpacing:
		code = 45011
	case in.ForceRefresh && !a.forceDay.take(s.day(), StableForceDailyLimit):
		code = 45009
	}
	if code != 0 {
		s.mu.Unlock()
		s.fail(w, r, code)
		return
	}
	if in.ForceRefresh {
		a.lastForce = now
		a.stable.expireLocked(now)
		a.stable = nil
	}
	if a.stable == nil || a.stable.expiresAt.Sub(now) < StableMinRemaining {
		// A token re-issued for lack of time left keeps working until it expires.
		a.stable = s.issueTokenLocked(a)
	}
	t := a.stable
	s.mu.Unlock()
	s.answerToken(w, r, t)
}
