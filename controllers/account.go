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

	"golang.org/x/sync/singleflight"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// secret is what the reconcilers know of one account Secret.
type secret struct {
	// version is the Secret's resourceVersion.
	version string
	creds   credentials.Account
	// problem, when set, says why the Secret cannot be used; it is remembered with the version
	// so that a broken Secret is not read again on every reconcile.
	problem error
}

// accountProblem is an account that cannot be used: its reason is the Ready condition's.
type accountProblem struct {
	reason, message string
	checking        bool
}

func (p *accountProblem) Error() string { return p.message }

func problemOf(p *issuance.Problem) *accountProblem {
	return &accountProblem{reason: p.Reason, message: p.Message, checking: p.Checking}
}

// toIssuance is the problem in the terms of the decisions.
func (p *accountProblem) toIssuance() *issuance.Problem {
	return &issuance.Problem{Reason: p.reason, Message: p.message, Checking: p.checking}
}

// secrets reads account Secrets without caching the data of every Secret in the cluster: the
// informer behind meta holds Secret metadata only, and the data of a Secret an account refers to
// is read from the API server (data) when its resourceVersion differs from the one read last.
// Each reconcile thus costs an in-memory lookup, and a Secret edit one GET. The code, account
// and push-config reconcilers share one.
type secrets struct {
	meta, data client.Reader
	// fetching makes the reconcilers that ask for the same new version at once share one GET.
	fetching singleflight.Group

	mu   sync.Mutex
	read map[types.NamespacedName]secret
}

func newSecrets(meta, data client.Reader) *secrets {
	return &secrets{meta: meta, data: data, read: map[types.NamespacedName]secret{}}
}

// get returns the Secret key. An *accountProblem error means the Secret is missing or does not
// parse; any other error is the API server's.
func (a *secrets) get(ctx context.Context, key types.NamespacedName) (secret, error) {
	m := &metav1.PartialObjectMetadata{}
	m.SetGroupVersionKind(corev1.SchemeGroupVersion.WithKind("Secret"))
	if err := a.meta.Get(ctx, key, m); err != nil {
		return a.missing(key, err)
	}
	a.mu.Lock()
	s, known := a.read[key]
	a.mu.Unlock()
	if known && s.version == m.ResourceVersion {
		return s, s.problem
	}
	v, err, _ := a.fetching.Do(key.String()+"@"+m.ResourceVersion, func() (any, error) {
		obj := &corev1.Secret{}
		if err := a.data.Get(ctx, key, obj); err != nil {
			return nil, err
		}
		s := parse(obj)
		a.mu.Lock()
		a.read[key] = s
		a.mu.Unlock()
		return s, nil
	})
	if err != nil {
		return a.missing(key, err)
	}
	s = v.(secret)
	return s, s.problem
}

func (a *secrets) missing(key types.NamespacedName, err error) (secret, error) {
	if !apierrors.IsNotFound(err) {
		return secret{}, err
	}
	a.mu.Lock()
	delete(a.read, key)
	a.mu.Unlock()
	return secret{}, &accountProblem{reason: v1alpha1.ReasonAccountSecretMissing, message: fmt.Sprintf(
		"Secret %q (spec.secretRef) does not exist in namespace %s: create it with the keys %s and %s of the Official Account (and %s, %s for pushes)",
		key.Name, key.Namespace, v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyAppSecret, v1alpha1.AccountKeyToken, v1alpha1.AccountKeyEncodingAESKey)}
}

// parse reads the credentials through the one parser of account Secrets. Messages name keys,
// never values.
func parse(s *corev1.Secret) secret {
	parsed, err := credentials.FromSecret(s)
	if err != nil {
		return secret{version: s.ResourceVersion, problem: invalid(s.Name, err)}
	}
	return secret{version: s.ResourceVersion, creds: parsed}
}

func invalid(name string, err error) *accountProblem {
	return &accountProblem{reason: v1alpha1.ReasonAccountSecretInvalid, message: fmt.Sprintf("Secret %q (spec.secretRef): %v", name, err)}
}

// apiCredentials are what the manager calls WeChat with for an account: the Secret's AppID and,
// unless a central service hands out the tokens, its AppSecret; the spec's token source and rate.
func apiCredentials(s secret, spec *v1alpha1.WeChatAccountSpec, secretName string) (wechat.Credentials, *accountProblem) {
	required := []string{v1alpha1.AccountKeyAppID, v1alpha1.AccountKeyAppSecret}
	source := wechat.TokenSource{Mode: wechat.TokenModeStable}
	switch spec.TokenSourceType() {
	case v1alpha1.TokenSourceClassic:
		source.Mode = wechat.TokenModeClassic
	case v1alpha1.TokenSourceExternal:
		source = wechat.TokenSource{Mode: wechat.TokenModeExternal, ExternalURL: spec.TokenSource.URL}
		required = required[:1]
	}
	if err := s.creds.Require(required...); err != nil {
		return wechat.Credentials{}, invalid(secretName, err)
	}
	creds := wechat.Credentials{AppID: s.creds.AppID, AppSecret: s.creds.AppSecret, Tokens: source}
	if rl := spec.RateLimit; rl != nil {
		if rl.QPS != nil {
			creds.Rate.QPS = rl.QPS.AsApproximateFloat64()
		}
		if rl.Burst != nil {
			creds.Rate.Burst = int(*rl.Burst)
		}
	}
	return creds, nil
}
