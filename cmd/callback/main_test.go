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
	"net/http/httptest"

	"context"
	"flag"
	"fmt"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/demoapp"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/securemetrics/securemetricstest"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// TestMetrics runs the callback server as main does, with the default metrics flags, against a
// real API server: /metrics answers only a ServiceAccount bound to metrics-reader, and serves
// every callback metric the Grafana dashboard queries once scans were pushed, their events
// delivered to a sink, and a push refused.
func TestMetrics(t *testing.T) {
	env, ns := securemetricstest.Start(t)
	ctx := context.Background()
	const appID, token, ticket = "wxmetrics", "push-token", "TICKET-METRICS"
	// The account's sink, so that the elected deliverer sends the scans' events and serves the
	// delivery metrics the dashboard queries.
	sink := httptest.NewServer(demoapp.ScanReceiver(func(cloudevents.Event, delivery.ScanEvent) {}))
	t.Cleanup(sink.Close)
	must(t, pushconfig.Write(ctx, env.Client, env.Client, ns, pushconfig.Account{
		Ref: pushconfig.Ref{Kind: v1alpha1.KindWeChatAccount, Namespace: ns, Name: "account"}, AppID: appID, Token: token,
		Sink: true, SinkURI: sink.URL,
	}))
	scene := v1alpha1.Scene{ID: ptr.To[int64](7)}
	code := &v1alpha1.WeChatQRCode{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "code"},
		Spec:       v1alpha1.WeChatQRCodeSpec{AccountRef: v1alpha1.AccountReference{Name: "account"}, Type: v1alpha1.Permanent, Scene: scene},
	}
	must(t, env.Client.Create(ctx, code))
	// The status the manager would have written: what attributes the scans to the code.
	code.Status = v1alpha1.WeChatQRCodeStatus{Ticket: ticket, IssuedFor: &v1alpha1.IssuedFor{AppID: appID, Type: v1alpha1.Permanent, Scene: scene}}
	must(t, env.Client.Status().Update(ctx, code))

	addr, pushAddr := securemetricstest.FreeAddr(t), securemetricstest.FreeAddr(t)
	fs := flag.NewFlagSet("callback", flag.ContinueOnError)
	cfg, _ := bindFlags(fs)
	must(t, fs.Parse([]string{
		"--metrics-bind-address=" + addr, "--bind-address=" + pushAddr, "--health-probe-bind-address=0",
		"--namespace=" + ns,
	}))
	mgr, _, err := callback.NewManager(env.Config, *cfg)
	must(t, err)
	securemetricstest.Run(t, "callback server", mgr.Start)

	scrapers := securemetricstest.NewScrapers(t, env.Config)
	account := &wechattest.Pusher{URL: "http://" + pushAddr + "/wechat/" + appID, Token: token, Mode: wechattest.PushPlaintext, Tries: 1}
	stranger := &wechattest.Pusher{URL: "http://" + pushAddr + "/wechat/wxnobody", Token: token, Mode: wechattest.PushPlaintext, Tries: 1}
	// Until the server is up and its cache has the code, scans are refused or unmatched: each
	// round pushes one more scan, by another user, and one push for an account not served.
	i := 0
	scrapers.RequireServed(t, addr, securemetricstest.DashboardMetrics(t, true), func() {
		i++
		scan := wechattest.Event{FromUserName: fmt.Sprintf("o-user-%d", i), Event: "SCAN", EventKey: "7", Ticket: ticket}
		_, _ = account.Push(ctx, scan)
		_, _ = stranger.Push(ctx, scan)
	})
	scrapers.RequireAccess(t, addr)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
