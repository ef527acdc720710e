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
	"sync/atomic"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// pushKeys is what the callback server needs to authenticate and open one Official Account's
// pushes: the AppID of its path, the token that signs them and the ciphers of its keys, with the
// whole account as the manager projected it (its resource, where its pushes go on to).
type pushKeys struct {
	appID string
	token string
	// ciphers holds the current key's cipher then the previous one's; empty for a plaintext-mode
	// account.
	ciphers []*wxcrypto.Cipher
	// account is the account as the manager projected it: its forward and sink.
	account pushconfig.Account
}

// forwards is whether the account has an application behind it to hand pushes on to.
func (k *pushKeys) forwards() bool { return k.account.ForwardURL != "" }

// hasSink is whether the account has spec.sink, resolved or not (a manager older than the Sink
// field projects only the URL).
func (k *pushKeys) hasSink() bool { return k.account.Sink || k.account.SinkURI != "" }

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

// pushKeysOf checks an account's push material through the project's one parser of account
// credentials. Its errors name keys, never values.
func pushKeysOf(a pushconfig.Account) (*pushKeys, error) {
	creds, err := a.Credentials()
	if err != nil {
		return nil, err
	}
	ciphers, err := creds.Ciphers()
	if err != nil {
		return nil, err
	}
	return &pushKeys{appID: creds.AppID, token: creds.Token, ciphers: ciphers, account: a}, nil
}

// keysOf is what the projected push Secret serves: every entry that decodes, by AppID. An entry
// that does not is logged by AppID and not served; nil (a deleted Secret) serves nothing.
func keysOf(s *corev1.Secret, log logr.Logger) map[string]*pushKeys {
	keys := map[string]*pushKeys{}
	if s == nil {
		return keys
	}
	accounts, problems := pushconfig.Decode(s.Data)
	for _, err := range problems {
		log.Error(err, "push config entry not served")
	}
	for _, a := range accounts {
		k, err := pushKeysOf(a)
		if err != nil {
			log.Error(err, "push config entry not served", "appID", a.AppID)
			continue
		}
		keys[a.AppID] = k
	}
	return keys
}

// keyring serves the accounts of the projected push Secret, pushconfig.SecretName in the
// operator's namespace. It watches that one Secret (a field selector on its name, which is all
// the callback server's Role allows), so an account the manager adds is served within a watch
// event and one it removes answers 404 at once. While the API server is unreachable the informer
// keeps the last Secret it saw, and so the keyring keeps serving it.
type keyring struct {
	client    kubernetes.Interface
	namespace string
	log       logr.Logger

	// byAppID is replaced whole on every change, so a request sees one consistent set.
	byAppID atomic.Pointer[map[string]*pushKeys]
	loaded  atomic.Bool
}

// lookup returns the keys of the account served at /wechat/<appID>, nil for none.
func (k *keyring) lookup(appID string) *pushKeys {
	if m := k.byAppID.Load(); m != nil {
		return (*m)[appID]
	}
	return nil
}

// accounts returns the accounts served now.
func (k *keyring) accounts() []pushconfig.Account {
	m := k.byAppID.Load()
	if m == nil {
		return nil
	}
	out := make([]pushconfig.Account, 0, len(*m))
	for _, keys := range *m {
		out = append(out, keys.account)
	}
	return out
}

// store serves s (nil: nothing) and reports which accounts are loaded.
func (k *keyring) store(s *corev1.Secret) {
	keys := keysOf(s, k.log)
	if old := k.byAppID.Load(); old != nil {
		for appID := range *old {
			if keys[appID] == nil {
				accountLoaded.DeleteLabelValues(appID)
			}
		}
	}
	for appID := range keys {
		accountLoaded.WithLabelValues(appID).Set(1)
	}
	k.byAppID.Store(&keys)
}

// Start watches the push Secret until ctx ends. It is a manager Runnable.
func (k *keyring) Start(ctx context.Context) error {
	lw := toolscache.NewFilteredListWatchFromClient(k.client.CoreV1().RESTClient(), "secrets", k.namespace,
		func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", pushconfig.SecretName).String()
		})
	inf := toolscache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, toolscache.Indexers{})
	if err := inf.SetTransform(toolscache.TransformFunc(func(o any) (any, error) {
		if s, ok := o.(*corev1.Secret); ok {
			s.ManagedFields = nil
		}
		return o, nil
	})); err != nil {
		return err
	}
	reg, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(o any) { k.store(o.(*corev1.Secret)) },
		UpdateFunc: func(_, o any) { k.store(o.(*corev1.Secret)) },
		DeleteFunc: func(any) { k.store(nil) },
	})
	if err != nil {
		return err
	}
	go inf.Run(ctx.Done())
	// Synced once the handler has served what the first list found.
	if !toolscache.WaitForCacheSync(ctx.Done(), reg.HasSynced) {
		return nil
	}
	if len(inf.GetStore().List()) == 0 {
		k.log.Info("push config Secret not found; serving no account until the manager writes it", "secret", pushconfig.SecretName)
	}
	k.loaded.Store(true)
	<-ctx.Done()
	return nil
}

// NeedLeaderElection is false: every replica serves pushes.
func (k *keyring) NeedLeaderElection() bool { return false }
