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

package destination

import (
	"context"
	"errors"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// lazy starts the API server only for the test that needs it: the others are unit tests.
var lazy testenv.Lazy

// TestAgainstAPIServer resolves a real Service, a missing one and a kind the API server does not
// serve, through the API server's own REST mapping.
func TestAgainstAPIServer(t *testing.T) {
	env := lazy.Get(t)
	t.Cleanup(func() { _ = lazy.Stop() })
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "destination-"}}
	if err := env.Client.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	svc := service(ns.Name, "bot", 8080)
	svc.Spec.Ports[0].Name = "http"
	if err := env.Client.Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	from := Referrer{Namespace: ns.Name}

	got, err := Forward(ctx, env.Client, from, &qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "bot", Port: &svc.Spec.Ports[0].Port, Path: "/wx"}})
	check(t, got, err, "http://bot."+ns.Name+".svc:8080/wx", "", "")
	got, err = Sink(ctx, env.Client, from, &qrv1alpha1.Destination{Ref: &qrv1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "bot"}, URI: "/scans"})
	check(t, got, err, "http://bot."+ns.Name+".svc:8080/scans", "", "")
	got, err = Sink(ctx, env.Client, from, &qrv1alpha1.Destination{Ref: &qrv1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "gone"}})
	check(t, got, err, "", ReasonNotFound, "spec.sink.ref")
	got, err = Sink(ctx, env.Client, from, &qrv1alpha1.Destination{Ref: &qrv1alpha1.KReference{APIVersion: "eventing.knative.dev/v1", Kind: "Broker", Name: "default"}})
	check(t, got, err, "", ReasonUnknownKind, "spec.sink.ref")
	if e, ok := errors.AsType[*Error](err); ok && e.Message != "the API server serves no brokers in eventing.knative.dev/v1: install its CRD or correct apiVersion and kind" {
		t.Errorf("message %q", e.Message)
	}
}
