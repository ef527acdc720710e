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

package devstack

import (
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Account is an Official Account's credentials as the account Secret holds them.
type Account struct {
	AppID, AppSecret, Token, EncodingAESKey string
	// Real is true for credentials of a real account, used against WeChat's real API.
	Real bool
}

func accountFromSecret(s *corev1.Secret) Account {
	get := func(k string) string {
		if v, ok := s.StringData[k]; ok {
			return v
		}
		return string(s.Data[k])
	}
	return Account{AppID: get(qrv1alpha1.AccountKeyAppID), AppSecret: get(qrv1alpha1.AccountKeyAppSecret), Token: get(qrv1alpha1.AccountKeyToken), EncodingAESKey: get(qrv1alpha1.AccountKeyEncodingAESKey)}
}

func (a Account) apply(s *corev1.Secret) {
	s.StringData = nil
	s.Data = map[string][]byte{qrv1alpha1.AccountKeyAppID: []byte(a.AppID), qrv1alpha1.AccountKeyAppSecret: []byte(a.AppSecret), qrv1alpha1.AccountKeyToken: []byte(a.Token)}
	// Without a key the account is in plaintext mode, and the callback server accepts only
	// plaintext pushes for it.
	if a.EncodingAESKey != "" {
		s.Data[qrv1alpha1.AccountKeyEncodingAESKey] = []byte(a.EncodingAESKey)
	}
}

// AccountFromEnv returns the real account named by WECHAT_APP_ID and WECHAT_APP_SECRET, with
// WECHAT_TOKEN and WECHAT_ENCODING_AES_KEY for the pushes; ok is false when the first two are
// unset, which means the fake WeChat.
func AccountFromEnv() (a Account, ok bool, err error) {
	a = Account{
		AppID:          os.Getenv("WECHAT_APP_ID"),
		AppSecret:      os.Getenv("WECHAT_APP_SECRET"),
		Token:          os.Getenv("WECHAT_TOKEN"),
		EncodingAESKey: os.Getenv("WECHAT_ENCODING_AES_KEY"),
		Real:           true,
	}
	switch {
	case a.AppID == "" && a.AppSecret == "":
		return Account{}, false, nil
	case a.AppID == "" || a.AppSecret == "":
		return Account{}, false, fmt.Errorf("set both WECHAT_APP_ID and WECHAT_APP_SECRET, or neither for the fake WeChat")
	case a.Token == "":
		// The callback server refuses an account Secret without a token.
		return Account{}, false, fmt.Errorf("WECHAT_TOKEN is required with a real account: it is the Token of the account's server configuration")
	}
	return a, true, nil
}
