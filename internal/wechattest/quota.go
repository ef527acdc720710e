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
	"io"
	"net/http"
	"strings"
)

// EndpointQuotaGet is cgi-bin/openapi/quota/get: WeChat's own count of today's calls of an API.
const EndpointQuotaGet = "/cgi-bin/openapi/quota/get"

// quotaOfLocked returns the daily limit and today's count of the API at path for a, or false when the
// fake does not serve that API.
func (s *Server) quotaOfLocked(a *account, path string) (limit int, used window, ok bool) {
	switch path {
	case EndpointCreate:
		return s.createQuota, a.createDay, true
	case EndpointToken:
		return TokenDailyLimit, a.classicDay, true
	case EndpointStableToken:
		return StableDailyLimit, a.stableDay, true
	}
	return 0, window{}, false
}

// serveQuotaGet is /cgi-bin/openapi/quota/get: token, then cgi_path. The counts are the ones the
// fake enforces, so used is every authenticated qrcode/create call of the account today, rejected
// ones included, as WeChat counts them. Errors as documented: 76003 for a cgi_path with the host
// or without the leading '/', 76022 for an sns path (not an API of the account's token), 76021
// for a path WeChat does not know (here: one the fake does not serve).
func (s *Server) serveQuotaGet(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.fail(w, r, 43002)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	var in struct {
		CGIPath *string `json:"cgi_path"`
	}
	s.mu.Lock()
	a, code := s.checkTokenLocked(r.URL.Query().Get("access_token"))
	if code == 0 && (json.Unmarshal(body, &in) != nil || in.CGIPath == nil) {
		code = 47001
	}
	var limit int
	var used window
	if code == 0 {
		path := *in.CGIPath
		switch {
		case !strings.HasPrefix(path, "/"):
			code = 76003
		case strings.Contains(path, "/sns/"):
			code = 76022
		default:
			var known bool
			if limit, used, known = s.quotaOfLocked(a, path); !known {
				code = 76021
			}
		}
	}
	day := s.day()
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, r, code)
		return
	}
	n := 0
	if used.period == day {
		n = used.n
	}
	s.answer(w, r, 0, map[string]any{"errcode": 0, "errmsg": "ok",
		"quota": map[string]int{"daily_limit": limit, "used": n, "remain": max(limit-n, 0)}})
}
