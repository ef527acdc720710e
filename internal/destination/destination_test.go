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
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
)

var brokerGVK = schema.GroupVersionKind{Group: "eventing.knative.dev", Version: "v1", Kind: "Broker"}

func service(ns, name string, ports ...int32) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, p := range ports {
		s.Spec.Ports = append(s.Spec.Ports, corev1.ServicePort{Port: p})
	}
	return s
}

func broker(ns, name, address string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(brokerGVK)
	u.SetNamespace(ns)
	u.SetName(name)
	if address != "" {
		_ = unstructured.SetNestedField(u.Object, address, "status", "address", "url")
	}
	return u
}

// fakeReader holds Services and Brokers; a Channel is refused as an RBAC-less manager would be.
func fakeReader(t *testing.T) client.Reader {
	s := scheme.New()
	s.AddKnownTypeWithName(brokerGVK, &unstructured.Unstructured{})
	return fake.NewClientBuilder().WithScheme(s).
		WithObjects(service("app", "bot", 8080), service("app", "web", 80, 443), service("app", "two", 8080, 9090),
			service("other", "bot", 80), service("app", "external")).
		WithObjects(broker("app", "default", "http://broker-ingress.knative-eventing.svc.cluster.local/app/default"),
			broker("app", "starting", "")).
		WithInterceptorFuncs(interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if obj.GetObjectKind().GroupVersionKind().Kind == "Channel" {
				return apierrors.NewForbidden(schema.GroupResource{Group: "messaging.knative.dev", Resource: "channels"}, key.Name, errors.New("no"))
			}
			return c.Get(ctx, key, obj, opts...)
		}}).Build()
}

func TestForward(t *testing.T) {
	r := fakeReader(t)
	ns := Referrer{Namespace: "app"}
	cluster := Referrer{Namespace: "operator", Cluster: true}
	for _, tc := range []struct {
		name    string
		from    Referrer
		forward qrv1alpha1.Forward
		want    string
		reason  string
		field   string
	}{
		{"url as is", ns, qrv1alpha1.Forward{URL: "https://bot.example.com/wx?x=1"}, "https://bot.example.com/wx?x=1", "", ""},
		{"service port and path", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "bot", Port: ptr.To[int32](8080), Path: "/wx"}}, "http://bot.app.svc:8080/wx", "", ""},
		{"service port 80 by default", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "web"}}, "http://web.app.svc", "", ""},
		{"service without ports (ExternalName)", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "external", Port: ptr.To[int32](81)}}, "http://external.app.svc:81", "", ""},
		{"service lacks the port", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "bot"}}, "", ReasonInvalid, "spec.forward.service.port"},
		{"service missing", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "gone"}}, "", ReasonNotFound, "spec.forward.service"},
		{"own namespace named", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "web", Namespace: "app"}}, "http://web.app.svc", "", ""},
		{"namespaced account names another namespace", ns, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "bot", Namespace: "other"}}, "", ReasonInvalid, "spec.forward.service.namespace"},
		{"cluster account names any namespace", cluster, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "bot", Namespace: "other"}}, "http://bot.other.svc", "", ""},
		{"cluster account defaults to the operator's namespace", cluster, qrv1alpha1.Forward{Service: &qrv1alpha1.ServiceReference{Name: "bot"}}, "", ReasonNotFound, "spec.forward.service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Forward(context.Background(), r, tc.from, &tc.forward)
			check(t, got, err, tc.want, tc.reason, tc.field)
		})
	}
}

func TestSink(t *testing.T) {
	r := fakeReader(t)
	ns := Referrer{Namespace: "app"}
	ref := func(apiVersion, kind, name string) *qrv1alpha1.KReference {
		return &qrv1alpha1.KReference{APIVersion: apiVersion, Kind: kind, Name: name}
	}
	for _, tc := range []struct {
		name   string
		sink   qrv1alpha1.Destination
		want   string
		reason string
		field  string
	}{
		{"uri alone", qrv1alpha1.Destination{URI: "https://hooks.example.com/scans"}, "https://hooks.example.com/scans", "", ""},
		{"relative uri alone", qrv1alpha1.Destination{URI: "/scans"}, "", ReasonInvalid, "spec.sink.uri"},
		{"uri of another scheme", qrv1alpha1.Destination{URI: "ftp://x/"}, "", ReasonInvalid, "spec.sink.uri"},
		{"service on 80", qrv1alpha1.Destination{Ref: ref("v1", "Service", "web")}, "http://web.app.svc", "", ""},
		{"service with one other port", qrv1alpha1.Destination{Ref: ref("v1", "Service", "bot")}, "http://bot.app.svc:8080", "", ""},
		{"service with several ports, none 80", qrv1alpha1.Destination{Ref: ref("v1", "Service", "two")}, "", ReasonInvalid, "spec.sink.ref"},
		{"service and relative uri", qrv1alpha1.Destination{Ref: ref("v1", "Service", "bot"), URI: "/events?src=wechat"}, "http://bot.app.svc:8080/events?src=wechat", "", ""},
		{"service and absolute uri", qrv1alpha1.Destination{Ref: ref("v1", "Service", "bot"), URI: "http://x/"}, "", ReasonInvalid, "spec.sink.uri"},
		{"service missing", qrv1alpha1.Destination{Ref: ref("v1", "Service", "gone")}, "", ReasonNotFound, "spec.sink.ref"},
		{"broker's address", qrv1alpha1.Destination{Ref: ref("eventing.knative.dev/v1", "Broker", "default")}, "http://broker-ingress.knative-eventing.svc.cluster.local/app/default", "", ""},
		{"broker's address and relative uri", qrv1alpha1.Destination{Ref: ref("eventing.knative.dev/v1", "Broker", "default"), URI: "scans"}, "http://broker-ingress.knative-eventing.svc.cluster.local/app/scans", "", ""},
		{"broker not ready", qrv1alpha1.Destination{Ref: ref("eventing.knative.dev/v1", "Broker", "starting")}, "", ReasonNotReady, "spec.sink.ref"},
		{"broker missing", qrv1alpha1.Destination{Ref: ref("eventing.knative.dev/v1", "Broker", "gone")}, "", ReasonNotFound, "spec.sink.ref"},
		{"kind not readable", qrv1alpha1.Destination{Ref: ref("messaging.knative.dev/v1", "Channel", "c")}, "", ReasonForbidden, "spec.sink.ref"},
		{"bad apiVersion", qrv1alpha1.Destination{Ref: ref("a/b/c", "Broker", "default")}, "", ReasonInvalid, "spec.sink.ref.apiVersion"},
		{"other namespace", qrv1alpha1.Destination{Ref: &qrv1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "bot", Namespace: "other"}}, "", ReasonInvalid, "spec.sink.ref.namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sink(context.Background(), r, ns, &tc.sink)
			check(t, got, err, tc.want, tc.reason, tc.field)
		})
	}
}

func check(t *testing.T, got string, err error, want, reason, field string) {
	t.Helper()
	if reason == "" {
		if err != nil || got != want {
			t.Fatalf("got %q, %v; want %q", got, err, want)
		}
		return
	}
	e, ok := errors.AsType[*Error](err)
	if !ok || e.Reason != reason || e.Field != field || !strings.HasPrefix(e.Error(), field+": ") {
		t.Fatalf("got %q, %v; want a %s error on %s", got, err, reason, field)
	}
}
