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

// Package credentials holds the one parser of an Official Account's Secret. The manager (API
// calls), the callback server (pushes), the dev stack and the benchmarks all read and write that
// Secret through it, so that a value is trimmed, validated and kept out of messages the same way
// everywhere.
package credentials

import (
	"fmt"
	"regexp"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// Account is what an account Secret holds. Its String method redacts every value but the AppID,
// so that printing an Account by mistake (%v in a log line, an error) leaks nothing.
type Account struct {
	// AppID identifies the Official Account; it is public (it appears in URLs).
	AppID string
	// AppSecret authenticates API calls (token requests).
	AppSecret string
	// Token signs pushes.
	Token string
	// EncodingAESKey encrypts pushes in safe and compatible mode; empty in plaintext mode.
	EncodingAESKey string
	// PreviousEncodingAESKey is the key before the last rotation: WeChat may keep using it for a
	// while after the account's key was changed.
	PreviousEncodingAESKey string
}

// appIDPattern: an AppID becomes a URL path segment (/wechat/<AppID>) and a cache index key, so
// it must be free of separators. WeChat's AppIDs are "wx" and 16 hex digits; the pattern admits a
// little more so that test and sandbox accounts fit.
var appIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// FromSecret parses an account Secret. Every value is trimmed: `kubectl create secret
// --from-file` keeps a file's trailing newline, and no credential contains whitespace. Keys are
// checked for form (AppID characters, EncodingAESKey length), not for presence: what is required
// depends on the reader (see Require). Errors name keys, never values.
func FromSecret(s *corev1.Secret) (Account, error) {
	get := func(key string) string {
		if v, ok := s.StringData[key]; ok {
			return strings.TrimSpace(v)
		}
		return strings.TrimSpace(string(s.Data[key]))
	}
	a := Account{
		AppID:                  get(v1alpha1.AccountKeyAppID),
		AppSecret:              get(v1alpha1.AccountKeyAppSecret),
		Token:                  get(v1alpha1.AccountKeyToken),
		EncodingAESKey:         get(v1alpha1.AccountKeyEncodingAESKey),
		PreviousEncodingAESKey: get(v1alpha1.AccountKeyPreviousEncodingAESKey),
	}
	if a.AppID != "" && !appIDPattern.MatchString(a.AppID) {
		return Account{}, fmt.Errorf("key %s is not an AppID (letters, digits, '_' and '-', at most 64)", v1alpha1.AccountKeyAppID)
	}
	if a.EncodingAESKey == "" && a.PreviousEncodingAESKey != "" {
		return Account{}, fmt.Errorf("key %s is set without %s", v1alpha1.AccountKeyPreviousEncodingAESKey, v1alpha1.AccountKeyEncodingAESKey)
	}
	if a.AppID != "" {
		if _, err := a.Ciphers(); err != nil {
			return Account{}, err
		}
	}
	return a, nil
}

// Require fails naming every key of keys whose value is empty.
func (a Account) Require(keys ...string) error {
	var missing []string
	for _, k := range keys {
		if a.value(k) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &MissingKeysError{Keys: missing}
}

// MissingKeysError names the keys an account Secret lacks.
type MissingKeysError struct{ Keys []string }

func (e *MissingKeysError) Error() string {
	return "no value for " + strings.Join(e.Keys, " and ")
}

func (a Account) value(key string) string {
	switch key {
	case v1alpha1.AccountKeyAppID:
		return a.AppID
	case v1alpha1.AccountKeyAppSecret:
		return a.AppSecret
	case v1alpha1.AccountKeyToken:
		return a.Token
	case v1alpha1.AccountKeyEncodingAESKey:
		return a.EncodingAESKey
	case v1alpha1.AccountKeyPreviousEncodingAESKey:
		return a.PreviousEncodingAESKey
	}
	return ""
}

// Ciphers returns the cipher of the current key, then the previous key's: the order in which a
// push is tried. Empty for a plaintext-mode account. The ciphers check the AppID that WeChat
// seals into every message, so an Account without one has none.
func (a Account) Ciphers() ([]*wxcrypto.Cipher, error) {
	var out []*wxcrypto.Cipher
	for _, k := range []string{v1alpha1.AccountKeyEncodingAESKey, v1alpha1.AccountKeyPreviousEncodingAESKey} {
		v := a.value(k)
		if v == "" {
			continue
		}
		c, err := wxcrypto.NewCipher(v, a.AppID)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", k, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// Data is the Secret's data for a; empty values are left out.
func (a Account) Data() map[string][]byte {
	d := map[string][]byte{}
	for _, k := range Keys {
		if v := a.value(k); v != "" {
			d[k] = []byte(v)
		}
	}
	return d
}

// Keys are the keys of an account Secret, in the order they are documented.
var Keys = []string{
	v1alpha1.AccountKeyAppID,
	v1alpha1.AccountKeyAppSecret,
	v1alpha1.AccountKeyToken,
	v1alpha1.AccountKeyEncodingAESKey,
	v1alpha1.AccountKeyPreviousEncodingAESKey,
}

// String names the account and which keys are set, never a value.
func (a Account) String() string {
	var set []string
	for _, k := range Keys[1:] {
		if a.value(k) != "" {
			set = append(set, k)
		}
	}
	return fmt.Sprintf("account %s (%s set)", a.AppID, strings.Join(set, ", "))
}

// GoString keeps %#v as quiet as %v.
func (a Account) GoString() string { return a.String() }
