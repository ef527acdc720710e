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

// Package destination resolves where the operator sends HTTP on an account's or a code's behalf
// to URLs: spec.forward (the application behind the account's server URL) and spec.sink (where
// scan events go, Knative's duckv1.Destination). The manager resolves them and writes the URLs
// into status and the projected push Secret, so that the internet-facing callback server never
// reads Services or other objects.
//
// RBAC the caller needs (markers belong on the reconciler that calls these functions, since
// controller-gen reads ./controllers):
//   - get on services (core), through an uncached reader (mgr.GetAPIReader()): a Service is
//     read only when an object names it. The manager also watches Services' metadata (list and
//     watch) so that a reference resolves again when its Service appears (see Services).
//   - get on each Addressable kind a sink may name, e.g. eventing.knative.dev brokers,
//     messaging.knative.dev channels, serving.knative.dev services. Optional: without it a ref to
//     that kind fails with a message that says which right is missing, and nothing else does.
package destination

import (
	"context"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Referrer is the object that holds the reference.
type Referrer struct {
	// Namespace is where a reference without a namespace points: the referrer's own, or the
	// operator's for a cluster-scoped referrer.
	Namespace string
	// Cluster is true for a cluster-scoped referrer (ClusterWeChatAccount), which may name any
	// namespace. A namespaced one may name only its own: otherwise anyone who can create a
	// WeChatAccount could make the operator send pushes to another tenant's Services.
	Cluster bool
}

// Reasons of an Error, fit for a condition's reason.
const (
	ReasonInvalid     = "Invalid"
	ReasonNotFound    = "NotFound"
	ReasonForbidden   = "Forbidden"
	ReasonUnknownKind = "UnknownKind"
	ReasonNotReady    = "NotAddressable"
)

// Error is why a reference does not resolve: the field, a condition reason and what to do.
type Error struct {
	Field   string
	Reason  string
	Message string
}

func (e *Error) Error() string { return e.Field + ": " + e.Message }

// Forward resolves spec.forward to the URL pushes go on to: a Service becomes
// http://<name>.<namespace>.svc:<port><path> once the Service exists and has that port; a URL is
// taken as it is (the API validated it).
func Forward(ctx context.Context, r client.Reader, from Referrer, f *qrv1alpha1.Forward) (string, error) {
	if f.Service == nil {
		return f.URL, nil
	}
	const field = "spec.forward.service"
	ref := f.Service
	ns, err := namespace(from, ref.Namespace, field)
	if err != nil {
		return "", err
	}
	port := int32(80)
	if ref.Port != nil {
		port = *ref.Port
	}
	svc, err := getService(ctx, r, ns, ref.Name, field)
	if err != nil {
		return "", err
	}
	if ports := servicePorts(svc); len(ports) > 0 && !slices.Contains(ports, port) {
		return "", &Error{Field: field + ".port", Reason: ReasonInvalid,
			Message: fmt.Sprintf("Service %s/%s has no port %d (it has %s): set spec.forward.service.port to one of them", ns, ref.Name, port, joinPorts(ports))}
	}
	return serviceURL(ns, ref.Name, port) + ref.Path, nil
}

// Sink resolves a sink (spec.sink of an account or a code) as Knative does: uri alone is taken as
// it is; ref is the URL of a core Service, or status.address.url of any other kind (an
// Addressable); with both, uri is relative to ref's URL.
func Sink(ctx context.Context, r client.Reader, from Referrer, d *qrv1alpha1.Destination) (string, error) {
	const field = "spec.sink"
	var uri *url.URL
	if d.URI != "" {
		var err error
		if uri, err = url.Parse(d.URI); err != nil {
			return "", &Error{Field: field + ".uri", Reason: ReasonInvalid, Message: "not a URI: " + err.Error()}
		}
	}
	if d.Ref == nil {
		if uri == nil || !uri.IsAbs() || (uri.Scheme != "http" && uri.Scheme != "https") {
			return "", &Error{Field: field + ".uri", Reason: ReasonInvalid, Message: "without spec.sink.ref it must be an absolute http(s) URL"}
		}
		return uri.String(), nil
	}
	if uri != nil && uri.IsAbs() {
		return "", &Error{Field: field + ".uri", Reason: ReasonInvalid, Message: "with spec.sink.ref it must be relative (a path), or remove ref"}
	}
	base, err := refURL(ctx, r, from, d.Ref, field+".ref")
	if err != nil {
		return "", err
	}
	if uri == nil {
		return base.String(), nil
	}
	return base.ResolveReference(uri).String(), nil
}

// Services are the Services a spec's forward and sink name, as namespace/name, for an index that
// maps a Service's events to the objects that name it (a reference it may not make included: it
// is reported when resolved).
func Services(from Referrer, f *qrv1alpha1.Forward, d *qrv1alpha1.Destination) []string {
	var keys []string
	add := func(ns, name string) {
		if ns == "" {
			ns = from.Namespace
		}
		keys = append(keys, ns+"/"+name)
	}
	if f != nil && f.Service != nil {
		add(f.Service.Namespace, f.Service.Name)
	}
	if d != nil && d.Ref != nil && d.Ref.Kind == "Service" && d.Ref.APIVersion == "v1" {
		add(d.Ref.Namespace, d.Ref.Name)
	}
	return keys
}

// refURL is the address of a sink's ref.
func refURL(ctx context.Context, r client.Reader, from Referrer, ref *qrv1alpha1.KReference, field string) (*url.URL, error) {
	ns, err := namespace(from, ref.Namespace, field)
	if err != nil {
		return nil, err
	}
	gv, err := schema.ParseGroupVersion(ref.APIVersion)
	if err != nil {
		return nil, &Error{Field: field + ".apiVersion", Reason: ReasonInvalid, Message: err.Error()}
	}
	if gv.Group == "" && ref.Kind == "Service" {
		svc, err := getService(ctx, r, ns, ref.Name, field)
		if err != nil {
			return nil, err
		}
		port, err := sinkPort(svc, field)
		if err != nil {
			return nil, err
		}
		return url.Parse(serviceURL(ns, ref.Name, port))
	}
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(gv.WithKind(ref.Kind))
	what := fmt.Sprintf("%s %s/%s", ref.Kind, ns, ref.Name)
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: ref.Name}, u); err != nil {
		return nil, getError(err, field, what, gv.WithResource(strings.ToLower(ref.Kind)+"s"))
	}
	address, _, _ := unstructured.NestedString(u.Object, "status", "address", "url")
	if address == "" {
		return nil, &Error{Field: field, Reason: ReasonNotReady,
			Message: what + " has no status.address.url: it is not ready yet, or not an Addressable (give a Service, a Knative Broker or Channel, or spec.sink.uri)"}
	}
	addr, err := url.Parse(address)
	if err != nil || !addr.IsAbs() {
		return nil, &Error{Field: field, Reason: ReasonNotReady, Message: what + " has a status.address.url that is not an absolute URL"}
	}
	return addr, nil
}

