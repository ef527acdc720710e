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
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
)

// Account is the stack's Official Account: the sample Secret's, or a real one.
type Account struct {
	credentials.Account
	// Real is true for credentials of a real account, used against WeChat's real API.
	Real bool
}

// apply makes s hold a. Without an encodingAESKey the account is in plaintext mode, and the
// callback server accepts only plaintext pushes for it.
func (a Account) apply(s *corev1.Secret) {
	s.StringData, s.Data = nil, a.Data()
}

// AccountFromEnv returns the real account named by WECHAT_APP_ID and WECHAT_APP_SECRET, with
// WECHAT_TOKEN and WECHAT_ENCODING_AES_KEY for the pushes; ok is false when the first two are
// unset, which means the fake WeChat. The values go through the parser of the Secret they end up
// in, so they are trimmed and checked as the operator will.
func AccountFromEnv() (a Account, ok bool, err error) {
	c, err := credentials.FromSecret(&corev1.Secret{StringData: map[string]string{
		qrv1alpha1.AccountKeyAppID:          os.Getenv("WECHAT_APP_ID"),
		qrv1alpha1.AccountKeyAppSecret:      os.Getenv("WECHAT_APP_SECRET"),
		qrv1alpha1.AccountKeyToken:          os.Getenv("WECHAT_TOKEN"),
		qrv1alpha1.AccountKeyEncodingAESKey: os.Getenv("WECHAT_ENCODING_AES_KEY"),
	}})
	switch {
	case err != nil:
		return Account{}, false, fmt.Errorf("WECHAT_* variables: %w", err)
	case c.AppID == "" && c.AppSecret == "":
		return Account{}, false, nil
	case c.AppID == "" || c.AppSecret == "":
		return Account{}, false, fmt.Errorf("set both WECHAT_APP_ID and WECHAT_APP_SECRET, or neither for the fake WeChat")
	case c.Token == "":
		// The callback server refuses an account Secret without a token.
		return Account{}, false, fmt.Errorf("WECHAT_TOKEN is required with a real account: it is the Token of the account's server configuration")
	}
	return Account{Account: c, Real: true}, true, nil
}
