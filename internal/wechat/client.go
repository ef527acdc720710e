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

// Package wechat is the operator's client of the WeChat Official Account API: parametric QR code
// creation, access-token ownership and the errcode policy. WeChat wants exactly one owner of an
// AppID's access token, so a Client keeps one token source and one rate limiter per AppID and must
// be shared by every reconciler of the process (create one per manager, not per reconcile).
package wechat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"golang.org/x/time/rate"
	"k8s.io/utils/clock"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
)

// Credentials of one Official Account, with the account's own settings: where its tokens come
// from and how fast it may create codes. They travel with every call so that each account
// resource can set them; the client keeps one token cache and one limiter per AppID all the same.
type Credentials struct {
	AppID, AppSecret string
	// Tokens: the zero value is TokenModeStable.
	Tokens TokenSource
	// Rate: zero fields take Options.QPS and Options.Burst.
	Rate RateLimit
}

// TokenSource says where an account's access tokens come from.
type TokenSource struct {
	Mode TokenMode
	// ExternalURL is the central token service of TokenModeExternal. Contract:
	//   GET <ExternalURL>?appid=<AppID>  (with Options.ExternalTokenHeader, e.g. Authorization)
	//   200 {"access_token":"...","expires_in":N}  N: seconds the token stays valid from now
	// or {"errcode":N,"errmsg":"..."} (WeChat's codes, e.g. 40013 for an unknown AppID) or a
	// non-200 status (5xx is retried). The service owns refreshing: the client never asks it to
	// force a refresh; when WeChat rejects a token, the client asks the service again once, so
	// the service must hand out a refreshed token as soon as it has one. Tokens should have at
	// least 300 s left, as stable_token guarantees; the client refreshes when less than
	// min(5 min, half the lifetime it was given) remains. Put the service's own credentials in
	// Options.ExternalTokenHeader, never in the URL: a failed request's error shows the URL.
	ExternalURL string
}

func (t TokenSource) mode() TokenMode {
	if t.Mode == "" {
		return TokenModeStable
	}
	return t.Mode
}

// RateLimit is a token bucket on an account's qrcode/create calls.
type RateLimit struct {
	QPS   float64
	Burst int
}

// ActionName is WeChat's action_name: the kind of QR code.
type ActionName string

const (
	QRScene         ActionName = "QR_SCENE"           // temporary, integer scene
	QRStrScene      ActionName = "QR_STR_SCENE"       // temporary, string scene
	QRLimitScene    ActionName = "QR_LIMIT_SCENE"     // permanent, integer scene
	QRLimitStrScene ActionName = "QR_LIMIT_STR_SCENE" // permanent, string scene
)

// Temporary reports whether WeChat expires codes of this kind.
func (a ActionName) Temporary() bool { return a == QRScene || a == QRStrScene }

func (a ActionName) stringScene() bool { return a == QRStrScene || a == QRLimitStrScene }

// CreateQRCodeRequest is CreateQRCode's request. Ranges are not checked here: the CRD schema rejects bad scenes at
// apply time and WeChat is the authority on the rest (40053).
type CreateQRCodeRequest struct {
	Action        ActionName
	SceneID       int64  // for QR_SCENE / QR_LIMIT_SCENE
	SceneStr      string // for the STR actions
	ExpireSeconds int64  // temporary codes only, and required for them
}

// QRCode is WeChat's answer. URL is what the QR image encodes.
type QRCode struct {
	Ticket, URL string
	// ExpireSeconds is what WeChat answered (it may differ from the request); 0 for permanent codes.
	ExpireSeconds int64
}

// TokenMode selects where access tokens come from.
type TokenMode string

const (
	// TokenModeStable uses POST /cgi-bin/stable_token: every caller of the AppID gets the same
	// token, so other systems using stable_token for the same account do not knock us out.
	TokenModeStable TokenMode = "stable"
	// TokenModeClassic uses GET /cgi-bin/token. Every fetch invalidates the previous token after
	// five minutes, so it is only safe when this operator is the AppID's only token consumer.
	TokenModeClassic TokenMode = "classic"
	// TokenModeExternal takes tokens from a central token service that owns the AppID's token
	// (see TokenSource.ExternalURL).
	TokenModeExternal TokenMode = "external"
)

