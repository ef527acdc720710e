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

// Package pushconfig is the contract between the manager and the callback server: what the
// callback server needs to serve the pushes of every account, projected by the manager into ONE
// Secret in the operator's namespace. The internet-facing callback server may read that Secret
// and nothing else of Secrets (its Role names it in resourceNames), so it never holds an
// AppSecret nor reads a Secret of another namespace, yet follows the accounts without a restart.
package pushconfig

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
)

// SecretName is the projected Secret's name, in the operator's namespace.
const SecretName = "wechat-qrcode-push-config"

// Account is one account as the callback server serves it, at /wechat/<AppID>.
type Account struct {
	// Ref is the account resource (Namespace empty for a ClusterWeChatAccount).
	Ref Ref `json:"ref"`
	// AppID of the account: the data key of its entry too.
	AppID string `json:"appID"`
	// Token, EncodingAESKey and PreviousEncodingAESKey: the push material of the account Secret.
	Token                  string `json:"token"`
	EncodingAESKey         string `json:"encodingAESKey,omitempty"`
	PreviousEncodingAESKey string `json:"previousEncodingAESKey,omitempty"`
	// ForwardURL is the resolved spec.forward, empty for none.
	ForwardURL string `json:"forwardURL,omitempty"`
	// ForwardTimeout is spec.forward.timeout, or its default.
	ForwardTimeout time.Duration `json:"forwardTimeout,omitempty"`
	// Sink is whether the account has spec.sink, resolved or not: its scans are then stored
	// with their events' data, so that none is counted without its event while SinkURI is not
	// resolved yet (a new or re-created account).
	Sink bool `json:"sink,omitempty"`
	// SinkRetention is spec.sink.retention, or its default: how long the events wait for SinkURI.
	SinkRetention time.Duration `json:"sinkRetention,omitempty"`
	// SinkURI is the resolved spec.sink, empty for none.
	SinkURI string `json:"sinkURI,omitempty"`
	// SinkMaxEvents is the account status's sinkMaxEvents: 0 for binary mode.
	SinkMaxEvents int32 `json:"sinkMaxEvents,omitempty"`
}

// Ref names an account resource.
type Ref struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + "/" + r.Name
	}
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// Credentials returns the push material through the one parser of account credentials, which
// checks the AppID and the keys.
func (a Account) Credentials() (credentials.Account, error) {
	c := credentials.Account{
		AppID:                  a.AppID,
		Token:                  a.Token,
		EncodingAESKey:         a.EncodingAESKey,
		PreviousEncodingAESKey: a.PreviousEncodingAESKey,
	}
	if err := c.Require(v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyToken); err != nil {
		return credentials.Account{}, err
	}
	if _, err := c.Ciphers(); err != nil {
		return credentials.Account{}, err
	}
	return c, nil
}

// TaggingKey is the projected Secret's key of the manager's tagging endpoint: a name no AppID
// has (AppIDs are letters and digits), beside the accounts' keys.
const TaggingKey = "tagging.endpoint"

// Tagging is where the elected manager takes the scan events of codes with spec.tags: its
// tagging endpoint (package tagging), published by the manager that holds the leader Lease.
type Tagging struct {
	// URL of the endpoint: https, at the manager Pod's IP.
	URL string `json:"url"`
	// CA is the PEM certificate the endpoint serves, self-signed by the manager at its start:
	// the callback server trusts that certificate alone for the endpoint.
	CA string `json:"ca"`
}

// DecodeTagging reads the tagging endpoint of the projected Secret's data: nil while no manager
// publishes one.
func DecodeTagging(data map[string][]byte) (*Tagging, error) {
	b, ok := data[TaggingKey]
	if !ok {
		return nil, nil
	}
	var t Tagging
	if err := json.Unmarshal(b, &t); err != nil || t.URL == "" || t.CA == "" {
		return nil, fmt.Errorf("entry %s does not parse as an endpoint with its CA", TaggingKey)
	}
	return &t, nil
}

// Encode is the projected Secret's data: one key per AppID, in a stable form so that an
// unchanged set of accounts writes nothing.
func Encode(accounts []Account) (map[string][]byte, error) {
	data := make(map[string][]byte, len(accounts))
	for _, a := range accounts {
		if _, dup := data[a.AppID]; dup {
			return nil, fmt.Errorf("two accounts with AppID %s", a.AppID)
		}
		b, err := json.Marshal(a)
		if err != nil {
			return nil, err
		}
		data[a.AppID] = b
	}
	return data, nil
}

// Decode reads the accounts of the projected Secret's data (the tagging endpoint is
// DecodeTagging's). An entry that does not parse is reported by AppID and skipped, so one bad
// entry does not stop the others being served. Errors name keys, never values.
func Decode(data map[string][]byte) (accounts []Account, problems []error) {
	keys := make([]string, 0, len(data))
	for k := range data {
		if k != TaggingKey {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		var a Account
		if err := json.Unmarshal(data[k], &a); err != nil {
			problems = append(problems, fmt.Errorf("entry %s does not parse as an account", k))
			continue
		}
		if a.AppID != k {
			problems = append(problems, fmt.Errorf("entry %s holds another AppID", k))
			continue
		}
		if _, err := a.Credentials(); err != nil {
			problems = append(problems, fmt.Errorf("entry %s: %w", k, err))
			continue
		}
		accounts = append(accounts, a)
	}
	return accounts, problems
}

// String names the account, never a value.
func (a Account) String() string { return fmt.Sprintf("account %s (%s)", a.AppID, a.Ref) }

// GoString keeps %#v as quiet as %v.
func (a Account) GoString() string { return a.String() }
