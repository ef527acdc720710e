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
	c.secret(secretValues)
	code := temporary("spring-sale-poster", 123)
	code.Annotations = map[string]string{
		v1alpha1.AnnotationScans:        "1520",
		v1alpha1.AnnotationSubscribes:   "311",
		v1alpha1.AnnotationLastScanTime: now.Add(-5 * time.Minute).Format(time.RFC3339),
	}
	c.create(code)
	code.Status.PreviousTickets = []v1alpha1.PreviousTicket{{Ticket: "gQHx7zwAAAAAAAAAAS5odHRwOi8vd2Vp", AppID: "wx0000000000test01", Scene: code.Spec.Scene, ExpiresAt: ptr.To(metav1.NewTime(now.Add(3 * time.Hour)))}}
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
Scans:     1520, 311 of them by new followers; last 2026-11-22T11:55:00Z (5m ago)
Account:   Secret official-account, keys: appID, appSecret, encodingAESKey, token
           AppID wx0000000000test01
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

	missing := temporary("no-secret", 1)
	c.create(missing)
	c.setReady(missing, metav1.ConditionFalse, "AccountSecretMissing", `Secret "official-account" not found: create it with the keys appID and appSecret`)

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
		"no-secret": {"Ready:     False, AccountSecretMissing: Secret \"official-account\" not found", "Ticket:    none yet", "Account:   Secret official-account: not found"},
		"new":       {"Ready:     Unknown: the operator has not reported on this code yet"},
		"stale":     {"Ready:     True (Issued), but for generation 1 of the spec; the spec is at generation 2: the operator has not caught up"},
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

func TestStatusNamesMissingSecretKeys(t *testing.T) {
	c := newCluster(t)
	c.secret(map[string]string{v1alpha1.AccountKeyAppID: "wx0000000000test01", v1alpha1.AccountKeyToken: "push-token-value"})
	code := permanent("store-entrance", "42")
	c.create(code)
	c.issue(code, now.Add(-41*24*time.Hour))

	out, _, exit := c.run("status", "store-entrance")
	if exit != 0 {
		t.Errorf("exit %d, want 0: a Ready code with a Secret problem is still Ready", exit)
	}
	for _, w := range []string{
		"Type:      Permanent, scene str \"42\"",
		"Expires:   never (Permanent: never re-issued)",
		"Account:   Secret official-account, keys: appID, token\n",
		"no value for appSecret: the manager (to issue tickets) needs it",
		"Scans:     none counted",
		"Events:    none",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("screen lacks %q:\n%s", w, out)
		}
	}
	if strings.Contains(out, "Renewal:") || strings.Contains(out, "callback server") {
		t.Errorf("a Permanent code with a token shows a renewal or a callback problem:\n%s", out)
	}
}
