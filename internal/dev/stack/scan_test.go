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

package stack

import (
	"errors"
	"testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// TestDescribePush: the lines make scan prints for each answer (docs/development.md quotes them).
func TestDescribePush(t *testing.T) {
	const what = "default/c scan 1/1: subscribe (a new follower) by o-dev-1"
	for _, tc := range []struct {
		res  wechattest.PushResult
		err  error
		want string
	}{
		{wechattest.PushResult{Reply: "success"}, nil, what + ": acknowledged, no reply"},
		{wechattest.PushResult{Reply: "<xml/>", Encrypted: true, Message: wechattest.Message{MsgType: "text", Content: "欢迎"}}, nil,
			what + `: replied (encrypted) "欢迎"`},
		{wechattest.PushResult{Reply: "<xml/>", Message: wechattest.Message{MsgType: "image", MediaID: "m-1"}}, nil,
			what + ": replied (plaintext) image media_id=m-1"},
		{wechattest.PushResult{Reply: "<xml/>", Encrypted: true, Message: wechattest.Message{MsgType: "news",
			Articles: []wechattest.Article{{Title: "欢迎关注", URL: "https://e.com/w"}}}}, nil,
			what + `: replied (encrypted) link "欢迎关注" → https://e.com/w`},
		{wechattest.PushResult{Body: "oops"}, errors.New("bad"), what + `: bad (answered "oops")`},
	} {
		if got := describePush(what, tc.res, tc.err); got != tc.want {
			t.Errorf("got  %s\nwant %s", got, tc.want)
		}
	}
}
