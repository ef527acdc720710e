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
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
)

func setAccountEnv(t *testing.T, appID, appSecret, token, key string) {
	t.Setenv("WECHAT_APP_ID", appID)
	t.Setenv("WECHAT_APP_SECRET", appSecret)
	t.Setenv("WECHAT_TOKEN", token)
	t.Setenv("WECHAT_ENCODING_AES_KEY", key)
}

// TestAccountFromEnv: the variables are read as the operator reads the Secret they are written
// to (trimmed, checked), and the Secret the stack writes parses back to the same account.
func TestAccountFromEnv(t *testing.T) {
	const key = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	setAccountEnv(t, " wx0123456789abcdef\n", "s3cret\n", "tok", key)
	a, ok, err := AccountFromEnv()
	if err != nil || !ok || !a.Real {
		t.Fatalf("AccountFromEnv() = %v, %v, %v; want a real account", a, ok, err)
	}
	want := credentials.Account{AppID: "wx0123456789abcdef", AppSecret: "s3cret", Token: "tok", EncodingAESKey: key}
	if a.Account != want {
		t.Errorf("AccountFromEnv() = %#v, want %#v", a.Account, want)
	}
	s := &corev1.Secret{StringData: map[string]string{"stale": "x"}}
	a.apply(s)
	if back, err := credentials.FromSecret(s); err != nil || back != want || s.StringData != nil {
		t.Errorf("the applied Secret parses to %#v, %v (stringData %v), want %#v", back, err, s.StringData, want)
	}
}

func TestAccountFromEnvRefuses(t *testing.T) {
	for _, c := range []struct {
		name, appID, appSecret, token, key, want string
	}{
		{"AppID without AppSecret", "wx0123456789abcdef", "", "tok", "", "set both"},
		{"no token", "wx0123456789abcdef", "s", "", "", "WECHAT_TOKEN is required"},
		{"AppID with a separator", "wx/../x", "s", "tok", "", "not an AppID"},
		{"short EncodingAESKey", "wx0123456789abcdef", "s", "tok", "short", "encodingAESKey"},
	} {
		t.Run(c.name, func(t *testing.T) {
			setAccountEnv(t, c.appID, c.appSecret, c.token, c.key)
			if _, ok, err := AccountFromEnv(); err == nil || ok || !strings.Contains(err.Error(), c.want) {
				t.Errorf("AccountFromEnv() = %v, %v; want an error with %q", ok, err, c.want)
			}
		})
	}
	setAccountEnv(t, "", "", "", "")
	if _, ok, err := AccountFromEnv(); ok || err != nil {
		t.Errorf("without variables: %v, %v; want the fake WeChat (not ok, no error)", ok, err)
	}
}
