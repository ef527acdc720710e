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

package kubectlplugin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/kubectlplugin"
)

// secretValues are the sample account's values: none may ever appear on screen.
var secretValues = map[string]string{
	v1alpha1.AccountKeyAppID:          "wx0000000000test01",
	v1alpha1.AccountKeyAppSecret:      "s3cr3t-app-secret-value",
	v1alpha1.AccountKeyToken:          "push-token-value",
	v1alpha1.AccountKeyEncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
}

func TestStatusOfAReadyCode(t *testing.T) {
	c := newCluster(t)
	// The Secret exists, so that nothing of it reaching the screen is the plugin's doing.
	c.secret(secretValues)
	c.account(c.ns, "official-account", v1alpha1.WeChatAccountStatus{
		AppID:      "wx0000000000test01",
		Conditions: readyCondition(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained),
		ForwardURL: "http://shop-app.shop.svc.cluster.local:8080/wechat",
		SinkURI:    "http://crm.shop.svc.cluster.local/scans",
	})
	code := temporary("spring-sale-poster", 123)
	code.Annotations = map[string]string{
		v1alpha1.AnnotationScans:          "1520",
		v1alpha1.AnnotationSubscribes:     "311",
		v1alpha1.AnnotationUniqueScanners: "1204",
		v1alpha1.AnnotationLastScanTime:   now.Add(-5 * time.Minute).Format(time.RFC3339),
	}
	c.create(code)
	code.Status.PreviousTickets = []v1alpha1.PreviousTicket{{Ticket: "gQHx7zwAAAAAAAAAAS5odHRwOi8vd2Vp", AppID: "wx0000000000test01", Scene: code.Spec.Scene, ExpiresAt: ptr.To(metav1.NewTime(now.Add(3 * time.Hour)))}}
	code.Status.SinkURI, code.Status.SinkMaxEvents = "http://login.shop.svc.cluster.local/", 100
	c.issue(code, now.Add(-2*time.Hour))
	c.event(code, now.Add(-170*time.Hour), "Normal", "Issued", "Ticket issued at an earlier time")
	c.event(code, now.Add(-2*time.Hour), "Normal", "Issued", code.Status.Conditions[0].Message)
	other := temporary("other", 7)
	c.create(other)
	c.event(other, now.Add(-time.Minute), "Warning", "WeChatError40013", "not about spring-sale-poster")

	out, errOut, exit := c.run("status", "spring-sale-poster")
	if exit != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q; want 0 and nothing", exit, errOut)
	}
	want := `Name:      ` + c.ns + `/spring-sale-poster
Type:      Temporary, scene id 123
Ready:     True, Issued: Ticket issued at 2026-11-22T10:00:00Z, valid until 2026-11-29T10:00:00Z; renewal at 2026-11-27T02:00:00Z
Ticket:    gQFG8DwAAAAAAAAAAS5odHRw…
           issued 2026-11-22T10:00:00Z (120m ago)
URL:       http://weixin.qq.com/q/02spring-sale-poster
Expires:   2026-11-29T10:00:00Z (in 6d22h)
Renewal:   2026-11-27T02:00:00Z (in 4d14h)
Previous:  1 earlier ticket still valid, scans of them still count
           gQHx7zwAAAAAAAAAAS5odHRw… expires 2026-11-22T15:00:00Z (in 3h)
Scans:     1520, 311 of them by new followers, 1204 distinct scanners; last 2026-11-22T11:55:00Z (5m ago)
Account:   WeChatAccount official-account, Ready: True
           AppID wx0000000000test01, credentials in Secret official-account (namespace ` + c.ns + `)
           pushes it does not answer go on to http://shop-app.shop.svc.cluster.local:8080/wechat
           scans are sent to http://crm.shop.svc.cluster.local/scans
           scans are sent to http://login.shop.svc.cluster.local/, in batches of up to 100 events
Events:
  LAST SEEN   TYPE     REASON   COUNT   MESSAGE
  7d2h ago    Normal   Issued   1       Ticket issued at an earlier time
  120m ago    Normal   Issued   1       Ticket issued at 2026-11-22T10:00:00Z, valid until 2026-11-29T10:00:00Z; renewal at 2026-11-27T02:00:00Z
`
	if out != want {
		t.Errorf("status screen:\n%s\nwant:\n%s", out, want)
	}
	for k, v := range secretValues {
		if k != v1alpha1.AccountKeyAppID && strings.Contains(out, v) {
			t.Errorf("the value of %s is on screen", k)
		}
	}
}

func TestStatusExitCodeWhenNotReady(t *testing.T) {
	c := newCluster(t)

	missing := temporary("no-account", 1)
	c.create(missing)
	c.setReady(missing, metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound, `spec.accountRef names WeChatAccount "official-account", which does not exist`)

	unreported := temporary("new", 2)
	c.create(unreported)

	stale := temporary("stale", 3)
	c.create(stale)
	c.issue(stale, now.Add(-time.Hour))
	stale.Spec.Scene.ID = ptr.To[int64](4)
	if err := env.Client.Update(t.Context(), stale); err != nil {
		t.Fatal(err)
	}

	for name, want := range map[string][]string{
		"no-account": {"Ready:     False, AccountNotFound: spec.accountRef names", "Ticket:    none yet", "Account:   WeChatAccount official-account: not found (create it, or point spec.accountRef at an existing account)"},
		"new":        {"Ready:     Unknown: the operator has not reported on this code yet"},
		"stale":      {"Ready:     True (Issued), but for generation 1 of the spec; the spec is at generation 2: the operator has not caught up"},
	} {
		out, _, exit := c.run("status", name)
		if exit != kubectlplugin.ExitNotReady {
			t.Errorf("%s: exit %d, want %d", name, exit, kubectlplugin.ExitNotReady)
		}
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s: screen lacks %q:\n%s", name, w, out)
			}
		}
	}

	_, errOut, exit := c.run("status", "absent")
	if want := "error: WeChatQRCode " + c.ns + "/absent not found\n"; exit != kubectlplugin.ExitFailure || errOut != want {
		t.Errorf("absent code: exit %d, stderr %q; want %d, %q", exit, errOut, kubectlplugin.ExitFailure, want)
	}
}

