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
	"maps"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
)

func (h *harness) service(ns, name string, port int32) {
	h.t.Helper()
	h.must(h.c.Create(context.Background(), &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: port}}},
	}))
}

// resolvedIs is a check of an account's or a code's condition of that type.
func resolvedIs(conds []metav1.Condition, conditionType string, status metav1.ConditionStatus, reason string) bool {
	for _, c := range conds {
		if c.Type == conditionType {
			return c.Status == status && c.Reason == reason
		}
	}
	return false
}

// projected is the push config entry of appID, once cond holds for it.
func (h *harness) projected(appID, what string, cond func(pushconfig.Account) bool) {
	h.t.Helper()
	h.waitPushConfig(what, func(data map[string][]byte) bool {
		got, _ := pushconfig.Decode(data)
		for _, a := range got {
			if a.AppID == appID {
				return cond(a)
			}
		}
		return false
	})
}

// TestAccountDestinationsResolve: a ClusterWeChatAccount whose spec.forward names a Service in
// the operator's namespace and whose spec.sink names one in another namespace shows both URLs
// in status with True conditions, and the projection the callback server reads carries them
// with the forward timeout. A WeChatAccount naming Services that do not exist yet shows both
// False NotFound with no URL (nothing is sent to a stale address), one warning Event each, and
// resolves as soon as the Services are created: they are watched, nobody waits for the
// minute's requeue (whose timer runs on real time here, and never fires within the test).
func TestAccountDestinationsResolve(t *testing.T) {
	h := newHarness(t, 2)
	app := h.ns[1]
	push := func(ns, name string) (appID string) {
		appID, secret := h.account()
		h.secret(ns, name, map[string]string{"appID": appID, "appSecret": secret, "token": "t-" + name, "encodingAESKey": aesKey()})
		return appID
	}

	h.service(h.operatorNS, "bot", 8080)
	h.service(app, "scans", 80)
	clusterAppID := push(h.operatorNS, "cluster-acct")
	cluster := "fwd-" + randomHex(8)
	h.wechatAccount("", cluster, "cluster-acct", func(s *v1alpha1.WeChatAccountSpec) {
		s.Forward = &v1alpha1.Forward{Service: &v1alpha1.ServiceReference{Name: "bot", Port: ptr.To[int32](8080), Path: "/wx"},
			Timeout: &metav1.Duration{Duration: 2 * time.Second}}
		s.Sink = &v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "scans", Namespace: app}, URI: "/events",
			Batch: &v1alpha1.Batch{MaxEvents: 100}}
	})
	wantForward := "http://bot." + h.operatorNS + ".svc:8080/wx"
	wantSink := "http://scans." + app + ".svc/events"
	ca := &v1alpha1.ClusterWeChatAccount{}
	h.waitAccount(key("", cluster), ca, "resolving forward and sink", func(a v1alpha1.Account) bool {
		st := a.AccountStatus()
		return st.ForwardURL == wantForward && st.SinkURI == wantSink && st.SinkMaxEvents == 100 &&
			resolvedIs(st.Conditions, v1alpha1.ConditionForwardResolved, metav1.ConditionTrue, v1alpha1.ReasonResolved) &&
			resolvedIs(st.Conditions, v1alpha1.ConditionSinkResolved, metav1.ConditionTrue, v1alpha1.ReasonResolved)
	})
	h.projected(clusterAppID, "carried the cluster account's forward and sink", func(a pushconfig.Account) bool {
		return a.ForwardURL == wantForward && a.SinkURI == wantSink && a.SinkMaxEvents == 100 && a.ForwardTimeout == 2*time.Second
	})

	// Named before they exist.
	localAppID := push(app, "local")
	h.wechatAccount(app, "local", "local", func(s *v1alpha1.WeChatAccountSpec) {
		s.Forward = &v1alpha1.Forward{Service: &v1alpha1.ServiceReference{Name: "later-bot"}}
		s.Sink = &v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "later-scans"}}
	})
	la := &v1alpha1.WeChatAccount{}
	h.waitAccount(key(app, "local"), la, "saying its Services are missing", func(a v1alpha1.Account) bool {
		st := a.AccountStatus()
		return st.ForwardURL == "" && st.SinkURI == "" &&
			resolvedIs(st.Conditions, v1alpha1.ConditionForwardResolved, metav1.ConditionFalse, "NotFound") &&
			resolvedIs(st.Conditions, v1alpha1.ConditionSinkResolved, metav1.ConditionFalse, "NotFound")
	})
	for _, c := range []struct{ typ, field, service string }{
		{v1alpha1.ConditionForwardResolved, "spec.forward.service", "later-bot"},
		{v1alpha1.ConditionSinkResolved, "spec.sink.ref", "later-scans"},
	} {
		msg := la.Status.Condition(c.typ).Message
		if !containsAll(msg, c.field, app+"/"+c.service, "not found", "create it") {
			t.Errorf("%s message %q does not name the field, the Service and what to do", c.typ, msg)
		}
	}
	// Not Ready's business: the credentials are fine.
	if !accountReadyIs(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained)(la) {
		t.Errorf("Ready %+v, want True: a missing forward or sink is not a credentials problem", la.Status.Condition(v1alpha1.ConditionReady))
	}
	h.accountEventsAre(key(app, "local"), map[string]int{v1alpha1.EventForwardUnresolved: 1, v1alpha1.EventSinkUnresolved: 1})
	h.projected(localAppID, "carried the local account without a forward or a sink", func(a pushconfig.Account) bool {
		return a.ForwardURL == "" && a.SinkURI == ""
	})

	h.service(app, "later-bot", 80)
	h.service(app, "later-scans", 80)
	wantForward, wantSink = "http://later-bot."+app+".svc", "http://later-scans."+app+".svc"
	h.waitAccount(key(app, "local"), la, "resolving once its Services exist", func(a v1alpha1.Account) bool {
		st := a.AccountStatus()
		return st.ForwardURL == wantForward && st.SinkURI == wantSink &&
			resolvedIs(st.Conditions, v1alpha1.ConditionForwardResolved, metav1.ConditionTrue, v1alpha1.ReasonResolved) &&
			resolvedIs(st.Conditions, v1alpha1.ConditionSinkResolved, metav1.ConditionTrue, v1alpha1.ReasonResolved)
	})
	h.projected(localAppID, "carried the local account's forward and sink", func(a pushconfig.Account) bool {
		return a.ForwardURL == wantForward && a.SinkURI == wantSink
	})

	// The Service goes: the URL goes with it.
	h.must(h.c.Delete(context.Background(), &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: app, Name: "later-bot"}}))
	h.waitAccount(key(app, "local"), la, "dropping the forward of a deleted Service", func(a v1alpha1.Account) bool {
		st := a.AccountStatus()
		return st.ForwardURL == "" && resolvedIs(st.Conditions, v1alpha1.ConditionForwardResolved, metav1.ConditionFalse, "NotFound")
	})
	h.projected(localAppID, "dropped the forward", func(a pushconfig.Account) bool { return a.ForwardURL == "" && a.SinkURI == wantSink })
	// One warning each time a reference stopped resolving.
	h.accountEventsAre(key(app, "local"), map[string]int{v1alpha1.EventForwardUnresolved: 2, v1alpha1.EventSinkUnresolved: 1})
}

