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

package health

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// accountStates are the states of an account of kind (WeChatAccount or ClusterWeChatAccount);
// each drives an account of its own, named after the test's namespace and the kind so that
// cluster-scoped names never meet another test's, nor the Secrets of the other kind's states.
func accountStates(kind string) []state {
	name := func(h *harness, s string) string { return h.ns + "-" + strings.ToLower(kind) + "-" + s }
	// ready creates a Secret and an account of it, and waits for the token check to pass.
	ready := func(h *harness, s string) *unstructured.Unstructured {
		h.secret(name(h, s), h.credentials())
		h.createAccount(kind, name(h, s), name(h, s))
		return h.waitKind(kind, name(h, s), metav1.ConditionTrue, v1alpha1.ReasonTokenObtained)
	}
	failingToken := func(s string, f wechattest.Fault, want status.Status) state {
		return state{name: s, want: want, drive: func(h *harness) *unstructured.Unstructured {
			h.fake.SetFaultRate(wechattest.EndpointStableToken, 1, f)
			h.secret(name(h, s), h.credentials())
			h.createAccount(kind, name(h, s), name(h, s))
			return h.waitKind(kind, name(h, s), metav1.ConditionFalse, v1alpha1.ReasonWeChatError(f.Errcode))
		}}
	}
	return []state{
		{name: "created", want: status.InProgressStatus, drive: func(h *harness) *unstructured.Unstructured {
			return h.createAccount(kind, name(h, "created"), "no-such-secret")
		}},
		{name: "ready", want: status.CurrentStatus, drive: func(h *harness) *unstructured.Unstructured {
			return ready(h, "ready")
		}},
		{name: "spec-changed", want: status.InProgressStatus, drive: func(h *harness) *unstructured.Unstructured {
			u := ready(h, "changed")
			h.must(unstructured.SetNestedField(u.Object, int64(10), "spec", "permanentCodeLimit"))
			h.must(h.c.Update(context.Background(), u))
			return u
		}},
		// spec.forward and spec.sink naming missing Services: their own conditions False, Ready
		// untouched, so the account stays healthy (its codes issue and its scans count).
		{name: "destinations-missing", want: status.CurrentStatus, drive: func(h *harness) *unstructured.Unstructured {
			u := ready(h, "nowhere")
			h.must(unstructured.SetNestedField(u.Object, "no-such-bot", "spec", "forward", "service", "name"))
			h.must(unstructured.SetNestedField(u.Object, map[string]any{"apiVersion": "v1", "kind": "Service", "name": "no-such-sink"}, "spec", "sink", "ref"))
			h.must(h.c.Update(context.Background(), u))
			u = h.waitKind(kind, name(h, "nowhere"), metav1.ConditionTrue, v1alpha1.ReasonTokenObtained)
			h.mustHaveCondition(u, v1alpha1.ConditionForwardResolved, metav1.ConditionFalse, "NotFound")
			h.mustHaveCondition(u, v1alpha1.ConditionSinkResolved, metav1.ConditionFalse, "NotFound")
			return u
		}},
		{name: "secret-missing", want: status.FailedStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.createAccount(kind, name(h, "missing"), "no-such-secret")
			return h.waitKind(kind, name(h, "missing"), metav1.ConditionFalse, v1alpha1.ReasonAccountSecretMissing)
		}},
		failingToken("not-allowlisted-40164", wechattest.Fault{Errcode: 40164}, status.FailedStatus),
		failingToken("invalid-appsecret-40125", wechattest.Fault{Errcode: 40125}, status.FailedStatus),
		failingToken("busy-minus1", wechattest.Fault{Errcode: -1}, status.InProgressStatus),
		{name: "duplicate-appid", want: status.FailedStatus, drive: func(h *harness) *unstructured.Unstructured {
			// Created in this order, and named in this order too, so that "a" is the older even
			// when both have the same creation second.
			data := h.credentials()
			h.secret(name(h, "dup"), data)
			h.createAccount(kind, name(h, "dup-a"), name(h, "dup"))
			h.waitKind(kind, name(h, "dup-a"), metav1.ConditionTrue, v1alpha1.ReasonTokenObtained)
			h.createAccount(kind, name(h, "dup-b"), name(h, "dup"))
			return h.waitKind(kind, name(h, "dup-b"), metav1.ConditionFalse, v1alpha1.ReasonDuplicateAppID)
		}},
	}
}