// Defaults. The qrcode/create quota is 100,000 calls a day, about 1.16 per second sustained.
// 5 QPS with a burst of 20 lets a batch of new resources (a GitOps sync of a few hundred codes)
// go through in about a minute, while a runaway reconcile loop needs more than five hours to burn
// the day's quota: enough time for the errcode metrics to page someone.
const (
	DefaultAPIBaseURL   = "https://api.weixin.qq.com"
	DefaultImageBaseURL = "https://mp.weixin.qq.com"
	DefaultTimeout      = 10 * time.Second
	DefaultQPS          = 5
	DefaultBurst        = 20
	defaultUserAgent    = "wechat-qrcode-operator"
)

// Options configure a Client. The zero value is usable (stable tokens, real WeChat).
type Options struct {
	APIBaseURL   string // default DefaultAPIBaseURL
	ImageBaseURL string // default DefaultImageBaseURL
	// HTTPClient defaults to a client with no overall timeout: Timeout bounds every request.
	HTTPClient *http.Client
	Timeout    time.Duration // per request, token fetches included; default DefaultTimeout
	UserAgent  string

	// ExternalTokenHeader is sent to every central token service (TokenModeExternal).
	ExternalTokenHeader http.Header

	// Per-AppID token bucket on qrcode/create calls of the accounts whose Credentials.Rate leaves
	// them unset; defaults DefaultQPS and DefaultBurst.
	QPS   float64
	Burst int

	// Clock decides token expiry; default real time.
	Clock clock.PassiveClock
	// Logger defaults to controller-runtime's logger named "wechat". Credentials are never logged.
	Logger *logr.Logger
}

// Client calls WeChat for many accounts. Safe for concurrent use.
type Client struct {
	opts Options
	http *http.Client
	log  logr.Logger

	mu       sync.Mutex
	accounts map[string]*account
}

// account is replaced, never mutated, when the secret or the token source changes; the limiter
// survives (its rate follows the account's) because the quota belongs to the AppID.
type account struct {
	secret  string
	source  TokenSource
	tokens  *tokenCache
	limiter *rate.Limiter
}

// beijing is where WeChat's daily quotas reset at midnight. China has no daylight saving time,
// so a fixed zone is exact and needs no tzdata.
var beijing = time.FixedZone("CST", 8*60*60)

// QuotaResetAfter is when WeChat's daily API quotas next reset after now: midnight Beijing time.
func QuotaResetAfter(now time.Time) time.Time {
	y, m, d := now.In(beijing).Date()
	return time.Date(y, m, d+1, 0, 0, 0, 0, beijing)
}

// New returns a Client. Invalid options (an external mode without URL) surface as terminal
// errors of the first call rather than a panic, so that a manager still starts and reports them.
func New(opts Options) *Client {
	if opts.APIBaseURL == "" {
		opts.APIBaseURL = DefaultAPIBaseURL
	}
	if opts.ImageBaseURL == "" {
		opts.ImageBaseURL = DefaultImageBaseURL
	}
	opts.APIBaseURL = strings.TrimSuffix(opts.APIBaseURL, "/")
	opts.ImageBaseURL = strings.TrimSuffix(opts.ImageBaseURL, "/")
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UserAgent == "" {
		opts.UserAgent = defaultUserAgent
	}
	if opts.QPS <= 0 {
		opts.QPS = DefaultQPS
	}
	if opts.Burst <= 0 {
		opts.Burst = DefaultBurst
	}
	if opts.Clock == nil {
		opts.Clock = clock.RealClock{}
	}
	c := &Client{opts: opts, http: opts.HTTPClient, accounts: map[string]*account{}}
	if c.http == nil {
		c.http = &http.Client{}
	}
	if opts.Logger != nil {
		c.log = *opts.Logger
	} else {
		c.log = ctrllog.Log.WithName("wechat")
	}
	return c
}

// ImageURL is where WeChat serves the code's image. The ticket is base64 with '+', '/' and '=',
// so it must be escaped.
func (c *Client) ImageURL(ticket string) string {
	return c.opts.ImageBaseURL + "/cgi-bin/showqrcode?ticket=" + url.QueryEscape(ticket)
}

