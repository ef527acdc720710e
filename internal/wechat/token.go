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

package wechat

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/utils/clock"
)

const (
	// refreshAhead: stable_token guarantees at least 300 s on any token it returns, so a token
	// is refreshed when less than that remains. A token handed out with less than twice that
	// (an external service near its own refresh) is refreshed at half its lifetime instead,
	// otherwise every call would refetch it.
	refreshAhead = 5 * time.Minute
	// forceRefreshInterval is WeChat's minimum spacing of stable_token force_refresh calls,
	// which are also limited to 20 a day: the client never forces more often than this.
	forceRefreshInterval = 30 * time.Second
)

// fetchFunc gets a token and its lifetime. force asks for a new stable token.
type fetchFunc func(ctx context.Context, force bool) (value string, lifetime time.Duration, err error)

type token struct {
	value                string
	refreshAt, expiresAt time.Time
}

type fetchCall struct {
	done chan struct{}
	tok  token
	err  error
}

// tokenCache owns one account's access token: one fetch in flight at a time, shared by every
// caller; drops a token only if it is still the one that failed.
type tokenCache struct {
	fetch    fetchFunc
	canForce bool
	clock    clock.PassiveClock
	timeout  time.Duration
	log      logr.Logger

	mu        sync.Mutex
	cur       *token
	inflight  *fetchCall
	rejected  string // the last token dropped by invalidate, until a fetch replaces it
	lastForce time.Time
}

func newTokenCache(fetch fetchFunc, canForce bool, clk clock.PassiveClock, timeout time.Duration, log logr.Logger) *tokenCache {
	return &tokenCache{fetch: fetch, canForce: canForce, clock: clk, timeout: timeout, log: log}
}

