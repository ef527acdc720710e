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

package pushwire

import (
	"net/url"
	"strings"
	"testing"
)

// checkQuery holds ParseQuery to url.ParseQuery and Values.Get.
func checkQuery(t *testing.T, raw string) {
	t.Helper()
	v, _ := url.ParseQuery(raw)
	want := Query{Timestamp: v.Get("timestamp"), Nonce: v.Get("nonce"), Signature: v.Get("signature"),
		EncryptType: v.Get("encrypt_type"), MsgSignature: v.Get("msg_signature"), EchoStr: v.Get("echostr")}
	if got := ParseQuery(raw); got != want {
		t.Fatalf("%q:\n got %+v\nwant %+v", raw, got, want)
	}
}

func TestParseQueryMatchesNetURL(t *testing.T) {
	wechat := "signature=3d4b&timestamp=1764400000&nonce=12345&openid=o-user&encrypt_type=aes&msg_signature=9f2c"
	for _, raw := range []string{
		wechat,
		"echostr=a%20b+c&signature=s&timestamp=1&nonce=n",
		// The first well-formed value counts; a malformed one is skipped as if absent.
		"nonce=%zz&nonce=b&nonce=c",
		"timestamp=1;2&timestamp=3",
		"time%73tamp=4&timestamp=5",
		"nonce&nonce=x",
		"&&=&nonce=&nonce=y",
		"%zz=1&signature=%",
		strings.Repeat("a=1&", maxScannedParams) + wechat,
		strings.Repeat("&", 20000) + wechat,
		"",
	} {
		checkQuery(t, raw)
	}
}

func FuzzQuery(f *testing.F) {
	f.Add("signature=3d4b&timestamp=1764400000&nonce=12345&openid=o-user&encrypt_type=aes&msg_signature=9f2c")
	f.Add("nonce=%zz&nonce=b;c&echostr=a+b%2B&nonce")
	f.Fuzz(checkQuery)
}
