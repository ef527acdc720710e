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
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// codeStates are the states of a WeChatQRCode; each drives a code of its own name.
func codeStates() []state {
	return []state{
		{name: "created", want: status.InProgressStatus, drive: func(h *harness) *unstructured.Unstructured {
			// The schema defaults status.observedGeneration to 0: without it kstatus would read
			// an object with no conditions at all as Current, before the first reconcile.
			h.accountSecret("created")
			return h.create("created", permanent("created", 1))
		}},
		{name: "ready", want: status.CurrentStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.accountSecret("ready")
			h.create("ready", permanent("ready", 1))
			return h.waitReady("ready", metav1.ConditionTrue, v1alpha1.ReasonIssued)
		}},
		{name: "spec-changed", want: status.InProgressStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.accountSecret("changed")
			h.create("changed", permanent("changed", 1))
			u := h.waitReady("changed", metav1.ConditionTrue, v1alpha1.ReasonIssued)
			h.must(unstructured.SetNestedField(u.Object, int64(2), "spec", "scene", "id"))
			// The answer to the update: the new generation beside the status of the old one.
			h.must(h.c.Update(context.Background(), u))
			return u
		}},
		{name: "account-secret-missing", want: status.FailedStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.create("orphan", permanent("no-such-secret", 1))
			return h.waitReady("orphan", metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound)
		}},
		{name: "account-secret-invalid", want: status.FailedStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.must(h.c.Create(context.Background(), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "half"},
				StringData: map[string]string{v1alpha1.AccountKeyAppID: "wxhalf"},
			}))
			h.account("half")
			h.create("half", permanent("half", 1))
			return h.waitReady("half", metav1.ConditionFalse, v1alpha1.ReasonAccountNotReady)
		}},
		failing("not-allowlisted-40164", "", wechattest.Fault{Errcode: 40164}, status.FailedStatus),
		failing("invalid-appid-40013", "", wechattest.Fault{Errcode: 40013}, status.FailedStatus),
		failing("busy-minus1", wechattest.EndpointCreate, wechattest.Fault{Errcode: -1}, status.InProgressStatus),
		failing("unreachable-502", wechattest.EndpointCreate, wechattest.Fault{HTTPStatus: http.StatusBadGateway}, status.InProgressStatus),
		failing("quota-45009", wechattest.EndpointCreate, wechattest.Fault{Errcode: 45009}, status.InProgressStatus),
		// A failing renewal leaves the ticket working: Ready stays True (Renewing), and the
		// abnormal condition decides. kstatus puts Reconciling and Stalled before Ready, so a
		// renewal retrying by itself is InProgress and one only a human can fix is Failed,
		// though the posters still work until the ticket expires.
		renewing("renewal-busy-minus1", wechattest.Fault{Errcode: -1}, status.InProgressStatus),
		renewing("renewal-not-allowlisted-40164", wechattest.Fault{Errcode: 40164}, status.FailedStatus),
		{name: "scene-conflict", want: status.FailedStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.accountSecret("shared")
			h.create("holder", permanent("shared", 7))
			h.waitReady("holder", metav1.ConditionTrue, v1alpha1.ReasonIssued)
			h.create("latecomer", permanent("shared", 7))
			return h.waitReady("latecomer", metav1.ConditionFalse, v1alpha1.ReasonSceneConflict)
		}},
		// A sink that does not resolve is the code's own SinkResolved condition, outside Ready,
		// Reconciling and Stalled: the ticket works, so kstatus and Argo CD read it as healthy.
		{name: "sink-missing", want: status.CurrentStatus, drive: func(h *harness) *unstructured.Unstructured {
			h.accountSecret("sinkless")
			spec := permanent("sinkless", 1)
			spec.Sink = &v1alpha1.Destination{Ref: &v1alpha1.KReference{APIVersion: "v1", Kind: "Service", Name: "no-such-service"}}
			h.create("sinkless", spec)
			u := h.waitReady("sinkless", metav1.ConditionTrue, v1alpha1.ReasonIssued)
			h.mustHaveCondition(u, v1alpha1.ConditionSinkResolved, metav1.ConditionFalse, "NotFound")
			return u
		}},
		{name: "deleting", want: status.TerminatingStatus, drive: func(h *harness) *unstructured.Unstructured {
			// A finalizer of the test's holds the code in deletion; the envtest API server
			// goes with the test, so nobody removes it.
			h.accountSecret("leaving")
			h.create("leaving", permanent("leaving", 1), "health.test.qrcode-operator.io/hold")
			u := h.waitReady("leaving", metav1.ConditionTrue, v1alpha1.ReasonIssued)
			h.must(h.c.Delete(context.Background(), u))
			return h.get("leaving")
		}},
	}
}

// failing: every call to endpoint ("" for any) fails with f from the first attempt on.
func failing(name, endpoint string, f wechattest.Fault, want status.Status) state {
	return state{name: name, want: want, drive: func(h *harness) *unstructured.Unstructured {
		h.fake.SetFaultRate(endpoint, 1, f)
		h.accountSecret(name)
		h.create(name, permanent(name, 1))
		if endpoint == "" {
			// The account's token check meets the fault first: the code waits for its account.
			return h.waitReady(name, metav1.ConditionFalse, v1alpha1.ReasonAccountNotReady)
		}
		return h.waitReady(name, metav1.ConditionFalse, reasonOf(f))
	}}
}

// renewing: a Temporary code gets its ticket, then every renewal fails with f.
func renewing(name string, f wechattest.Fault, want status.Status) state {
	return state{name: name, want: want, drive: func(h *harness) *unstructured.Unstructured {
		h.accountSecret(name)
		h.create(name, temporary(name, 1))
		u := h.waitReady(name, metav1.ConditionTrue, v1alpha1.ReasonIssued)
		h.fake.SetFaultRate(wechattest.EndpointCreate, 1, f)
		h.clock.Step(time.Minute)
		patch := client.MergeFrom(u.DeepCopy())
		u.SetAnnotations(map[string]string{v1alpha1.AnnotationRenewRequestedAt: h.clock.Now().UTC().Format(time.RFC3339)})
		h.must(h.c.Patch(context.Background(), u, patch))
		return h.waitReady(name, metav1.ConditionTrue, v1alpha1.ReasonRenewing)
	}}
}

func reasonOf(f wechattest.Fault) string {
	if f.HTTPStatus != 0 {
		return v1alpha1.ReasonWeChatUnreachable
	}
	if f.Errcode == 45009 {
		return v1alpha1.ReasonQuotaExhausted
	}
	return v1alpha1.ReasonWeChatError(f.Errcode)
}
