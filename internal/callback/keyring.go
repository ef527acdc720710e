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
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/utils/clock"

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
	// until is when a departed account, one no longer in the push config, stops being served:
	// the time it left plus the grace. Zero for an account in the push config.
	until time.Time
}

// departed is whether the account left the push config and is served for its grace alone.
func (k *pushKeys) departed() bool { return !k.until.IsZero() }

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

// serving is what is served at now when the push config holds config after old was served:
// config's accounts, with the keys it gives them, and old's that left less than grace ago, with
// their last keys. An entry that stops decoding has left too: its last keys go on serving for
// the grace, as when the account was deleted.
func serving(old, config map[string]*pushKeys, now time.Time, grace time.Duration) map[string]*pushKeys {
	next := maps.Clone(config)
	if next == nil {
		next = map[string]*pushKeys{}
	}
	for appID, k := range old {
		switch {
		case config[appID] != nil:
		case !k.departed():
			if grace > 0 {
				left := *k
				left.until = now.Add(grace)
				next[appID] = &left
			}
		case now.Before(k.until):
			next[appID] = k
		}
	}
	return next
}

// pruneInterval bounds how long an account whose grace passed still shows in the departed gauge
// (lookup stops serving it at once) and holds its keys in memory.
const pruneInterval = 10 * time.Second

// keyring serves the accounts of the projected push Secret, pushconfig.SecretName in the
// operator's namespace. It watches that one Secret (a field selector on its name, which is all
// the callback server's Role allows), so an account the manager adds is served within a watch
// event. While the API server is unreachable the informer keeps the last Secret it saw, and so
// the keyring keeps serving it.
//
// An account that leaves the Secret, or all of them when it is deleted, is served with its last
// keys for grace more: a GitOps prune and re-sync or a kubectl replace --force deletes the
// account and creates it again, and it is back in the Secret only once the account and its own
// Secret both exist and the manager has projected them, seconds to minutes later, while WeChat
// tries a push only three times about 5 s apart. Its scans are counted meanwhile rather than
// lost. An AppID never served answers 404 at once, and an account back in the Secret is served
// with its new keys at once.
type keyring struct {
	client    kubernetes.Interface
	namespace string
	log       logr.Logger
	clock     clock.Clock
	grace     time.Duration

	// byAppID is replaced whole on every change, so a request sees one consistent set, and
	// without a lock: pushes read it, only the watch and the prune write it, under mu.
	byAppID atomic.Pointer[map[string]*pushKeys]
	loaded  atomic.Bool
	// tagging is the manager's tagging endpoint as the push Secret publishes it, nil for none.
	tagging atomic.Pointer[pushconfig.Tagging]

	mu sync.Mutex
	// config is what the push Secret serves (keysOf).
	config map[string]*pushKeys
	// departed counts the departed accounts served: with none, a prune has nothing to do.
	departed int
}

// lookup returns the keys of the account served at /wechat/<appID>, nil for none.
func (k *keyring) lookup(appID string) *pushKeys {
	m := k.byAppID.Load()
	if m == nil {
		return nil
	}
	keys := (*m)[appID]
	// The prune runs only every pruneInterval: the expiry is checked here, at the cost of a clock
	// read for a departed account's pushes alone.
	if keys != nil && keys.departed() && !k.clock.Now().Before(keys.until) {
		return nil
	}
	return keys
}

// Accounts returns the accounts in the push config now: not the departed ones, whose resource
// is gone, so that there is no status to report.
func (k *keyring) Accounts() []pushconfig.Account {
	m := k.byAppID.Load()
	if m == nil {
		return nil
	}
	out := make([]pushconfig.Account, 0, len(*m))
	for _, keys := range *m {
		if !keys.departed() {
			out = append(out, keys.account)
		}
	}
	return out
}

// store serves s (nil: a deleted Secret, whose accounts all depart, and no tagging endpoint).
func (k *keyring) store(s *corev1.Secret) {
	k.serve(keysOf(s, k.log))
	var t *pushconfig.Tagging
	if s != nil {
		var err error
		if t, err = pushconfig.DecodeTagging(s.Data); err != nil {
			k.log.Error(err, "the manager's tagging endpoint not used; tagging waits for the manager to publish it again")
		}
	}
	k.tagging.Store(t)
}

// serve serves config, what the push Secret now holds.
func (k *keyring) serve(config map[string]*pushKeys) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.config = config
	k.serveLocked()
}

// prune forgets the departed accounts whose grace passed.
func (k *keyring) prune() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.departed > 0 {
		k.serveLocked()
	}
}

// serveLocked serves k.config and the departed accounts still in their grace, and reports which
// accounts are loaded and which departed.
func (k *keyring) serveLocked() {
	var old map[string]*pushKeys
	if m := k.byAppID.Load(); m != nil {
		old = *m
	}
	next := serving(old, k.config, k.clock.Now(), k.grace)
	for appID, keys := range old {
		if n := next[appID]; n == nil || n.departed() != keys.departed() {
			loadedGauge(keys).DeleteLabelValues(appID)
		}
	}
	k.departed = 0
	for appID, keys := range next {
		loadedGauge(keys).WithLabelValues(appID).Set(1)
		if keys.departed() {
			k.departed++
		}
	}
	k.byAppID.Store(&next)
}

// loadedGauge is the gauge that shows an account served as keys is: in the push config, or
// departed and in its grace.
func loadedGauge(keys *pushKeys) *prometheus.GaugeVec {
	if keys.departed() {
		return accountDeparted
	}
	return accountLoaded
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.clock.After(pruneInterval):
			k.prune()
		}
	}
}

// NeedLeaderElection is false: every replica serves pushes.
func (k *keyring) NeedLeaderElection() bool { return false }
