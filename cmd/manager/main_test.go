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

package main

import (
	"context"
	"flag"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/securemetrics/securemetricstest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// TestMetrics runs the manager as main does, with the default metrics flags, against a real API
// server and the fake WeChat: /metrics answers only a ServiceAccount bound to metrics-reader, and
// serves every manager metric the Grafana dashboard queries once a code is issued and another
// fails.
func TestMetrics(t *testing.T) {
	env, ns := securemetricstest.Start(t)
	fake, err := wechattest.NewServer(wechattest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fake.Close)
	fake.AddAccount("wxmetrics", "app-secret")

	ctx := context.Background()
	// One account, whose daily qrcode/create quota WeChat has at one call: a ticket issued, then
	// a failure (errcode 45009).
	fake.SetCreateQuota(1)
	must(t, env.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "account"},
		Data:       map[string][]byte{v1alpha1.AccountKeyAppID: []byte("wxmetrics"), v1alpha1.AccountKeyAppSecret: []byte("app-secret")},
	}))
	must(t, env.Client.Create(ctx, &v1alpha1.WeChatAccount{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "account"},
		Spec:       v1alpha1.WeChatAccountSpec{SecretRef: v1alpha1.SecretReference{Name: "account"}},
	}))
	for id := range int64(2) {
		must(t, env.Client.Create(ctx, &v1alpha1.WeChatQRCode{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: "code-"},
			Spec: v1alpha1.WeChatQRCodeSpec{
				AccountRef: v1alpha1.AccountReference{Name: "account"},
				Type:       v1alpha1.Temporary,
				Scene:      v1alpha1.Scene{ID: ptr.To(id + 1)},
				TTL:        &metav1.Duration{Duration: time.Hour},
			},
		}))
	}

	addr := securemetricstest.FreeAddr(t)
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	f, _ := bindFlags(fs)
	must(t, fs.Parse([]string{
		"--metrics-bind-address=" + addr, "--health-probe-bind-address=0", "--leader-elect=false",
		"--wechat-api-url=" + fake.URL, "--wechat-image-url=" + fake.URL, "--cluster-resource-namespace=" + ns,
	}))
	securemetricstest.Run(t, "manager", func(ctx context.Context) error { return run(ctx, env.Config, *f) })

	scrapers := securemetricstest.NewScrapers(t, env.Config)
	scrapers.RequireServed(t, addr, securemetricstest.DashboardMetrics(t, false), nil)
	scrapers.RequireAccess(t, addr)

}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