// namespace is where a reference points, if the referrer may point there.
func namespace(from Referrer, ns, field string) (string, error) {
	switch {
	case ns == "":
		return from.Namespace, nil
	case ns != from.Namespace && !from.Cluster:
		return "", &Error{Field: field + ".namespace", Reason: ReasonInvalid,
			Message: fmt.Sprintf("must be %s, the referrer's own namespace (leave it unset); only a ClusterWeChatAccount may name another namespace", from.Namespace)}
	}
	return ns, nil
}

func getService(ctx context.Context, r client.Reader, ns, name, field string) (*corev1.Service, error) {
	svc := &corev1.Service{}
	if err := r.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, svc); err != nil {
		return nil, getError(err, field, fmt.Sprintf("Service %s/%s", ns, name), corev1.SchemeGroupVersion.WithResource("services"))
	}
	return svc, nil
}

// getError says what to do about a failed read; other errors (the API server unreachable) are
// returned as they are, for a retry.
func getError(err error, field, what string, gvr schema.GroupVersionResource) error {
	switch {
	case apierrors.IsNotFound(err):
		return &Error{Field: field, Reason: ReasonNotFound, Message: what + " not found: create it or correct the reference"}
	case apierrors.IsForbidden(err):
		return &Error{Field: field, Reason: ReasonForbidden,
			Message: fmt.Sprintf("the operator may not read %s: grant its manager get on %s (see docs/gateway-and-sinks.md)", what, gvr.GroupResource())}
	case meta.IsNoMatchError(err):
		return &Error{Field: field, Reason: ReasonUnknownKind,
			Message: fmt.Sprintf("the API server serves no %s in %s: install its CRD or correct apiVersion and kind", gvr.Resource, gvr.GroupVersion())}
	}
	return err
}

// sinkPort is the port of a Service's URL as a sink: 80 when it has it (or lists none, as an
// ExternalName Service), else its only port; a Service with several ports and no 80 is ambiguous.
func sinkPort(svc *corev1.Service, field string) (int32, error) {
	ports := servicePorts(svc)
	switch {
	case len(ports) == 0 || slices.Contains(ports, 80):
		return 80, nil
	case len(ports) == 1:
		return ports[0], nil
	}
	return 0, &Error{Field: field, Reason: ReasonInvalid,
		Message: fmt.Sprintf("Service %s/%s has several ports (%s) and none is 80: give spec.sink.uri as a full URL instead", svc.Namespace, svc.Name, joinPorts(ports))}
}

func servicePorts(svc *corev1.Service) []int32 {
	var ports []int32
	for _, p := range svc.Spec.Ports {
		ports = append(ports, p.Port)
	}
	return ports
}

func joinPorts(ports []int32) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// serviceURL is a Service's address inside the cluster, the port left out when it is HTTP's own.
func serviceURL(ns, name string, port int32) string {
	u := "http://" + name + "." + ns + ".svc"
	if port != 80 {
		u += ":" + strconv.Itoa(int(port))
	}
	return u
}
