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

package forward

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestRequestHeader: what the application gets of WeChat's request headers. The forwarded push
// end to end (the application's SDK verifying it, its answer relayed) is tested through the
// server in package callback.
func TestRequestHeader(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   map[string]string
		want map[string]string // "" for absent
	}{
		{"a plain push", map[string]string{"Content-Type": "text/xml"},
			map[string]string{"Content-Type": "text/xml", "X-Forwarded-For": "203.0.113.7", "X-Forwarded-Host": "example.com", "X-Forwarded-Proto": "http"}},
		{"hop-by-hop headers stop here", map[string]string{"Connection": "X-Hop", "X-Hop": "1", "Proxy-Authorization": "Basic eA==", "Te": "trailers"},
			map[string]string{"Connection": "", "X-Hop": "", "Proxy-Authorization": "", "Te": ""}},
		{"the operator's headers cannot be forged", map[string]string{HeaderCodeName: "forged", HeaderScan: "duplicate"},
			map[string]string{HeaderCodeName: "", HeaderScan: ""}},
		{"behind a reverse proxy", map[string]string{"X-Forwarded-For": "198.51.100.1", "X-Forwarded-Proto": "https"},
			map[string]string{"X-Forwarded-For": "198.51.100.1, 203.0.113.7", "X-Forwarded-Proto": "https"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://example.com/wechat/wx1", strings.NewReader(""))
			r.RemoteAddr = "203.0.113.7:4711"
			for k, v := range tc.in {
				r.Header.Set(k, v)
			}
			h := requestHeader(r)
			for k, v := range tc.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if ua, ok := h["User-Agent"]; !ok || len(ua) != 1 || ua[0] != "" {
				t.Errorf("User-Agent %q: WeChat sends none, and Go's client must not add its own", ua)
			}
		})
	}
}
