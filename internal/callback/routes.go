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
	"time"

	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
)

// routes tells the deliverer where a scan's event goes, from what this replica serves: the
// accounts of the push config (those that left it too, for their grace period) and the codes'
// informer.
type routes struct {
	keys  *keyring
	codes codeIndex
}

func (r routes) AccountSink(appID string) delivery.Sink {
	k := r.keys.lookup(appID)
	if k == nil || !k.hasSink() {
		return delivery.Sink{}
	}
	a := k.account
	return delivery.Sink{Declared: true, Target: delivery.Target{URI: a.SinkURI, MaxEvents: a.SinkMaxEvents}, Retention: retentionOr(a.SinkRetention)}
}

func (r routes) CodeSink(code string, uid types.UID) delivery.Sink {
	o, ok, err := r.codes.GetByKey(code)
	if err != nil || !ok {
		return delivery.Sink{}
	}
	c := o.(*qrv1alpha1.WeChatQRCode)
	if c.UID != uid || c.Spec.Sink == nil {
		return delivery.Sink{}
	}
	return delivery.Sink{Declared: true, Target: delivery.Target{URI: c.Status.SinkURI, MaxEvents: c.Status.SinkMaxEvents}, Retention: c.Spec.Sink.RetentionOf()}
}

// CodeTagging routes the scans that tag their scanner to the manager's tagging endpoint, for as
// long as a sink's events wait by default: the manager may be between two leaders.
func (r routes) CodeTagging(code string, uid types.UID, subscribe bool) delivery.Sink {
	o, ok, err := r.codes.GetByKey(code)
	if err != nil || !ok {
		return delivery.Sink{}
	}
	c := o.(*qrv1alpha1.WeChatQRCode)
	if c.UID != uid || !c.Spec.TagsScan(subscribe) {
		return delivery.Sink{}
	}
	t := delivery.Target{Tagging: true, MaxEvents: delivery.TaggingMaxEvents}
	if e := r.keys.tagging.Load(); e != nil {
		t.URI, t.CA = e.URL, e.CA
	}
	return delivery.Sink{Declared: true, Target: t, Retention: qrv1alpha1.DefaultSinkRetention}
}

func (r routes) Declarations() []delivery.Declaration {
	var out []delivery.Declaration
	for _, a := range r.keys.Accounts() {
		if a.Sink || a.SinkURI != "" {
			out = append(out, delivery.Declaration{Kind: a.Ref.Kind, Namespace: a.Ref.Namespace, Name: a.Ref.Name, AppID: a.AppID,
				Sink: r.AccountSink(a.AppID)})
		}
	}
	for _, o := range r.codes.List() {
		if c := o.(*qrv1alpha1.WeChatQRCode); c.Spec.Sink != nil {
			out = append(out, delivery.Declaration{Kind: delivery.KindCode, Namespace: c.Namespace, Name: c.Name,
				Sink: r.CodeSink(c.Namespace+"/"+c.Name, c.UID)})
		}
	}
	return out
}

// retentionOr is d, or the default for a push config written before retention was.
func retentionOr(d time.Duration) time.Duration {
	if d <= 0 {
		return qrv1alpha1.DefaultSinkRetention
	}
	return d
}
