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
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Class tells a caller what to do about a failed call, independently of the errcode.
type Class int

const (
	// ClassRetryable: WeChat was busy or unreachable; retry with backoff.
	ClassRetryable Class = iota
	// ClassToken: the access token was rejected. The client already dropped it and retried once,
	// so a caller that still sees this should retry later with backoff.
	ClassToken
	// ClassQuota: the account's daily quota is spent; back off for hours and tell a human.
	ClassQuota
	// ClassTerminal: retrying will not help until a human fixes the account, the spec or the code.
	ClassTerminal
)

func (c Class) String() string {
	switch c {
	case ClassRetryable:
		return "Retryable"
	case ClassToken:
		return "Token"
	case ClassQuota:
		return "Quota"
	case ClassTerminal:
		return "Terminal"
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Error is an `{"errcode":N,"errmsg":"..."}` answer from WeChat.
type Error struct {
	Code    int
	Message string
	Class   Class
}

// Error includes the advice so that a status condition or an Event built from it tells the reader
// what to do. The message is WeChat's errmsg, scrubbed of credentials by the client.
func (e *Error) Error() string {
	return fmt.Sprintf(errorPrefix+"%d (%s): %s", e.Code, e.Message, e.Advice())
}

// errorPrefix begins the text of an *Error.
const errorPrefix = "wechat errcode "

// ErrorIn is the *Error whose text s holds (s as Error() wrote it, or with a prefix such as
// "batchtagging: "), without its errmsg: what a status that keeps only an error's text says to a
// reader that must classify it again. False when s holds no errcode.
func ErrorIn(s string) (*Error, bool) {
	_, rest, ok := strings.Cut(s, errorPrefix)
	if !ok {
		return nil, false
	}
	num, _, ok := strings.Cut(rest, " (")
	code, err := strconv.Atoi(num)
	if !ok || err != nil {
		return nil, false
	}
	return newError(code, ""), true
}

type errcodeInfo struct {
	class  Class
	advice string
}

// errcodes holds the codes of docs/wechat-platform.md §3, the token endpoints' among them, so
// that a wrong secret is reported as such.
var errcodes = map[int]errcodeInfo{
	-1:    {ClassRetryable, "WeChat is busy; retrying with backoff"},
	40001: {ClassToken, "the access token is invalid or not the latest (another system may have refreshed it); a fresh token was fetched and the call retried once; if this persists, make sure this operator is the only owner of the AppID's token or configure the external token service"},
	40014: {ClassToken, "the access token is malformed; a fresh token was fetched and the call retried once; if this persists, check the external token service"},
	42001: {ClassToken, "the access token expired; a fresh token was fetched and the call retried once"},
	40002: {ClassTerminal, "invalid grant_type: a bug in the token request"},
	40013: {ClassTerminal, "the AppID is invalid: check appID in the account Secret"},
	40125: {ClassTerminal, "the AppSecret is invalid: check appSecret in the account Secret (it may have been reset in the WeChat admin console)"},
	40052: {ClassTerminal, "invalid action_name: a bug in the operator or an unsupported code type"},
	40053: {ClassTerminal, "invalid action_info (scene id or string out of range): fix the scene in the spec"},
	40164: {ClassTerminal, "the caller's IP is not in the account's IP allowlist: add the cluster's egress IP in the WeChat admin console (Settings > Basic configuration)"},
	45009: {ClassQuota, "the account's daily quota of this API is reached (qrcode/create: 100,000 a day); wait until it resets at midnight Beijing time or reset it in the admin console"},
	45011: {ClassRetryable, "the per-minute API limit is reached; retrying later"},
	45029: {ClassTerminal, "the account reached WeChat's cap of 100,000 permanent QR codes; use a temporary code or an existing permanent scene"},
	48001: {ClassTerminal, "the account is not authorized for this API: qrcode/create, openapi/quota/get and the user-tag APIs need a verified service account"},
	// The user-tag APIs (tags/create, tags/get, tags/members/batchtagging, tags/getidlist).
	40003: {ClassTerminal, "invalid OpenID: not a user of this account (never followed it); the follower is skipped, not retried"},
	40032: {ClassTerminal, "invalid OpenID list size (1 to 50 per batchtagging call): a bug in the operator"},
	45056: {ClassTerminal, "the account has WeChat's maximum of 100 tags: delete tags the account no longer needs in the WeChat admin console (Users > Tags), or use fewer tag names in spec.tags"},
	45059: {ClassTerminal, "a follower already carries WeChat's maximum of 20 tags; the follower is skipped, not retried"},
	45157: {ClassTerminal, "the tag name is invalid or already taken: the account's tags are read again"},
	45158: {ClassTerminal, "the tag name is over 30 bytes of UTF-8 (10 CJK characters): shorten it in spec.tags"},
	45159: {ClassTerminal, "invalid tag id: the tag was deleted at WeChat meanwhile; the account's tags are read again and the tag created again"},
	49003: {ClassTerminal, "the OpenID belongs to another AppID: the follower is skipped, not retried"},
	76021: {ClassTerminal, "openapi/quota/get: the cgi_path is not an API WeChat knows: a bug in the operator"},
	76022: {ClassTerminal, "openapi/quota/get: the quota of this cgi_path cannot be read: a bug in the operator"},
}

const unknownAdvice = "unknown errcode: look it up in WeChat's global error code list"

// Advice says what a human should do about this errcode.
func (e *Error) Advice() string {
	if info, ok := errcodes[e.Code]; ok {
		return info.advice
	}
	return unknownAdvice
}

// newError classifies an errcode; unknown codes are terminal so that a surprise surfaces to a
// human instead of being retried forever.
func newError(code int, msg string) *Error {
	class := ClassTerminal
	if info, ok := errcodes[code]; ok {
		class = info.class
	}
	return &Error{Code: code, Message: msg, Class: class}
}

// HTTPError is a non-200 answer. WeChat reports its own errors with HTTP 200, so this comes from
// the network path (a proxy, a load balancer) or from an external token service.
type HTTPError struct {
	Endpoint   string
	StatusCode int
}

func (e *HTTPError) Error() string {
	if e.Endpoint == endpointExternalToken {
		// Wrapped in a TokenServiceError, which names the service: it is not WeChat's answer.
		return fmt.Sprintf("unexpected HTTP status %d", e.StatusCode)
	}
	return fmt.Sprintf("wechat %s: unexpected HTTP status %d", e.Endpoint, e.StatusCode)
}

// TokenServiceError is a failure of the central token service of TokenModeExternal, so that a
// dead token service is not reported as WeChat's outage: WeChat may be fine, and the fix is
// elsewhere. An errcode the service relays from WeChat stays visible through Unwrap.
type TokenServiceError struct {
	// URL is the service's, without its query.
	URL string
	Err error
}

func (e *TokenServiceError) Error() string {
	return fmt.Sprintf("token service %s (tokenSource.url): %v", e.URL, e.Err)
}

func (e *TokenServiceError) Unwrap() error { return e.Err }

// FromTokenService reports whether err is a failure of an External token service.
func FromTokenService(err error) bool {
	var te *TokenServiceError
	return errors.As(err, &te)
}

// ErrInvalidRequest marks a request the client refuses to send because WeChat would reject it.
var ErrInvalidRequest = errors.New("invalid QR code request")

// classed carries a class for errors that are not WeChat's, such as a rate-limiter wait that
// cannot finish before the caller's deadline.
type classed struct {
	class Class
	err   error
}

func (e *classed) Error() string { return e.err.Error() }
func (e *classed) Unwrap() error { return e.err }

// ClassOf classifies any error returned by this package. Timeouts, network errors, cancelled
// contexts and HTTP 5xx are retryable: none of them says anything about the code itself.
func ClassOf(err error) Class {
	var we *Error
	if errors.As(err, &we) {
		return we.Class
	}
	var ce *classed
	if errors.As(err, &ce) {
		return ce.class
	}
	var he *HTTPError
	if errors.As(err, &he) {
		if he.StatusCode >= 500 || he.StatusCode == 429 {
			return ClassRetryable
		}
		return ClassTerminal
	}
	var ne net.Error
	if errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return ClassRetryable
	}
	return ClassTerminal
}

// ErrCode returns the errcode of a wrapped *Error, or 0.
func ErrCode(err error) int {
	var we *Error
	if errors.As(err, &we) {
		return we.Code
	}
	return 0
}