// get returns a usable token, fetching one if none is cached or the cached one is due for refresh.
func (tc *tokenCache) get(ctx context.Context) (string, error) {
	tc.mu.Lock()
	if tc.cur != nil && tc.clock.Now().Before(tc.cur.refreshAt) {
		v := tc.cur.value
		tc.mu.Unlock()
		return v, nil
	}
	call := tc.inflight
	if call == nil {
		call = &fetchCall{done: make(chan struct{})}
		tc.inflight = call
		// Detached from the caller: other callers wait for the same fetch, and one caller giving
		// up must not fail them all. The values (logger, trace) are kept.
		go tc.run(context.WithoutCancel(ctx), call, tc.rejected)
	}
	tc.mu.Unlock()
	select {
	case <-call.done:
		return call.tok.value, call.err
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// mayForceLocked reserves the right to force_refresh now, at most once per forceRefreshInterval.
func (tc *tokenCache) mayForceLocked() bool {
	now := tc.clock.Now()
	if !tc.canForce || (!tc.lastForce.IsZero() && now.Sub(tc.lastForce) < forceRefreshInterval) {
		return false
	}
	tc.lastForce = now
	return true
}

// run fetches a token without force_refresh. Only when stable_token hands back the very token
// WeChat just rejected is the token WeChat gives every caller itself bad, and only then does a
// forced refresh (which revokes the token of every other user of the AppID) help. A token that
// worked and was later revoked by someone else is simply fetched again: forcing then would knock
// out the other users in turn.
func (tc *tokenCache) run(ctx context.Context, call *fetchCall, rejected string) {
	ctx, cancel := context.WithTimeout(ctx, tc.timeout)
	defer cancel()
	tok, err := tc.fetchOnce(ctx, false)
	if err == nil && rejected != "" && tok.value == rejected {
		tc.mu.Lock()
		force := tc.mayForceLocked()
		tc.mu.Unlock()
		if force {
			tok, err = tc.fetchOnce(ctx, true)
		}
	}
	tc.mu.Lock()
	switch {
	case err == nil:
		tc.cur = &tok
		tc.rejected = ""
	case tc.cur != nil && tc.clock.Now().Before(tc.cur.expiresAt):
		// An early refresh failed but the current token still works: keep using it.
		tc.log.Info("access token refresh failed, keeping the current token until it expires", "error", err.Error(), "expiresAt", tc.cur.expiresAt)
		tok, err = *tc.cur, nil
	}
	call.tok, call.err = tok, err
	tc.inflight = nil
	tc.mu.Unlock()
	close(call.done)
}

func (tc *tokenCache) fetchOnce(ctx context.Context, force bool) (token, error) {
	start := tc.clock.Now()
	value, lifetime, err := tc.fetch(ctx, force)
	if err == nil && (value == "" || lifetime <= 0) {
		err = fmt.Errorf("token answer without access_token or expires_in")
	}
	if err != nil {
		return token{}, err
	}
	tc.log.V(1).Info("fetched access token", "force", force, "expiresIn", lifetime)
	return token{
		value:     value,
		refreshAt: start.Add(lifetime - min(refreshAhead, lifetime/2)),
		expiresAt: start.Add(lifetime),
	}, nil
}

// invalidate drops value if it is still the cached token: a token fetched after value was handed
// out must survive value's failure.
func (tc *tokenCache) invalidate(value string, errcode int) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	if tc.cur == nil || tc.cur.value != value {
		return
	}
	tc.log.Info("access token rejected, dropping it", "errcode", errcode)
	tc.rejected = value
	tc.cur = nil
}

type tokenAnswer struct {
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

func (a tokenAnswer) result(err error) (string, time.Duration, error) {
	return a.AccessToken, time.Duration(a.ExpiresIn) * time.Second, err
}

type stableTokenRequest struct {
	GrantType    string `json:"grant_type"`
	AppID        string `json:"appid"`
	Secret       string `json:"secret"`
	ForceRefresh bool   `json:"force_refresh"`
}

// tokenFetcher returns the fetch function of the account's token source, counted in the token metrics.
func (c *Client) tokenFetcher(creds Credentials) (fetchFunc, bool, error) {
	var fetch fetchFunc
	mode := creds.Tokens.mode()
	switch mode {
	case TokenModeStable:
		fetch = func(ctx context.Context, force bool) (string, time.Duration, error) {
			var a tokenAnswer
			in := stableTokenRequest{GrantType: "client_credential", AppID: creds.AppID, Secret: creds.AppSecret, ForceRefresh: force}
			err := c.call(ctx, endpointStableToken, http.MethodPost, c.opts.APIBaseURL+"/cgi-bin/stable_token", in, &a, creds.AppSecret)
			return a.result(err)
		}
	case TokenModeClassic:
		fetch = func(ctx context.Context, _ bool) (string, time.Duration, error) {
			var a tokenAnswer
			q := url.Values{"grant_type": {"client_credential"}, "appid": {creds.AppID}, "secret": {creds.AppSecret}}
			err := c.call(ctx, endpointToken, http.MethodGet, c.opts.APIBaseURL+"/cgi-bin/token?"+q.Encode(), nil, &a, creds.AppSecret)
			return a.result(err)
		}
	case TokenModeExternal:
		if creds.Tokens.ExternalURL == "" {
			return nil, false, fmt.Errorf("%w: token mode external needs a token service URL", ErrInvalidRequest)
		}
		fetch = func(ctx context.Context, _ bool) (string, time.Duration, error) {
			var a tokenAnswer
			u, err := url.Parse(creds.Tokens.ExternalURL)
			if err != nil {
				return "", 0, fmt.Errorf("%w: token service URL: %w", ErrInvalidRequest, err)
			}
			service := *u
			service.RawQuery = ""
			q := u.Query()
			q.Set("appid", creds.AppID)
			u.RawQuery = q.Encode()
			if err = c.call(ctx, endpointExternalToken, http.MethodGet, u.String(), nil, &a); err != nil {
				err = &TokenServiceError{URL: service.String(), Err: err}
			}
			return a.result(err)
		}
	default:
		return nil, false, fmt.Errorf("%w: unknown token mode %q", ErrInvalidRequest, mode)
	}
	counted := func(ctx context.Context, force bool) (string, time.Duration, error) {
		value, lifetime, err := fetch(ctx, force)
		observeTokenFetch(string(mode), force, err)
		return value, lifetime, err
	}
	return counted, mode == TokenModeStable, nil
}