func (c *Client) account(creds Credentials) (*account, error) {
	if creds.AppID == "" {
		return nil, fmt.Errorf("%w: empty AppID", ErrInvalidRequest)
	}
	if creds.AppSecret == "" && creds.Tokens.mode() != TokenModeExternal {
		return nil, fmt.Errorf("%w: empty AppSecret for AppID %s", ErrInvalidRequest, creds.AppID)
	}
	qps, burst := c.opts.QPS, c.opts.Burst
	if creds.Rate.QPS > 0 {
		qps = creds.Rate.QPS
	}
	if creds.Rate.Burst > 0 {
		burst = creds.Rate.Burst
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.accounts[creds.AppID]
	if a != nil && a.secret == creds.AppSecret && a.source == creds.Tokens {
		if a.limiter.Limit() != rate.Limit(qps) || a.limiter.Burst() != burst {
			a.limiter.SetLimit(rate.Limit(qps))
			a.limiter.SetBurst(burst)
		}
		return a, nil
	}
	fetch, canForce, err := c.tokenFetcher(creds)
	if err != nil {
		return nil, err
	}
	limiter := rate.NewLimiter(rate.Limit(qps), burst)
	if a != nil {
		limiter = a.limiter
		limiter.SetLimit(rate.Limit(qps))
		limiter.SetBurst(burst)
		c.log.Info("AppSecret or token source changed, replacing the account's token cache", "appid", creds.AppID)
	}
	a = &account{
		secret:  creds.AppSecret,
		source:  creds.Tokens,
		tokens:  newTokenCache(fetch, canForce, c.opts.Clock, c.opts.Timeout, c.log.WithValues("appid", creds.AppID)),
		limiter: limiter,
	}
	c.accounts[creds.AppID] = a
	return a, nil
}

// CheckToken makes sure the account can get an access token: it costs a token call only when the
// client holds no usable token for these credentials and token source (the first check, an
// AppSecret or token source changed, a token due for refresh). Its errors are the token
// endpoint's (40164, 40125, 40013, ...), classified like every other.
func (c *Client) CheckToken(ctx context.Context, creds Credentials) error {
	acct, err := c.account(creds)
	if err != nil {
		return err
	}
	if _, err := acct.tokens.get(ctx); err != nil {
		return fmt.Errorf("access token for AppID %s: %w", creds.AppID, err)
	}
	return nil
}

type createScene struct {
	SceneID  *int64 `json:"scene_id,omitempty"`
	SceneStr string `json:"scene_str,omitempty"`
}

type createBody struct {
	ExpireSeconds int64      `json:"expire_seconds,omitempty"`
	ActionName    ActionName `json:"action_name"`
	ActionInfo    struct {
		Scene createScene `json:"scene"`
	} `json:"action_info"`
}

func (r CreateQRCodeRequest) body() (createBody, error) {
	var b createBody
	b.ActionName = r.Action
	switch {
	case r.Action.Temporary() && r.ExpireSeconds <= 0:
		// WeChat's default for an omitted expire_seconds is 30 to 60 seconds: never what anyone wants.
		return b, fmt.Errorf("%w: %s needs ExpireSeconds > 0", ErrInvalidRequest, r.Action)
	case !r.Action.Temporary() && r.ExpireSeconds != 0:
		return b, fmt.Errorf("%w: %s is permanent and takes no ExpireSeconds", ErrInvalidRequest, r.Action)
	}
	b.ExpireSeconds = r.ExpireSeconds
	if r.Action.stringScene() {
		b.ActionInfo.Scene.SceneStr = r.SceneStr
	} else {
		id := r.SceneID
		b.ActionInfo.Scene.SceneID = &id
	}
	return b, nil
}

type createResponse struct {
	Ticket        string `json:"ticket"`
	ExpireSeconds int64  `json:"expire_seconds"`
	URL           string `json:"url"`
}

// CreateQRCode asks WeChat for a ticket, after the account's rate limiter lets it. A token-class
// answer is retried once with a fresh token; every other error is returned for the caller to
// classify with ClassOf.
func (c *Client) CreateQRCode(ctx context.Context, creds Credentials, req CreateQRCodeRequest) (QRCode, error) {
	body, err := req.body()
	if err != nil {
		return QRCode{}, err
	}
	acct, err := c.account(creds)
	if err != nil {
		return QRCode{}, err
	}
	if err := acct.limiter.Wait(ctx); err != nil {
		return QRCode{}, &classed{ClassRetryable, fmt.Errorf("wechat rate limit for AppID %s: %w", creds.AppID, err)}
	}
	var out createResponse
	if err := c.callWithToken(ctx, acct, endpointCreate, "/cgi-bin/qrcode/create", body, &out); err != nil {
		return QRCode{}, fmt.Errorf("qrcode/create for AppID %s: %w", creds.AppID, err)
	}
	if out.Ticket == "" || out.URL == "" {
		return QRCode{}, fmt.Errorf("qrcode/create for AppID %s: answer without ticket or url", creds.AppID)
	}
	return QRCode{Ticket: out.Ticket, URL: out.URL, ExpireSeconds: out.ExpireSeconds}, nil
}

// callWithToken POSTs body to path with the account's access token, or GETs path without a
// body. A token-class answer drops the token (if no newer one replaced it meanwhile) and retries
// once with a fresh one.
func (c *Client) callWithToken(ctx context.Context, acct *account, endpoint, path string, body, out any) error {
	method := http.MethodPost
	if body == nil {
		method = http.MethodGet
	}
	for attempt := 0; ; attempt++ {
		tok, err := acct.tokens.get(ctx)
		if err != nil {
			return fmt.Errorf("access token: %w", err)
		}
		u := c.opts.APIBaseURL + path + "?" + url.Values{"access_token": {tok}}.Encode()
		err = c.call(ctx, endpoint, method, u, body, out, tok)
		if ClassOf(err) == ClassToken {
			acct.tokens.invalidate(tok, ErrCode(err))
			if attempt == 0 {
				continue
			}
		}
		return err
	}
}

// Quota is WeChat's count of one API's calls today (cgi-bin/openapi/quota/get).
type Quota struct {
	DailyLimit int64 `json:"daily_limit"`
	Used       int64 `json:"used"`
	Remain     int64 `json:"remain"`
}

// PathCreateQRCode is qrcode/create's cgi_path, as QRCodeQuota asks for it.
const PathCreateQRCode = "/cgi-bin/qrcode/create"

// QRCodeQuota reads WeChat's own count of today's qrcode/create calls for the account. The read
// is itself an API call, counted against quota/get's own daily quota: call it at a modest pace.
func (c *Client) QRCodeQuota(ctx context.Context, creds Credentials) (Quota, error) {
	acct, err := c.account(creds)
	if err != nil {
		return Quota{}, err
	}
	var out struct {
		Quota Quota `json:"quota"`
	}
	in := map[string]string{"cgi_path": PathCreateQRCode}
	if err := c.callWithToken(ctx, acct, endpointQuota, "/cgi-bin/openapi/quota/get", in, &out); err != nil {
		return Quota{}, fmt.Errorf("openapi/quota/get for AppID %s: %w", creds.AppID, err)
	}
	return out.Quota, nil
}

// apiStatus is the part every WeChat answer may carry.
type apiStatus struct {
	ErrCode int    `json:"errcode"`
	ErrMsg  string `json:"errmsg"`
}

// maxResponse bounds what is read from a misbehaving server.
const maxResponse = 1 << 20

// call performs one request and decodes its answer into out. secrets are the credentials that
// travel with this request: they are scrubbed from anything that ends up in an error.
func (c *Client) call(ctx context.Context, endpoint, method, rawURL string, in, out any, secrets ...string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		return redact(err, secrets)
	}
	req.Header.Set("User-Agent", c.opts.UserAgent)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if endpoint == endpointExternalToken {
		for k, vs := range c.opts.ExternalTokenHeader {
			req.Header[k] = vs
		}
	}
	start := time.Now()
	defer func() { observeCall(endpoint, time.Since(start), err) }()

	resp, err := c.http.Do(req)
	if err != nil {
		return redact(err, secrets)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxResponse))
		return &HTTPError{Endpoint: endpoint, StatusCode: resp.StatusCode}
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return redact(err, secrets)
	}
	var st apiStatus
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("wechat %s: malformed answer: %w", endpoint, err)
	}
	if st.ErrCode != 0 {
		return newError(st.ErrCode, scrub(st.ErrMsg, secrets))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("wechat %s: malformed answer: %w", endpoint, err)
	}
	return nil
}

// credentialParams are the query parameters that carry credentials.
var credentialParams = []string{"access_token", "secret"}

// redact rebuilds transport errors without credentials: net/http's *url.Error prints the whole
// URL, query (and so the access token, or the classic token endpoint's secret) included.
func redact(err error, secrets []string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return &url.Error{Op: ue.Op, URL: redactURL(ue.URL), Err: scrubError(ue.Err, secrets)}
	}
	return scrubError(err, secrets)
}

func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	for _, p := range credentialParams {
		if q.Has(p) {
			q.Set(p, "REDACTED")
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// scrubError keeps err (and what errors.Is/As find in it) unless its message leaks a secret.
func scrubError(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if s := scrub(msg, secrets); s != msg {
		return &classed{ClassOf(err), errors.New(s)}
	}
	return err
}

func scrub(s string, secrets []string) string {
	for _, secret := range secrets {
		if secret != "" {
			s = strings.ReplaceAll(s, secret, "REDACTED")
			s = strings.ReplaceAll(s, url.QueryEscape(secret), "REDACTED")
		}
	}
	return s
}
