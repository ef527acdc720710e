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

package harness

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// AccountName is the WeChatAccount every code of a run refers to, and the name of its Secret.
const AccountName = "official-account"

// NewAccount returns random credentials shaped like WeChat's, new for every run so that no two
// runs (or tests) can authenticate each other's pushes or share tokens at a fake.
func NewAccount() credentials.Account {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return credentials.Account{
		AppID:          "wx" + rand.Text()[:16],
		AppSecret:      rand.Text(),
		Token:          rand.Text(),
		EncodingAESKey: base64.StdEncoding.EncodeToString(key)[:wxcrypto.EncodingAESKeyLength],
	}
}

// NewNamespace creates a namespace (named from prefix) with the account: its Secret (the keys of
// both the manager and the callback server; the EncodingAESKey puts it in safe mode), its
// WeChatAccount, and the push config Secret as the manager projects it, for the stages that run
// a callback server alone. The namespace doubles as the operator's.
func NewNamespace(ctx context.Context, c client.Client, prefix string, acct credentials.Account) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	if err := c.Create(ctx, ns); err != nil {
		return "", err
	}
	meta := metav1.ObjectMeta{Namespace: ns.Name, Name: AccountName}
	for _, o := range []client.Object{
		&corev1.Secret{ObjectMeta: meta, Data: acct.Data()},
		&qrv1alpha1.WeChatAccount{ObjectMeta: meta, Spec: qrv1alpha1.WeChatAccountSpec{SecretRef: qrv1alpha1.SecretReference{Name: AccountName}}},
	} {
		if err := c.Create(ctx, o); err != nil {
			return "", err
		}
	}
	return ns.Name, pushconfig.Write(ctx, c, c, ns.Name, projection(ns.Name, acct, Gateway{}))
}

// Gateway is what the account's pushes and scans go on to: spec.forward.url and spec.sink.uri,
// empty for none.
type Gateway struct {
	ForwardURL, SinkURI string
	// SinkMaxEvents is the sink's spec.sink.batch.maxEvents, 0 for binary mode.
	SinkMaxEvents int32
}

// SetGateway sets the account of NewNamespace's spec.forward and spec.sink to g's URLs (removing
// those g leaves empty), and projects them into the push config Secret as the manager does once
// it has resolved them (a URL resolves to itself), for the stages that run a callback server
// alone. A replica started afterwards serves them; one already running follows the Secret later.
func SetGateway(ctx context.Context, c client.Client, ns string, acct credentials.Account, g Gateway) error {
	account := &qrv1alpha1.WeChatAccount{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: AccountName}, account); err != nil {
		return err
	}
	account.Spec.Forward, account.Spec.Sink = nil, nil
	if g.ForwardURL != "" {
		account.Spec.Forward = &qrv1alpha1.Forward{URL: g.ForwardURL}
	}
	if g.SinkURI != "" {
		account.Spec.Sink = &qrv1alpha1.Destination{URI: g.SinkURI}
		if g.SinkMaxEvents > 0 {
			account.Spec.Sink.Batch = &qrv1alpha1.Batch{MaxEvents: g.SinkMaxEvents}
		}
	}
	if err := c.Update(ctx, account); err != nil {
		return err
	}
	return pushconfig.Write(ctx, c, c, ns, projection(ns, acct, g))
}

// projection is the push config entry of the account of namespace ns.
func projection(ns string, acct credentials.Account, g Gateway) pushconfig.Account {
	return pushconfig.Account{
		Ref:   pushconfig.Ref{Kind: qrv1alpha1.KindWeChatAccount, Namespace: ns, Name: AccountName},
		AppID: acct.AppID, Token: acct.Token, EncodingAESKey: acct.EncodingAESKey,
		ForwardURL: g.ForwardURL, SinkURI: g.SinkURI, SinkMaxEvents: g.SinkMaxEvents,
	}
}

// Temporary is a Temporary code with an integer scene.
func Temporary(ns, name string, scene int64, ttl, renewBefore time.Duration) *qrv1alpha1.WeChatQRCode {
	c := code(ns, name, qrv1alpha1.Temporary, scene)
	c.Spec.TTL = &metav1.Duration{Duration: ttl}
	if renewBefore > 0 {
		c.Spec.RenewBefore = &metav1.Duration{Duration: renewBefore}
	}
	return c
}

// Permanent is a Permanent code with an integer scene (1..100000).
func Permanent(ns, name string, scene int64) *qrv1alpha1.WeChatQRCode {
	return code(ns, name, qrv1alpha1.Permanent, scene)
}

