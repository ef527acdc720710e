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

	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// The push path's side of the gateway: which pushes go on to the account's application, with
// what the operator adds, and what WeChat gets back (package forward sends them).

// forward starts handing the push to the account's application, nil when it has none.
func (s *Server) forward(r *http.Request, keys *pushKeys, body []byte, extra http.Header) <-chan *forward.Answer {
	if !keys.forwards() {
		return nil
	}
	timeout := keys.account.ForwardTimeout
	if timeout <= 0 {
		timeout = forward.DefaultTimeout
	}
	return s.forwarder.Start(r, keys.appID, keys.account.ForwardURL, timeout, body, extra)
}

// scanHeaders tell the application which code a scan is of and whether it is new; nothing for a
// scan of no known code.
func (s *Server) scanHeaders(code *qrv1alpha1.WeChatQRCode, sc *scan) http.Header {
	if code == nil {
		return nil
	}
	state := "new"
	if s.counter.Known(client.ObjectKeyFromObject(code).String(), sc.key) {
		state = "duplicate"
	}
	return http.Header{
		forward.HeaderCodeNamespace: {code.Namespace},
		forward.HeaderCodeName:      {code.Name},
		forward.HeaderScan:          {state},
		forward.HeaderEventID:       {sc.key},
	}
}

// relay answers WeChat with the application's answer, or "success" when there is none.
func (s *Server) relay(w http.ResponseWriter, keys *pushKeys, m *pushwire.Message, c *wxcrypto.Cipher, app <-chan *forward.Answer) {
	if app != nil {
		if a := <-app; a != nil {
			a.Write(w)
			return
		}
	}
	s.answer(w, keys, m, c, nil)
}
