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
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// pushKeys is what the callback server needs to authenticate and open one Official Account's
// pushes: the AppID of its path, the token that signs them and the ciphers of its keys.
type pushKeys struct {
	appID string
	token string
	// ciphers holds the current key's cipher then the previous one's; empty for a plaintext-mode
	// account.
	ciphers []*wxcrypto.Cipher
	// account is the account as the manager projected it: its forward and sink.
	account pushconfig.Account
}

// decrypt tries the current key, then the previous one, and returns the cipher that worked so
// that the reply is encrypted with the key WeChat is using.
func (k *pushKeys) decrypt(b64 string) ([]byte, *wxcrypto.Cipher, error) {
	var err error
	for _, c := range k.ciphers {
		var msg []byte
		if msg, err = c.Decrypt(b64); err == nil {
			return msg, c, nil
		}
	}
	return nil, nil, err
}

// pushKeysFromSecret reads what the callback server needs of an account Secret through the
// project's one parser, which trims the values as the manager does: a Secret made with
// `kubectl create secret --from-file` keeps each file's trailing newline, and an untrimmed AppID
// would never match the push path. Its errors name keys, never values.
func pushKeysFromSecret(s *corev1.Secret) (*pushKeys, error) {
	creds, err := credentials.FromSecret(s)
	if err != nil {
		return nil, err
	}
	if err := creds.Require(qrv1alpha1.AccountKeyAppID, qrv1alpha1.AccountKeyToken); err != nil {
		return nil, err
	}
	ciphers, err := creds.Ciphers()
	if err != nil {
		return nil, err
	}
	return &pushKeys{appID: creds.AppID, token: creds.Token, ciphers: ciphers}, nil
}

// keyring holds the push keys read from the configured account Secrets and reads the Secrets
// again every interval.
type keyring struct {
	reader   client.Reader
	refs     []types.NamespacedName
	interval time.Duration
	clock    clock.Clock
	log      logr.Logger

	// byAppID is replaced whole on every refresh, so a request sees one consistent set.
	byAppID atomic.Pointer[map[string]*pushKeys]
	// byRef is only touched by the refresh loop.
	byRef  map[types.NamespacedName]*pushKeys
	loaded atomic.Bool
}

// lookup returns the keys of the account served at /wechat/<appID>, nil for none.
func (k *keyring) lookup(appID string) *pushKeys {
	if m := k.byAppID.Load(); m != nil {
		return (*m)[appID]
	}
	return nil
}

// Start reads the Secrets now and then every interval until ctx ends. It is a manager Runnable.
func (k *keyring) Start(ctx context.Context) error {
	for {
		k.refresh(ctx)
		k.loaded.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case <-k.clock.After(k.interval):
		}
	}
}

// NeedLeaderElection is false: every replica serves pushes.
func (k *keyring) NeedLeaderElection() bool { return false }

// refresh re-reads every Secret. A Secret that cannot be read for a reason other than its
// absence keeps its last good version, so an API server hiccup does not turn pushes away; a
// deleted or invalid Secret stops being served.
func (k *keyring) refresh(ctx context.Context) {
	if k.byRef == nil {
		k.byRef = map[types.NamespacedName]*pushKeys{}
	}
	byAppID := map[string]*pushKeys{}
	for _, ref := range k.refs {
		keys, err := k.read(ctx, ref)
		switch {
		case err == nil:
			k.byRef[ref] = keys
		case apierrors.IsNotFound(err) || errors.Is(err, errInvalidSecret):
			delete(k.byRef, ref)
			k.log.Error(err, "account Secret not served", "secret", ref.String())
		default:
			k.log.Error(err, "reading account Secret; serving its last good version if any", "secret", ref.String())
		}
		loaded := 0.0
		if keys, ok := k.byRef[ref]; ok {
			if _, dup := byAppID[keys.appID]; dup {
				k.log.Error(nil, "two account Secrets have the same appID; serving the first one given", "secret", ref.String())
			} else {
				byAppID[keys.appID] = keys
				loaded = 1
			}
		}
		accountLoaded.WithLabelValues(ref.String()).Set(loaded)
	}
	k.byAppID.Store(&byAppID)
}

var errInvalidSecret = errors.New("invalid account Secret")

func (k *keyring) read(ctx context.Context, ref types.NamespacedName) (*pushKeys, error) {
	var s corev1.Secret
	if err := k.reader.Get(ctx, ref, &s); err != nil {
		return nil, err
	}
	keys, err := pushKeysFromSecret(&s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidSecret, err)
	}
	return keys, nil
}
