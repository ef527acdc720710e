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
	"net/http"
)

// refusal is a request turned away with a 4xx.
type refusal struct {
	status int
	reason string
	err    error // safe to log: never carries a token, key or signature
}

func newRefusal(status int, reason string, err error) *refusal {
	return &refusal{status: status, reason: reason, err: err}
}

// refuse answers a refused request, counts it by reason and logs it, sampled.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, keys *pushKeys, rf *refusal) {
	refusals.WithLabelValues(rf.reason).Inc()
	if keys != nil {
		// A push to an unknown AppID has no account to show it: the metric alone counts it.
		s.stats.Refused(keys.appID, rf.reason)
	}
	if s.sampler.Allow(rf.reason) {
		kv := []any{"reason", rf.reason, "status", rf.status, "remote", r.RemoteAddr, "method", r.Method}
		// The path is the attacker's text unless it names one of our accounts.
		if keys != nil {
			kv = append(kv, "appID", keys.appID)
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