func code(ns, name string, typ qrv1alpha1.QRCodeType, scene int64) *qrv1alpha1.WeChatQRCode {
	return &qrv1alpha1.WeChatQRCode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: qrv1alpha1.WeChatQRCodeSpec{
			AccountRef: qrv1alpha1.AccountReference{Name: AccountName},
			Type:       typ,
			Scene:      qrv1alpha1.Scene{ID: ptr.To(scene)},
		},
	}
}

// CodeName names the i-th code of a run.
func CodeName(i int) string { return "code-" + strconv.Itoa(i) }

// TemporaryCodes are n Temporary codes of namespace ns, the i-th named CodeName(i) with scene id
// i+1.
func TemporaryCodes(ns string, n int, ttl, renewBefore time.Duration) []*qrv1alpha1.WeChatQRCode {
	codes := make([]*qrv1alpha1.WeChatQRCode, n)
	for i := range codes {
		codes[i] = Temporary(ns, CodeName(i), int64(i+1), ttl, renewBefore)
	}
	return codes
}

// Parallel runs do(i) for i in [0, n) on workers goroutines and returns the first error.
func Parallel(n, workers int, do func(i int) error) error {
	var (
		wg    sync.WaitGroup
		once  sync.Once
		first error
		next  = make(chan int)
	)
	for range workers {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}

// CreateAll creates codes on workers goroutines.
func CreateAll(ctx context.Context, c client.Client, codes []*qrv1alpha1.WeChatQRCode, workers int) error {
	return Parallel(len(codes), workers, func(i int) error {
		if err := c.Create(ctx, codes[i]); err != nil {
			return fmt.Errorf("creating %s: %w", codes[i].Name, err)
		}
		return nil
	})
}

// IssuedStatus is the status the manager writes when WeChat answers ticket for code, asked for
// at requestedAt (internal/issuance.Issued, which the reconciler calls). Benchmarks that need
// codes with tickets but no manager (the callback server's), or a manager that finds nothing to
// do, write it themselves.
func IssuedStatus(appID string, code *qrv1alpha1.WeChatQRCode, ticket string, requestedAt time.Time) qrv1alpha1.WeChatQRCodeStatus {
	return issuance.Issued(code, appID, issuance.Ticket{
		Ticket:        ticket,
		URL:           "http://weixin.qq.com/q/" + ticket,
		ImageURL:      "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=" + ticket,
		ExpireSeconds: issuance.ExpireSeconds(&code.Spec),
	}, requestedAt)
}

// CreateIssued creates codes and gives each a ticket as if the manager had issued it at once, for
// the callback server, which needs codes with tickets and no manager. The codes are read back,
// so that they hold their tickets.
func CreateIssued(ctx context.Context, c client.Client, appID string, codes []*qrv1alpha1.WeChatQRCode, workers int) error {
	if err := CreateAll(ctx, c, codes, workers); err != nil {
		return err
	}
	now := time.Now()
	return Parallel(len(codes), workers, func(i int) error {
		if err := WriteStatus(ctx, c, codes[i], IssuedStatus(appID, codes[i], rand.Text(), now)); err != nil {
			return err
		}
		return c.Get(ctx, Key(codes[i]), codes[i])
	})
}

// WriteStatus merge-patches code's status to st, as the manager does (no resourceVersion).
func WriteStatus(ctx context.Context, c client.Client, code *qrv1alpha1.WeChatQRCode, st qrv1alpha1.WeChatQRCodeStatus) error {
	patched := code.DeepCopy()
	patched.Status = st
	return c.Status().Patch(ctx, patched, client.MergeFrom(code))
}

// ReadyReason is the reason of code's Ready condition if its status is True, and "" otherwise;
// reason is the condition's reason either way ("" without the condition).
func ReadyReason(code *qrv1alpha1.WeChatQRCode) (ready bool, reason string) {
	cond := code.ReadyCondition()
	if cond == nil {
		return false, ""
	}
	return cond.Status == metav1.ConditionTrue && cond.ObservedGeneration == code.Generation, cond.Reason
}

// Key is a code's namespace/name.
func Key(code *qrv1alpha1.WeChatQRCode) types.NamespacedName { return client.ObjectKeyFromObject(code) }

// Scans reads the scans and subscribes annotations the callback server wrote.
func Scans(code *qrv1alpha1.WeChatQRCode) (scans, subscribes int64) {
	ann := code.GetAnnotations()
	scans, _ = strconv.ParseInt(ann[qrv1alpha1.AnnotationScans], 10, 64)
	subscribes, _ = strconv.ParseInt(ann[qrv1alpha1.AnnotationSubscribes], 10, 64)
	return scans, subscribes
}
