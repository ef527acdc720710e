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

package controllers

import (
	"context"
	"fmt"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// account is what the reconciler knows of one account Secret.
type account struct {
	// version is the Secret's resourceVersion.
	version string
	creds   wechat.Credentials
	// problem, when set, says why the Secret cannot be used; it is remembered with the version
	// so that a broken Secret is not read again on every reconcile.
	problem error
}

// accountProblem is a Secret that cannot be used: its reason is the Ready condition's.
type accountProblem struct {
	reason, message string
}

func (p *accountProblem) Error() string { return p.message }

// accounts reads account Secrets without caching the data of every Secret in the cluster: the
// informer behind meta holds Secret metadata only, and the data of a Secret a code refers to is
// read from the API server (data) when its resourceVersion differs from the one read last. Each
// reconcile thus costs an in-memory lookup, and a Secret edit one GET.
type accounts struct {
	meta, data client.Reader
	// externalTokens: tokens come from a central token service, so the Secret needs no appSecret.
	externalTokens bool

	mu   sync.Mutex
	read map[types.NamespacedName]account
}

func newAccounts(meta, data client.Reader, externalTokens bool) *accounts {
	return &accounts{meta: meta, data: data, externalTokens: externalTokens, read: map[types.NamespacedName]account{}}
}

// get returns the account of the Secret key. An *accountProblem error means the Secret is missing
// or unusable; any other error is the API server's.
func (a *accounts) get(ctx context.Context, key types.NamespacedName) (account, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := a.meta.Get(ctx, key, m); err != nil {
		return a.missing(key, err)
	}
	a.mu.Lock()
	acct, known := a.read[key]
	a.mu.Unlock()
	if known && acct.version == m.ResourceVersion {
		return acct, acct.problem
	}
	secret := &corev1.Secret{}
	if err := a.data.Get(ctx, key, secret); err != nil {
		return a.missing(key, err)
	}
	acct = a.parse(secret)
	a.mu.Lock()
	a.read[key] = acct
	a.mu.Unlock()
	return acct, acct.problem
}

func (a *accounts) missing(key types.NamespacedName, err error) (account, error) {
	if !apierrors.IsNotFound(err) {
		return account{}, err
	}
	a.mu.Lock()
	delete(a.read, key)
	a.mu.Unlock()
	return account{}, &accountProblem{v1alpha1.ReasonAccountSecretMissing, fmt.Sprintf(
		"Secret %q (spec.accountRef) does not exist in namespace %s; it needs the keys %s and %s of the Official Account",
		key.Name, key.Namespace, v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyAppSecret)}
}

// parse reads the credentials through the one parser of account Secrets. The manager needs the
// AppID and, unless a central service hands out the tokens, the AppSecret. Messages name keys,
// never values.
func (a *accounts) parse(s *corev1.Secret) account {
	acct := account{version: s.ResourceVersion}
	parsed, err := credentials.FromSecret(s)
	if err == nil {
		required := []string{v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyAppSecret}
		if a.externalTokens {
			required = required[:1]
		}
		err = parsed.Require(required...)
	}
	if err != nil {
		acct.problem = &accountProblem{v1alpha1.ReasonAccountSecretInvalid, fmt.Sprintf("Secret %q (spec.accountRef): %v", s.Name, err)}
		return acct
	}
	acct.creds = wechat.Credentials{AppID: parsed.AppID, AppSecret: parsed.AppSecret}
	return acct
}
