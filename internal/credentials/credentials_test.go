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

package credentials

import (
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

const (
	key1 = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
	key2 = "ZYXWVUTSRQPONMLKJIHGFEDCBA9876543210zyxwvut"
)

func secret(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

func TestFromSecret(t *testing.T) {
	for _, tc := range []struct {
		name    string
		data    map[string]string
		want    Account
		wantErr string
	}{{
		name: "values made with --from-file keep their newline; it is trimmed",
		data: map[string]string{"appID": "wx0123456789abcdef\n", "appSecret": "s3cr3t\n", "token": " tok\r\n", "encodingAESKey": key1 + "\n"},
		want: Account{AppID: "wx0123456789abcdef", AppSecret: "s3cr3t", Token: "tok", EncodingAESKey: key1},
	}, {
		name: "previous key",
		data: map[string]string{"appID": "wx1", "encodingAESKey": key1, "previousEncodingAESKey": key2},
		want: Account{AppID: "wx1", EncodingAESKey: key1, PreviousEncodingAESKey: key2},
	}, {
		name:    "an AppID with a path separator",
		data:    map[string]string{"appID": "wx/../x", "appSecret": "s"},
		wantErr: "key appID is not an AppID (letters, digits, '_' and '-', at most 64)",
	}, {
		name:    "a previous key alone",
		data:    map[string]string{"appID": "wx1", "previousEncodingAESKey": key2},
		wantErr: "key previousEncodingAESKey is set without encodingAESKey",
	}, {
		name:    "a key of the wrong length",
		data:    map[string]string{"appID": "wx1", "encodingAESKey": key1[:42]},
		wantErr: "key encodingAESKey: wxcrypto: EncodingAESKey must be 43 base64 characters",
	}, {
		name: "missing keys are not the parser's business",
		data: map[string]string{},
		want: Account{},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := FromSecret(secret(tc.data))
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				for _, v := range tc.data {
					if len(v) > 3 && strings.Contains(err.Error(), v) {
						t.Errorf("error %q prints a value", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %s, want %s", got.Data(), tc.want.Data())
			}
		})
	}
}

func TestStringDataWins(t *testing.T) {
	s := secret(map[string]string{"appID": "wxold"})
	s.StringData = map[string]string{"appID": "wxnew\n"}
	got, err := FromSecret(s)
	if err != nil || got.AppID != "wxnew" {
		t.Fatalf("got %q, %v", got.AppID, err)
	}
}

func TestRequireNamesEveryMissingKey(t *testing.T) {
	a := Account{AppID: "wx1", Token: "t"}
	err := a.Require(v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyAppSecret, v1alpha1.AccountKeyToken, v1alpha1.AccountKeyEncodingAESKey)
	if err == nil || err.Error() != "no value for appSecret and encodingAESKey" {
		t.Fatalf("error = %v", err)
	}
	if err := a.Require(v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyToken); err != nil {
		t.Fatal(err)
	}
}

func TestNeverPrintsAValue(t *testing.T) {
	a := Account{AppID: "wx1", AppSecret: "the-app-secret", Token: "the-push-token", EncodingAESKey: key1, PreviousEncodingAESKey: key2}
	for _, format := range []string{"%v", "%+v", "%s", "%#v"} {
		out := fmt.Sprintf(format, a)
		for _, secret := range []string{a.AppSecret, a.Token, a.EncodingAESKey, a.PreviousEncodingAESKey} {
			if strings.Contains(out, secret) {
				t.Errorf("%s prints a secret value: %s", format, out)
			}
		}
		if !strings.Contains(out, "wx1") {
			t.Errorf("%s does not name the AppID: %s", format, out)
		}
	}
}

func TestDataRoundTrips(t *testing.T) {
	a := Account{AppID: "wx1", AppSecret: "s", Token: "t", EncodingAESKey: key1}
	got, err := FromSecret(&corev1.Secret{Data: a.Data()})
	if err != nil || got != a {
		t.Fatalf("got %v, %v", got, err)
	}
	if _, ok := a.Data()[v1alpha1.AccountKeyPreviousEncodingAESKey]; ok {
		t.Error("an empty value became a key")
	}
}

func TestCiphersInPushOrder(t *testing.T) {
	a := Account{AppID: "wx1", EncodingAESKey: key1, PreviousEncodingAESKey: key2}
	cs, err := a.Ciphers()
	if err != nil || len(cs) != 2 {
		t.Fatalf("ciphers: %d, %v", len(cs), err)
	}
	sealed, err := cs[1].Encrypt([]byte("<xml/>"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs[0].Decrypt(sealed); err == nil {
		t.Error("the current key opened a message sealed with the previous one")
	}
	if plain, err := cs[1].Decrypt(sealed); err != nil || string(plain) != "<xml/>" {
		t.Errorf("previous key: %q, %v", plain, err)
	}
}