// accountEventsAre waits until the WeChatAccount has want Events of each reason (Events are
// recorded asynchronously), and fails if it has more or never gets there.
func (h *harness) accountEventsAre(k types.NamespacedName, want map[string]int) {
	h.t.Helper()
	got := map[string]int{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		for reason, n := range want {
			if got[reason] = len(h.accountEvents(k, reason)); got[reason] > n {
				return false, fmt.Errorf("too many")
			}
		}
		return maps.Equal(got, want), nil
	})
	if err != nil {
		h.t.Errorf("Events of %s by reason: %v, want %v", k, got, want)
	}
}

// TestCodeSinkResolves: a code's spec.sink resolves into status.sinkURI with SinkResolved True.
// One naming a Service that does not exist is issued all the same (Ready True, no Reconciling or
// Stalled, so kstatus and Argo CD read it as healthy), with SinkResolved False, no sinkURI (the
// callback server sends its scans to the account's sink only) and one warning Event; it resolves
// when the Service appears. A code may not point at another namespace.
func TestCodeSinkResolves(t *testing.T) {
	h := newHarness(t, 2)
	ns := h.ns[1]
	h.accountSecret(ns, "acct")
	h.service(ns, "login", 8080)
	withSink := func(name string, sink v1alpha1.Destination) {
		spec := temporarySpec("acct", strScene(name), time.Hour, 0)
		spec.Sink = &sink
		h.create(ns, name, spec)
	}
	svc := func(name, namespace string) *v1alpha1.KReference {
		return &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: name, Namespace: namespace}
	}
	sinkIs := func(status metav1.ConditionStatus, reason, uri string) func(*v1alpha1.WeChatQRCode) bool {
		return func(c *v1alpha1.WeChatQRCode) bool {
			return c.IsReady() && c.Status.SinkURI == uri && resolvedIs(c.Status.Conditions, v1alpha1.ConditionSinkResolved, status, reason)
		}
	}

	withSink("resolved", v1alpha1.Destination{Ref: svc("login", ""), URI: "/scans"})
	h.waitFor(key(ns, "resolved"), 30*time.Second, "resolving its sink", sinkIs(metav1.ConditionTrue, v1alpha1.ReasonResolved, "http://login."+ns+".svc:8080/scans"))
	withSink("by-uri", v1alpha1.Destination{URI: "https://hooks.example.com/scans", Batch: &v1alpha1.Batch{MaxEvents: 50}})
	if c := h.waitFor(key(ns, "by-uri"), 30*time.Second, "taking its sink URI", sinkIs(metav1.ConditionTrue, v1alpha1.ReasonResolved, "https://hooks.example.com/scans")); c.Status.SinkMaxEvents != 50 {
		t.Errorf("status.sinkMaxEvents %d, want spec.sink.batch.maxEvents 50", c.Status.SinkMaxEvents)
	}

	withSink("elsewhere", v1alpha1.Destination{Ref: svc("login", h.ns[0])})
	c := h.waitFor(key(ns, "elsewhere"), 30*time.Second, "refusing another namespace", sinkIs(metav1.ConditionFalse, "Invalid", ""))
	if msg := c.Status.Condition(v1alpha1.ConditionSinkResolved).Message; !containsAll(msg, "spec.sink.ref.namespace", ns) {
		t.Errorf("message %q does not name the field and the namespace allowed", msg)
	}

	withSink("later", v1alpha1.Destination{Ref: svc("later", "")})
	c = h.waitFor(key(ns, "later"), 30*time.Second, "saying its sink is missing", sinkIs(metav1.ConditionFalse, "NotFound", ""))
	expectConditions(t, c, "", "")
	if msg := c.Status.Condition(v1alpha1.ConditionSinkResolved).Message; !containsAll(msg, "spec.sink.ref", ns+"/later", "not found") {
		t.Errorf("message %q does not name the field and the Service", msg)
	}
	h.waitEvent(key(ns, "later"), corev1.EventTypeWarning, v1alpha1.EventSinkUnresolved, "later")
	h.service(ns, "later", 80)
	h.waitFor(key(ns, "later"), 30*time.Second, "resolving once the Service exists", sinkIs(metav1.ConditionTrue, v1alpha1.ReasonResolved, "http://later."+ns+".svc"))
	unresolved := 0
	for _, e := range h.events(key(ns, "later")) {
		if e.Reason == v1alpha1.EventSinkUnresolved {
			unresolved++
		}
	}
	if unresolved != 1 {
		t.Errorf("%d SinkUnresolved Events, want 1", unresolved)
	}
	if ticket := c.Status.Ticket; ticket == "" || !strings.HasPrefix(c.Status.URL, "http") {
		t.Errorf("a missing sink kept the code from its ticket: %+v", c.Status)
	}
}
