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
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// clusterRef points a code at a ClusterWeChatAccount.
func clusterRef(name string, spec v1alpha1.WeChatQRCodeSpec) v1alpha1.WeChatQRCodeSpec {
	spec.AccountRef = v1alpha1.AccountReference{Kind: v1alpha1.KindClusterWeChatAccount, Name: name}
	return spec
}

// TestBothKindsIssue: a code in one namespace issued through a ClusterWeChatAccount whose Secret
// is in the operator's namespace, and a code issued through its namespace's WeChatAccount; each
// account shows its AppID, push path and counts.
func TestBothKindsIssue(t *testing.T) {
	h := newHarness(t, 2)
	app := h.ns[1]
	clusterAppID, clusterSecret := h.account()
	h.secret(h.operatorNS, "cluster-acct", map[string]string{"appID": clusterAppID, "appSecret": clusterSecret})
	cluster := "shared-" + randomHex(8)
	h.wechatAccount("", cluster, "cluster-acct")
	localAppID, _ := h.accountSecret(app, "local")

	h.create(app, "via-cluster", clusterRef(cluster, permanentSpec("", strScene("cluster"))))
	h.create(app, "via-local", temporarySpec("local", strScene("local"), time.Hour, 0))
	viaCluster := h.waitReady(key(app, "via-cluster"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	viaLocal := h.waitReady(key(app, "via-local"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	for _, c := range []struct {
		code  *v1alpha1.WeChatQRCode
		appID string
	}{{viaCluster, clusterAppID}, {viaLocal, localAppID}} {
		issued, ok := h.fake.Code(c.code.Status.Ticket)
		if !ok || issued.AppID != c.appID {
			t.Errorf("%s: ticket issued for %q, want AppID %s", c.code.Name, issued.AppID, c.appID)
		}
	}

	counted := func(used int32) func(v1alpha1.Account) bool {
		return func(a v1alpha1.Account) bool {
			st := a.AccountStatus()
			return st.Codes != nil && *st.Codes == v1alpha1.AccountCodes{Total: 1, Ready: 1} &&
				st.PermanentCodes != nil && st.PermanentCodes.Used == used
		}
	}
	ca := &v1alpha1.ClusterWeChatAccount{}
	h.waitAccount(key("", cluster), ca, "counting its ready permanent code", counted(1))
	la := &v1alpha1.WeChatAccount{}
	h.waitAccount(key(app, "local"), la, "counting its ready temporary code", counted(0))
	for _, a := range []v1alpha1.Account{ca, la} {
		st := a.AccountStatus()
		if !accountReadyIs(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained)(a) {
			t.Errorf("%s: Ready %+v", a.GetName(), st.Condition(v1alpha1.ConditionReady))
		}
		if st.Callback == nil || st.Callback.Path != "/wechat/"+st.AppID {
			t.Errorf("%s: callback %+v, want path /wechat/%s", a.GetName(), st.Callback, st.AppID)
		}
		if st.PermanentCodes.Limit != v1alpha1.MaxPermanentCodes {
			t.Errorf("%s: permanent limit %d, want WeChat's %d", a.GetName(), st.PermanentCodes.Limit, v1alpha1.MaxPermanentCodes)
		}
	}
	if ca.Status.AppID != clusterAppID || la.Status.AppID != localAppID {
		t.Errorf("AppIDs %s and %s, want %s and %s", ca.Status.AppID, la.Status.AppID, clusterAppID, localAppID)
	}
}

// TestPermanentBudgetRefusesWithoutCalling: the code past the account's permanentCodeLimit is
// refused before WeChat is asked, and issued once a permanent code leaves.
func TestPermanentBudgetRefusesWithoutCalling(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	appID, secret := h.account()
	h.secret(ns, "acct", map[string]string{"appID": appID, "appSecret": secret})
	h.wechatAccount(ns, "acct", "acct", func(s *v1alpha1.WeChatAccountSpec) { s.PermanentCodeLimit = ptr.To[int32](2) })
	for i := range 2 {
		h.create(ns, fmt.Sprint("p", i), permanentSpec("acct", idScene(int64(i+1))))
		h.waitReady(key(ns, fmt.Sprint("p", i)), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	}
	// A temporary code does not count against the budget.
	h.create(ns, "temporary", temporarySpec("acct", idScene(9), time.Hour, 0))
	h.waitReady(key(ns, "temporary"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	creates := h.fake.Calls(wechattest.EndpointCreate)

	h.create(ns, "third", permanentSpec("acct", idScene(3)))
	refused := h.waitReady(key(ns, "third"), metav1.ConditionFalse, v1alpha1.ReasonPermanentCodeLimit)
	expectConditions(t, refused, "", v1alpha1.ReasonPermanentCodeLimit)
	if msg := readyCondition(refused).Message; !containsAll(msg, "permanentCodeLimit", "2") {
		t.Errorf("message %q does not name the budget", msg)
	}
	acct := &v1alpha1.WeChatAccount{}
	h.waitAccount(key(ns, "acct"), acct, "showing the budget used up", func(a v1alpha1.Account) bool {
		p := a.AccountStatus().PermanentCodes
		return p != nil && *p == v1alpha1.PermanentCodeUsage{Used: 2, Limit: 2}
	})
	if n := h.fake.Calls(wechattest.EndpointCreate) - creates; n != 0 {
		t.Errorf("%d qrcode/create calls for the code past the budget, want 0", n)
	}
	if n := len(h.fake.Codes(appID)); n != 3 {
		t.Errorf("WeChat holds %d codes of the account, want 3", n)
	}

	// A permanent code leaves: the refused one gets its place.
	h.must(h.c.Delete(context.Background(), &v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "p0"}}))
	third := h.waitReady(key(ns, "third"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	expectConditions(t, third, "", "")
}

// TestAccountDeletedCodesSayWhich: deleting an account turns its codes Ready=False naming it, and
// nothing is asked of WeChat.
func TestAccountDeletedCodesSayWhich(t *testing.T) {
	h := newHarness(t, 2)
	app := h.ns[1]
	appID, secret := h.account()
	h.secret(h.operatorNS, "cluster-acct", map[string]string{"appID": appID, "appSecret": secret})
	cluster := "gone-" + randomHex(8)
	acct := h.wechatAccount("", cluster, "cluster-acct")
	h.create(app, "code", clusterRef(cluster, permanentSpec("", strScene("x"))))
	h.waitReady(key(app, "code"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	calls := h.wechatCalls()

	h.must(h.c.Delete(context.Background(), acct))
	gone := h.waitReady(key(app, "code"), metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound)
	if msg := readyCondition(gone).Message; !containsAll(msg, fmt.Sprintf("ClusterWeChatAccount %q", cluster), "spec.accountRef") {
		t.Errorf("message %q does not name the account", msg)
	}
	if n := h.wechatCalls() - calls; n != 0 {
		t.Errorf("%d WeChat calls after the account was deleted", n)
	}
}

// TestAccountNotFoundNamesTheClusterAccount: a code whose accountRef omits the kind names a
// WeChatAccount; when only a ClusterWeChatAccount of that name exists, the condition and the
// Event say so and how to use it, and the hint follows that account's creation and deletion.
func TestAccountNotFoundNamesTheClusterAccount(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	name := "official-" + randomHex(8)
	k := key(ns, "poster")
	h.create(ns, "poster", temporarySpec(name, strScene("poster"), time.Hour, 0))
	plain := h.waitReady(k, metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound)
	if msg := readyCondition(plain).Message; strings.Contains(msg, "ClusterWeChatAccount") {
		t.Errorf("message %q names a ClusterWeChatAccount, and there is none", msg)
	}

	appID, secret := h.account()
	h.secret(h.operatorNS, name, map[string]string{"appID": appID, "appSecret": secret})
	acct := h.wechatAccount("", name, name)
	hint := fmt.Sprintf("no WeChatAccount %s/%s; a ClusterWeChatAccount %s exists: set accountRef.kind: ClusterWeChatAccount", ns, name, name)
	h.waitFor(k, 30*time.Second, "a message naming the ClusterWeChatAccount", func(c *v1alpha1.WeChatQRCode) bool {
		return readyIs(metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound)(c) && strings.Contains(readyCondition(c).Message, hint)
	})
	h.create(ns, "later", temporarySpec(name, strScene("later"), time.Hour, 0))
	h.waitEvent(key(ns, "later"), corev1.EventTypeWarning, v1alpha1.ReasonAccountNotFound, hint)

	h.must(h.c.Delete(context.Background(), acct))
	h.waitFor(k, 30*time.Second, "the hint gone with the ClusterWeChatAccount", func(c *v1alpha1.WeChatQRCode) bool {
		return readyIs(metav1.ConditionFalse, v1alpha1.ReasonAccountNotFound)(c) && !strings.Contains(readyCondition(c).Message, "ClusterWeChatAccount")
	})
}

// TestCodeEventSaysTheAccountsFailure: a code created with its account, whose check then fails,
// records the account's failure as its Event, not that the account was being checked.
func TestCodeEventSaysTheAccountsFailure(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	// An AppID the fake WeChat does not know: errcode 40013.
	h.secret(ns, "stranger", map[string]string{"appID": "wx" + randomHex(16), "appSecret": randomHex(32)})
	h.wechatAccount(ns, "stranger", "stranger")
	k := key(ns, "code")
	h.create(ns, "code", temporarySpec("stranger", strScene("code"), time.Hour, 0))
	h.waitEvent(k, corev1.EventTypeWarning, v1alpha1.ReasonAccountNotReady,
		fmt.Sprintf(`WeChatAccount "stranger" in namespace %s is not Ready (WeChatError40013): `, ns), "errcode 40013")
	for _, e := range h.events(k) {
		if strings.Contains(e.Note, "is being checked") {
			t.Errorf("Event %s %q: the check's outcome is the Event, not the wait", e.Reason, e.Note)
		}
	}
}

// TestDeadTokenServiceIsNotWeChat: an account whose External token service does not answer says
// so, naming the service, and its codes carry that reason.
func TestDeadTokenServiceIsNotWeChat(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	service := dead.URL + "/token"
	appID, _ := h.account()
	h.secret(ns, "central", map[string]string{"appID": appID})
	h.wechatAccount(ns, "central", "central", func(s *v1alpha1.WeChatAccountSpec) {
		s.TokenSource = &v1alpha1.TokenSource{Type: v1alpha1.TokenSourceExternal, URL: service}
	})
	acct := &v1alpha1.WeChatAccount{}
	h.waitAccount(key(ns, "central"), acct, "TokenServiceUnreachable", accountReadyIs(metav1.ConditionFalse, v1alpha1.ReasonTokenServiceUnreachable))
	if msg := acct.Status.Condition(v1alpha1.ConditionReady).Message; !containsAll(msg, "token service "+service+" (tokenSource.url): ", "connection refused") {
		t.Errorf("message %q does not name the token service", msg)
	}
	h.create(ns, "code", temporarySpec("central", strScene("code"), time.Hour, 0))
	h.waitEvent(key(ns, "code"), corev1.EventTypeWarning, v1alpha1.ReasonAccountNotReady, "is not Ready (TokenServiceUnreachable): ", service)
}

// TestQuotaFromWeChat: the account shows WeChat's own count of qrcode/create calls, read once when
// it turns Ready and again only once the quota interval has passed.
func TestQuotaFromWeChat(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.accountSecret(ns, "acct")
	acct := &v1alpha1.WeChatAccount{}
	quotaIs := func(used int64) func(v1alpha1.Account) bool {
		return func(a v1alpha1.Account) bool {
			q := a.AccountStatus().Quota
			return q != nil && q.Error == "" && q.Used == used && q.DailyLimit == wechattest.DefaultCreateDailyQuota &&
				q.Remain == wechattest.DefaultCreateDailyQuota-used && q.ObservedTime.Time.Equal(h.clock.Now())
		}
	}
	h.waitAccount(key(ns, "acct"), acct, "showing an unused quota", quotaIs(0))
	for i := range 3 {
		h.create(ns, fmt.Sprint("c", i), temporarySpec("acct", idScene(int64(i+1)), time.Hour, 0))
		h.waitReady(key(ns, fmt.Sprint("c", i)), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	}
	h.waitAccount(key(ns, "acct"), acct, "counting its codes", func(a v1alpha1.Account) bool {
		return a.AccountStatus().Codes != nil && a.AccountStatus().Codes.Ready == 3
	})
	if n := h.fake.Calls(wechattest.EndpointQuotaGet); n != 1 {
		t.Errorf("%d quota reads before the interval passed, want 1", n)
	}
	if acct.Status.Quota.Used != 0 {
		t.Errorf("quota used %d before the interval passed: read again too early", acct.Status.Quota.Used)
	}

	// An interval later, the next reconcile (here: a code leaves) reads WeChat's count.
	h.step(time.Hour)
	h.must(h.c.Delete(context.Background(), &v1alpha1.WeChatQRCode{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "c0"}}))
	h.waitAccount(key(ns, "acct"), acct, "showing WeChat's count of 3 creates", quotaIs(3))
	if n := h.fake.Calls(wechattest.EndpointQuotaGet); n != 2 {
		t.Errorf("%d quota reads after one interval, want 2", n)
	}
}

// aesKey is a random EncodingAESKey: 43 characters of base64.
func aesKey() string {
	return base64.StdEncoding.EncodeToString([]byte(randomHex(32)))[:43]
}

// pushConfig reads the projected Secret's entries once it holds want's AppIDs.
func (h *harness) waitPushConfig(what string, cond func(map[string][]byte) bool) map[string][]byte {
	h.t.Helper()
	s := &corev1.Secret{}
	err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		err := h.c.Get(ctx, key(h.operatorNS, pushconfig.SecretName), s)
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		return err == nil && cond(s.Data), err
	})
	if err != nil {
		keys := make([]string, 0, len(s.Data))
		for k := range s.Data {
			keys = append(keys, k)
		}
		h.t.Fatalf("the push config never %s: %v (keys %v)", what, err, keys)
	}
	return s.Data
}

// TestPushConfigProjection: the Secret the callback server reads holds exactly the push material
// of each account (never an AppSecret), and follows a Secret's token rotation.
func TestPushConfigProjection(t *testing.T) {
	h := newHarness(t, 2)
	app := h.ns[1]
	clusterAppID, clusterSecret := h.account()
	localAppID, localSecret := h.account()
	clusterKey, localKey, localPrevious := aesKey(), aesKey(), aesKey()
	h.secret(h.operatorNS, "cluster-acct", map[string]string{"appID": clusterAppID, "appSecret": clusterSecret,
		"token": "cluster-token", "encodingAESKey": clusterKey})
	cluster := "pushed-" + randomHex(8)
	h.wechatAccount("", cluster, "cluster-acct")
	h.secret(app, "local", map[string]string{"appID": localAppID, "appSecret": localSecret,
		"token": "local-token", "encodingAESKey": localKey, "previousEncodingAESKey": localPrevious})
	h.wechatAccount(app, "local", "local")
	// An account without a token receives no pushes: it is left out.
	h.accountSecret(app, "api-only")

	want := map[string]pushconfig.Account{
		clusterAppID: {Ref: pushconfig.Ref{Kind: v1alpha1.KindClusterWeChatAccount, Name: cluster}, AppID: clusterAppID,
			Token: "cluster-token", EncodingAESKey: clusterKey},
		localAppID: {Ref: pushconfig.Ref{Kind: v1alpha1.KindWeChatAccount, Namespace: app, Name: "local"}, AppID: localAppID,
			Token: "local-token", EncodingAESKey: localKey, PreviousEncodingAESKey: localPrevious},
	}
	matches := func(data map[string][]byte) bool {
		got, problems := pushconfig.Decode(data)
		if len(problems) > 0 || len(got) != len(want) || len(data) != len(want) {
			return false
		}
		for _, a := range got {
			if a != want[a.AppID] {
				return false
			}
		}
		return true
	}
	data := h.waitPushConfig("held both accounts' push material", matches)
	for appID, raw := range data {
		for _, leak := range []string{clusterSecret, localSecret, "appSecret"} {
			if strings.Contains(string(raw), leak) {
				t.Errorf("entry %s carries an AppSecret", appID)
			}
		}
	}

	// The token rotates in the account's Secret: the projection follows.
	h.updateSecret(h.operatorNS, "cluster-acct", func(s *corev1.Secret) { s.StringData = map[string]string{"token": "rotated"} })
	entry := want[clusterAppID]
	entry.Token = "rotated"
	want[clusterAppID] = entry
	h.waitPushConfig("followed the rotated token", matches)
}

// TestAllowlistShowsOnceOnTheAccount: WeChat refusing the cluster's IP (40164) shows on the account
// once, with one token call and one Event, while its codes say the account is not ready and call
// nothing; an hour later the account is checked again.
func TestAllowlistShowsOnceOnTheAccount(t *testing.T) {
	h := newHarness(t, 1)
	ns := h.ns[0]
	h.fake.FailNext(wechattest.EndpointStableToken, 1, wechattest.Fault{Errcode: 40164})
	h.accountSecret(ns, "acct")
	ak := key(ns, "acct")
	acct := &v1alpha1.WeChatAccount{}
	reason := v1alpha1.ReasonWeChatError(40164)
	h.waitAccount(ak, acct, "refused by the allowlist", accountReadyIs(metav1.ConditionFalse, reason))
	if msg := acct.Status.Condition(v1alpha1.ConditionReady).Message; !containsAll(msg, "40164", "allowlist") {
		t.Errorf("account message %q does not say what to do", msg)
	}
	for _, n := range []string{"a", "b"} {
		h.create(ns, n, temporarySpec("acct", strScene(n), time.Hour, 0))
		c := h.waitReady(key(ns, n), metav1.ConditionFalse, v1alpha1.ReasonAccountNotReady)
		if msg := readyCondition(c).Message; !strings.Contains(msg, reason) {
			t.Errorf("code message %q does not carry the account's reason", msg)
		}
	}
	h.waitAccount(ak, acct, "counting both codes", func(a v1alpha1.Account) bool {
		return a.AccountStatus().Codes != nil && a.AccountStatus().Codes.Total == 2
	})
	if n, m := h.fake.Calls(wechattest.EndpointStableToken), h.fake.Calls(wechattest.EndpointCreate); n != 1 || m != 0 {
		t.Errorf("%d token calls and %d creates, want 1 and 0", n, m)
	}
	var events []eventsv1.Event
	if err := wait.PollUntilContextTimeout(context.Background(), 50*time.Millisecond, 10*time.Second, true, func(context.Context) (bool, error) {
		events = h.accountEvents(ak, reason)
		return len(events) > 0, nil
	}); err != nil || len(events) != 1 || events[0].Type != corev1.EventTypeWarning {
		t.Errorf("Events %v on the account, want one Warning %s", summarize(events), reason)
	}

	// The allowlist is fixed in WeChat's console, out of the cluster's sight: an hour later the
	// next reconcile (here: a new code) checks again, and the codes follow.
	h.step(time.Hour)
	h.create(ns, "c", temporarySpec("acct", strScene("c"), time.Hour, 0))
	h.waitAccount(ak, acct, "Ready after the hourly retry", accountReadyIs(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained))
	for _, n := range []string{"a", "b", "c"} {
		h.waitReady(key(ns, n), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	}
	if n := h.fake.Calls(wechattest.EndpointStableToken); n != 2 {
		t.Errorf("%d token calls, want 2 (the first check and the hourly retry)", n)
	}
	if n := len(h.accountEvents(ak, reason)); n != 1 {
		t.Errorf("%d %s Events, want still 1", n, reason)
	}
}

// TestDuplicateAppIDRefusesTheYounger: a second account with an AppID already in use is refused
// and not served; its codes are not issued; when the first goes, the second takes over.
func TestDuplicateAppIDRefusesTheYounger(t *testing.T) {
	h := newHarness(t, 2)
	app := h.ns[1]
	appID, secret := h.account()
	data := map[string]string{"appID": appID, "appSecret": secret, "token": "t", "encodingAESKey": aesKey()}
	// The ClusterWeChatAccount first: creation times have a resolution of a second, and on a tie
	// the kind's name orders it first too, so the WeChatAccount is the younger either way.
	h.secret(h.operatorNS, "first", data)
	first := "first-" + randomHex(8)
	older := h.wechatAccount("", first, "first")
	h.waitAccount(key("", first), &v1alpha1.ClusterWeChatAccount{}, "Ready", accountReadyIs(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained))
	h.secret(app, "second", data)
	h.wechatAccount(app, "second", "second")
	tokens := h.fake.Calls(wechattest.EndpointStableToken)

	acct := &v1alpha1.WeChatAccount{}
	h.waitAccount(key(app, "second"), acct, "refused as a duplicate", accountReadyIs(metav1.ConditionFalse, v1alpha1.ReasonDuplicateAppID))
	if msg := acct.Status.Condition(v1alpha1.ConditionReady).Message; !containsAll(msg, appID, "ClusterWeChatAccount "+first, "delete one") {
		t.Errorf("message %q does not name the AppID and the older account", msg)
	}
	if acct.Status.Condition(v1alpha1.ConditionStalled) == nil {
		t.Errorf("the refused account is not Stalled")
	}
	h.create(app, "code", temporarySpec("second", strScene("dup"), time.Hour, 0))
	h.waitReady(key(app, "code"), metav1.ConditionFalse, v1alpha1.ReasonAccountNotReady)
	if n := h.fake.Calls(wechattest.EndpointStableToken) - tokens; n != 0 {
		t.Errorf("%d token calls for the refused account", n)
	}
	servedBy := func(ref pushconfig.Ref) func(map[string][]byte) bool {
		return func(data map[string][]byte) bool {
			got, _ := pushconfig.Decode(data)
			return len(got) == 1 && got[0].Ref == ref
		}
	}
	h.waitPushConfig("served the older account only", servedBy(pushconfig.Ref{Kind: v1alpha1.KindClusterWeChatAccount, Name: first}))

	// The older one goes: the younger is checked, served, and its code issued.
	h.must(h.c.Delete(context.Background(), older))
	h.waitAccount(key(app, "second"), acct, "Ready once alone", accountReadyIs(metav1.ConditionTrue, v1alpha1.ReasonTokenObtained))
	h.waitReady(key(app, "code"), metav1.ConditionTrue, v1alpha1.ReasonIssued)
	h.waitPushConfig("served the remaining account", servedBy(pushconfig.Ref{Kind: v1alpha1.KindWeChatAccount, Namespace: app, Name: "second"}))
}
