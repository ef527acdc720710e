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
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// account is what one Secret tells about pushing to one Official Account.
type account struct {
	appID string
	token string
	// ciphers holds the current key's cipher then the previous one's; empty for a plaintext-mode
	// account.
	ciphers []*wxcrypto.Cipher
}

// decrypt tries the current key, then the previous one, and returns the cipher that worked so
// that the reply is encrypted with the key WeChat is using.
func (a *account) decrypt(b64 string) ([]byte, *wxcrypto.Cipher, error) {
	var err error
	for _, c := range a.ciphers {
		var msg []byte
		if msg, err = c.Decrypt(b64); err == nil {
			return msg, c, nil
		}
	}
	return nil, nil, err
}

// ParseSecretRef parses the <namespace>/<name> of an --account flag.
func ParseSecretRef(s string) (types.NamespacedName, error) {
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return types.NamespacedName{}, fmt.Errorf("account %q: want <namespace>/<secretName>", s)
	}
	return types.NamespacedName{Namespace: ns, Name: name}, nil
}

// accountFromSecret reads what the callback server needs of an account Secret through the
// project's one parser, which trims the values as the manager does: a Secret made with
// `kubectl create secret --from-file` keeps each file's trailing newline, and an untrimmed AppID
// would never match the push path. Its errors name keys, never values.
func accountFromSecret(s *corev1.Secret) (*account, error) {
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
	return &account{appID: creds.AppID, token: creds.Token, ciphers: ciphers}, nil
}

// accounts holds the accounts read from the configured Secrets and re-reads them periodically.
type accounts struct {
	reader   client.Reader
	refs     []types.NamespacedName
	interval time.Duration
	clock    clock.Clock
	log      logr.Logger

	// byAppID is replaced whole on every refresh, so a request sees one consistent set.
	byAppID atomic.Pointer[map[string]*account]
	// byRef is only touched by the refresh loop.
	byRef  map[types.NamespacedName]*account
	loaded atomic.Bool
}

func (a *accounts) get(appID string) *account {
	if m := a.byAppID.Load(); m != nil {
		return (*m)[appID]
	}
	return nil
}

// Start reads the Secrets now and then every interval until ctx ends. It is a manager Runnable.
func (a *accounts) Start(ctx context.Context) error {
	for {
		a.refresh(ctx)
		a.loaded.Store(true)
		select {
		case <-ctx.Done():
			return nil
		case <-a.clock.After(a.interval):
		}
	}
}

// NeedLeaderElection is false: every replica serves pushes.
func (a *accounts) NeedLeaderElection() bool { return false }

// refresh re-reads every Secret. A Secret that cannot be read for a reason other than its
// absence keeps its last good version, so an API server hiccup does not turn pushes away; a
// deleted or invalid Secret stops being served.
func (a *accounts) refresh(ctx context.Context) {
	if a.byRef == nil {
		a.byRef = map[types.NamespacedName]*account{}
	}
	byAppID := map[string]*account{}
	for _, ref := range a.refs {
		acct, err := a.read(ctx, ref)
		switch {
		case err == nil:
			a.byRef[ref] = acct
		case apierrors.IsNotFound(err) || errors.Is(err, errInvalidSecret):
			delete(a.byRef, ref)
			a.log.Error(err, "account Secret not served", "secret", ref.String())
		default:
			a.log.Error(err, "reading account Secret; serving its last good version if any", "secret", ref.String())
		}
		loaded := 0.0
		if acct, ok := a.byRef[ref]; ok {
			if _, dup := byAppID[acct.appID]; dup {
				a.log.Error(nil, "two account Secrets have the same appID; serving the first one given", "secret", ref.String())
			} else {
				byAppID[acct.appID] = acct
				loaded = 1
			}
		}
		accountLoaded.WithLabelValues(ref.String()).Set(loaded)
	}
	a.byAppID.Store(&byAppID)
}

var errInvalidSecret = errors.New("invalid account Secret")

func (a *accounts) read(ctx context.Context, ref types.NamespacedName) (*account, error) {
	var s corev1.Secret
	if err := a.reader.Get(ctx, ref, &s); err != nil {
		return nil, err
	}
	acct, err := accountFromSecret(&s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidSecret, err)
	}
	return acct, nil
}
