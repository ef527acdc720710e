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
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// account creates an account (a ClusterWeChatAccount when ns is "", deleted when the test ends)
// and records st as its status, as the account controller does.
func (c *cluster) account(ns, name string, st v1alpha1.WeChatAccountStatus) {
	c.t.Helper()
	spec := v1alpha1.WeChatAccountSpec{SecretRef: v1alpha1.SecretReference{Name: name}}
	var a v1alpha1.Account = &v1alpha1.WeChatAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: spec}
	if ns == "" {
		a = &v1alpha1.ClusterWeChatAccount{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
		c.t.Cleanup(func() { _ = env.Client.Delete(context.Background(), a) })
	}
	if err := env.Client.Create(context.Background(), a); err != nil {
		c.t.Fatal(err)
	}
	st.ObservedGeneration = a.GetGeneration()
	for i := range st.Conditions {
		st.Conditions[i].ObservedGeneration = a.GetGeneration()
		st.Conditions[i].LastTransitionTime = metav1.NewTime(now.Add(-time.Hour))
	}
	*a.AccountStatus() = st
	if err := env.Client.Status().Update(context.Background(), a); err != nil {
		c.t.Fatal(err)
	}
}

func readyCondition(status metav1.ConditionStatus, reason string) []metav1.Condition {
	return []metav1.Condition{{Type: v1alpha1.ConditionReady, Status: status, Reason: reason, Message: "m"}}
}

func TestAccountsListsBothKinds(t *testing.T) {
	c := newCluster(t)
	other := newCluster(t)
	c.account(c.ns, "official", v1alpha1.WeChatAccountStatus{
		AppID:          "wx0000000000test01",
		Conditions:     readyCondition(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained),
		Quota:          &v1alpha1.QRCodeQuota{DailyLimit: 100000, Used: 1520, Remain: 98480, ObservedTime: metav1.NewTime(now.Add(-time.Minute))},
		PermanentCodes: &v1alpha1.PermanentCodeUsage{Used: 3, Limit: 50},
		Tags: &v1alpha1.AccountTags{Used: 99, Limit: 100, Wanted: 3, Tags: []v1alpha1.TagUsage{
			{Name: "spring", ID: 101, Codes: 2}, {Name: "summer", ID: 102, Codes: 1}, {Name: "autumn", Codes: 1}}},
		Callback: &v1alpha1.AccountCallbackStatus{Path: "/wechat/wx0000000000test01", LastVerifiedPushTime: &metav1.Time{Time: now.Add(-5 * time.Minute)}},
		Codes:    &v1alpha1.AccountCodes{Total: 4, Ready: 3},
	})
	c.account(c.ns, "unreported", v1alpha1.WeChatAccountStatus{})
	other.account(other.ns, "elsewhere", v1alpha1.WeChatAccountStatus{
		AppID:      "wx0000000000test02",
		Conditions: readyCondition(metav1.ConditionFalse, v1alpha1.ReasonWeChatError(40164)),
		Codes:      &v1alpha1.AccountCodes{Total: 2},
	})
	c.account("", "plugin-shared", v1alpha1.WeChatAccountStatus{
		AppID:          "wx0000000000test03",
		Conditions:     readyCondition(metav1.ConditionFalse, v1alpha1.ReasonDuplicateAppID),
		Quota:          &v1alpha1.QRCodeQuota{DailyLimit: 100000, Used: 7, Remain: 99993, ObservedTime: metav1.NewTime(now), Error: "wechat errcode 45009"},
		PermanentCodes: &v1alpha1.PermanentCodeUsage{Limit: 100000},
		Codes:          &v1alpha1.AccountCodes{},
	})

	out, errOut, exit := c.run("accounts")
	if exit != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", exit, errOut)
	}
	want := `KIND                   NAME            APPID                READY                    QUOTA                    PERMANENT   TAGS                 LAST PUSH   CODES
WeChatAccount          official        wx0000000000test01   True                     1520/100000              3/50        99/100 (1 missing)   5m          3/4
WeChatAccount          unreported      -                    Unknown                  -                        -           -                    never       -
ClusterWeChatAccount   plugin-shared   wx0000000000test03   False (DuplicateAppID)   7/100000 (read failed)   0/100000    -                    never       0/0
`
	if out != want {
		t.Errorf("accounts:\n%s\nwant:\n%s", out, want)
	}

	// Every namespace's accounts, with a NAMESPACE column; the rows compared field by field.
	out, _, _ = c.run("accounts", "-A")
	var rows []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Join(strings.Fields(line), " "))
	}
	for _, w := range []string{
		"KIND NAMESPACE NAME APPID READY QUOTA PERMANENT TAGS LAST PUSH CODES",
		"WeChatAccount " + c.ns + " official wx0000000000test01 True 1520/100000 3/50 99/100 (1 missing) 5m 3/4",
		"WeChatAccount " + other.ns + " elsewhere wx0000000000test02 False (WeChatError40164) - - - never 0/2",
		"ClusterWeChatAccount - plugin-shared wx0000000000test03 False (DuplicateAppID) 7/100000 (read failed) 0/100000 - never 0/0",
	} {
		if !slices.Contains(rows, w) {
			t.Errorf("accounts -A lacks the row %q:\n%s", w, out)
		}
	}
}

func TestAccountsNoneFound(t *testing.T) {
	c := newCluster(t)
	out, errOut, exit := c.run("accounts")
	if exit != 0 || errOut != "" || out != "No accounts found.\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", exit, out, errOut)
	}
}