func TestStatusSaysWhyTheAccountIsNotReady(t *testing.T) {
	c := newCluster(t)
	c.account("", "plugin-status-shared", v1alpha1.WeChatAccountStatus{
		AppID: "wx0000000000test03",
		Conditions: []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonWeChatError(40164),
			Message: "WeChat refused the token request (errcode 40164): add the cluster's egress IP to the account's IP allowlist"}},
	})
	code := permanent("store-entrance", "42")
	code.Spec.AccountRef = v1alpha1.AccountReference{Kind: v1alpha1.KindClusterWeChatAccount, Name: "plugin-status-shared"}
	c.create(code)
	c.issue(code, now.Add(-41*24*time.Hour))

	out, _, exit := c.run("status", "store-entrance")
	if exit != 0 {
		t.Errorf("exit %d, want 0: a Ready code of an account that is not Ready is still Ready", exit)
	}
	for _, w := range []string{
		"Type:      Permanent, scene str \"42\"",
		"Expires:   never (Permanent: never re-issued)",
		"Scans:     none counted",
		"Account:   ClusterWeChatAccount plugin-status-shared, Ready: False (WeChatError40164)\n" +
			"           WeChat refused the token request (errcode 40164): add the cluster's egress IP to the account's IP allowlist\n" +
			"           AppID wx0000000000test03, credentials in Secret plugin-status-shared (the operator's namespace)\n",
		"Events:    none",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("screen lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "Renewal:") || strings.Contains(out, "go on to") || strings.Contains(out, "sent to") {
		t.Errorf("a Permanent code without forward or sink shows a renewal, a forward or a sink:\n%s", out)
	}
}

// TestStatusShowsTagsAndDelivery: a code that tags its scanners and has its own sink shows its
// tags with WeChat's ids from the account's registry, why it is not tagging, and how its events
// reach the sink.
func TestStatusShowsTagsAndDelivery(t *testing.T) {
	c := newCluster(t)
	c.account(c.ns, "official-account", v1alpha1.WeChatAccountStatus{
		AppID:      "wx0000000000test01",
		Conditions: readyCondition(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained),
		Tags: &v1alpha1.AccountTags{Used: 100, Limit: 100, Wanted: 2, Tags: []v1alpha1.TagUsage{
			{Name: "spring", ID: 101, Codes: 1}, {Name: "风筝节", Codes: 1}}},
	})
	code := temporary("kite-festival", 9)
	code.Spec.Tags = []v1alpha1.TagName{"spring", "风筝节"}
	code.Spec.TagOn = v1alpha1.TagOnNewFollowers
	code.Spec.Sink = &v1alpha1.Destination{URI: "http://crm.shop.svc.cluster.local/scans"}
	c.create(code)
	c.issue(code, now.Add(-2*time.Hour))
	code.Status.Conditions = append(code.Status.Conditions,
		metav1.Condition{Type: v1alpha1.ConditionTagging, Status: metav1.ConditionFalse, Reason: v1alpha1.ReasonTagLimitReached,
			Message: "风筝节 is not at WeChat: the account has WeChat's 100 tags", LastTransitionTime: metav1.NewTime(now)},
		metav1.Condition{Type: v1alpha1.ConditionSinkDelivering, Status: metav1.ConditionFalse, Reason: "SinkFailing",
			Message: "the sink answered 503", LastTransitionTime: metav1.NewTime(now)})
	code.Status.Tagging = &v1alpha1.TaggingStatus{Since: metav1.NewTime(now.Add(-time.Hour)), Tagged: 1204, InvalidOpenID: 2, FollowerTagLimit: 1}
	code.Status.SinkURI = code.Spec.Sink.URI
	code.Status.SinkDelivery = &v1alpha1.SinkDeliveryStatus{Backlog: 12, Expired: 3, LastError: "answered 503 Service Unavailable",
		OldestUndeliveredTime: at(now.Add(-90 * time.Second)), LastDeliveryTime: at(now.Add(-2 * time.Minute)), ObservedTime: metav1.NewTime(now)}
	if err := env.Client.Status().Update(context.Background(), code); err != nil {
		t.Fatal(err)
	}

	out, _, exit := c.run("status", "kite-festival")
	if exit != 0 {
		t.Fatalf("exit %d; want 0 (tagging and delivery are not part of Ready)\n%s", exit, out)
	}
	for _, want := range []string{
		"Tags:      spring, 风筝节 (new followers only)\n" +
			"           1204 scanners tagged, 3 skipped since 2026-11-22T11:00:00Z (60m ago) (invalid OpenID 2, another account's 0, at WeChat's 20 tags 1)\n" +
			"           Tagging: False (TagLimitReached): 风筝节 is not at WeChat: the account has WeChat's 100 tags\n",
		"Delivery:  12 waiting, the oldest scanned 2026-11-22T11:58:30Z (90s ago); last delivered 2026-11-22T11:58:00Z (2m ago); 3 expired\n" +
			"           last error: answered 503 Service Unavailable\n" +
			"           SinkDelivering: False (SinkFailing): the sink answered 503\n",
		"           tags at WeChat 100/100 (1 missing): spring (id 101), 风筝节 (not at WeChat yet)\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status screen lacks\n%s\nin\n%s", want, out)
		}
	}
}
