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

package callback

import (
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushrecord"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
)

// servedWithin is how soon an account the manager projects must be served.
const servedWithin = 5 * time.Second

// TestAccountsFollowed: the callback server follows the push config Secret while it runs. An
// account added is served within seconds (a signed push counted), a changed token takes effect,
// an entry that does not decode is not served while the others are, and a removed account, or a
// deleted Secret's, departs: served for the grace, shown as departed. No restart, no flag.
func TestAccountsFollowed(t *testing.T) {
	f := newFixture(t)
	r := f.replica(Options{}) // no push config Secret yet: serves nothing
	probe := &pusher{appID: "wxfollow01" + f.NS[strings.LastIndex(f.NS, "-"):], token: "tok-follow", mode: plaintext}
	unsubscribe := scanXML("o1", 1, "unsubscribe", "-", "")
	if status, _ := probe.build(t, unsubscribe).send(t, r.url); status != http.StatusNotFound {
		t.Fatalf("before the account exists: %d, want 404", status)
	}

	written := time.Now()
	p := f.account("a", "wxfollow01", "tok-follow", testKey, "")
	code := f.Code(scantest.NewCode("", "follow", p.appID, "T-FOLLOW", 4, ""))
	scantest.WaitFor(t, "the new account to be served", func() bool { return r.keyring.lookup(p.appID) != nil })
	if took := time.Since(written); took > servedWithin {
		t.Errorf("served %s after the Secret was written, want within %s", took, servedWithin)
	}
	waitIndexed(t, []*replica{r}, p.appID, "T-FOLLOW")
	mustSend(t, p.build(t, scanXML("o-follow", 1700000000, "SCAN", "4", "T-FOLLOW")), r)
	f.wantCounts(code, "1", "0")

	// A new token replaces the old one.
	f.accounts[0].Token = "tok-rotated"
	f.writeAccounts()
	scantest.WaitFor(t, "the old token to be refused", func() bool {
		status, _ := p.build(t, unsubscribe).send(t, r.url)
		return status == http.StatusForbidden
	})
	p.token = "tok-rotated"
	mustSend(t, p.build(t, unsubscribe), r)
	if testutil.ToFloat64(accountLoaded.WithLabelValues(p.appID)) != 1 {
		t.Error("account_loaded is not 1 for a served account")
	}

	// An entry that does not decode is skipped, logged by its AppID and never by its values.
	var s corev1.Secret
	if err := f.C.Get(f.Ctx, client.ObjectKey{Namespace: f.NS, Name: pushconfig.SecretName}, &s); err != nil {
		t.Fatal(err)
	}
	s.Data["wxbroken"] = []byte(`{"appID":"wxbroken","token":"tok-broken-entry","encodingAESKey":"short-key-value"}`)
	if err := f.C.Update(f.Ctx, &s); err != nil {
		t.Fatal(err)
	}
	scantest.WaitFor(t, "the broken entry to be reported", func() bool { return logs.Contains("wxbroken") })
	if r.keyring.lookup("wxbroken") != nil || r.keyring.lookup(p.appID) == nil {
		t.Error("want the broken entry skipped and the good one served")
	}
	for _, secret := range []string{"tok-broken-entry", "short-key-value", "tok-rotated", testKey} {
		if logs.Contains(secret) {
			t.Errorf("a secret value is in the logs")
		}
	}

	// Removed: still served, with its last token, for the grace (keyring_test.go has its end),
	// but no longer reported as loaded nor among the accounts whose status is reported.
	f.accounts = nil
	f.writeAccounts()
	scantest.WaitFor(t, "the removal to be seen", func() bool { return len(r.keyring.Accounts()) == 0 })
	mustSend(t, p.build(t, unsubscribe), r)
	if gaugeHas(t, accountLoaded, p.appID) || !gaugeHas(t, accountDeparted, p.appID) {
		t.Error("want the removed account in account_departed, not in account_loaded")
	}

	// The Secret deleted (the manager's last account gone): its accounts depart too.
	f.account("b", "wxfollow02", "tok-follow-2", "", "")
	scantest.WaitFor(t, "the second account to be served", func() bool { return len(r.keyring.Accounts()) == 1 })
	if err := f.C.Delete(f.Ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.NS, Name: pushconfig.SecretName}}); err != nil {
		t.Fatal(err)
	}
	scantest.WaitFor(t, "the deletion to be seen", func() bool { return len(r.keyring.Accounts()) == 0 })
	if r.keyring.lookup(f.accounts[0].AppID) == nil || r.keyring.lookup(p.appID) == nil {
		t.Error("want the deleted Secret's accounts served for the grace")
	}
	forgetAccounts(p.appID, f.accounts[0].AppID)
}

// TestAccountStatus: status.callback of a WeChatAccount and of a ClusterWeChatAccount, written by
// the folder from two replicas' push records: the last verified push, and the pushes refused in
// the last hour by reason, summed over the replicas, patched once per change; a push to an
// unknown AppID shows nowhere but the metric. The hour passes on a fake clock.
func TestAccountStatus(t *testing.T) {
	f := newFixture(t)
	spec := qrv1alpha1.WeChatAccountSpec{SecretRef: qrv1alpha1.SecretReference{Name: "official-account"}}
	ns := &qrv1alpha1.WeChatAccount{ObjectMeta: metav1.ObjectMeta{Namespace: f.NS, Name: "a"}, Spec: spec}
	cluster := &qrv1alpha1.ClusterWeChatAccount{ObjectMeta: metav1.ObjectMeta{Name: f.NS}, Spec: spec}
	for _, o := range []client.Object{ns, cluster} {
		if err := f.C.Create(f.Ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = f.C.Delete(f.Ctx, cluster) })
	p := f.account("a", "wxstatus01", "tok-status", testKey, "")
	q := f.account(f.NS, "wxstatus02", "tok-status-2", "", "")
	f.accounts[1].Ref = pushconfig.Ref{Kind: qrv1alpha1.KindClusterWeChatAccount, Name: cluster.Name}
	f.writeAccounts()
	// The test writes the records itself, on its clock.
	opts := DefaultOptions()
	opts.RecordInterval = time.Hour
	rs := []*replica{f.replica(opts), f.replica(opts)}
	for _, r := range rs {
		scantest.WaitFor(t, "both accounts to be served", func() bool { return r.keyring.lookup(q.appID) != nil })
	}

	// A wrong token on each replica, a push without its nonce on one, a verified push on one.
	wrongToken := &pusher{appID: p.appID, token: "tok-wrong", mode: safe, cipher: p.cipher}
	unsubscribe := scanXML("o1", 1, "unsubscribe", "-", "")
	for _, r := range rs {
		if status, _ := wrongToken.build(t, unsubscribe).send(t, r.url); status != http.StatusForbidden {
			t.Fatalf("wrong token: %d", status)
		}
	}
	noNonce := p.build(t, unsubscribe)
	noNonce.query.Del("nonce")
	if status, _ := noNonce.send(t, rs[1].url); status != http.StatusBadRequest {
		t.Fatalf("no nonce: %d", status)
	}
	stranger := &pusher{appID: "wxnobody", token: "tok", mode: plaintext}
	if status, _ := stranger.build(t, unsubscribe).send(t, rs[0].url); status != http.StatusNotFound {
		t.Fatalf("unknown account: %d", status)
	}
	mustSend(t, q.build(t, unsubscribe), rs[0])
	pushed := time.Now()

	// The folder, hence the report, runs on the replica that lives on.
	reporter := pushrecord.NewReporter(f.clock, f.C, f.C, f.C.Status(), f.NS, rs[1].keyring, rs[1].stats)
	recorders := make([]*pushrecord.Recorder, len(rs))
	for i, r := range rs {
		recorders[i] = pushrecord.NewRecorder(r.stats, f.clock, f.C, f.NS, r.opts.Identity, time.Hour, logr.Discard())
	}
	report := func() {
		t.Helper()
		for _, rec := range recorders {
			if err := rec.Flush(f.Ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := reporter.Report(f.Ctx); err != nil {
			t.Fatal(err)
		}
	}
	report()
	want := []qrv1alpha1.RefusedPushes{{Reason: "bad_signature", Count: 2}, {Reason: "missing_parameter", Count: 1}}
	if got := callbackOf(t, f, ns); !slices.Equal(got.Refused, want) || got.LastVerifiedPushTime != nil || got.ObservedTime == nil {
		t.Errorf("WeChatAccount: %+v, want refused %v and no verified push", got, want)
	}
	got := callbackOf(t, f, cluster)
	if got.Refused != nil || got.LastVerifiedPushTime == nil || got.LastVerifiedPushTime.Time.Sub(pushed).Abs() > 2*time.Second {
		t.Errorf("ClusterWeChatAccount: %+v, want a verified push at about %s and none refused", got, pushed)
	}
	var list qrv1alpha1.WeChatPushRecordList
	if err := f.C.List(f.Ctx, &list, client.InNamespace(f.NS)); err != nil {
		t.Fatal(err)
	}
	for _, rec := range list.Items {
		if _, ok := rec.Spec.Accounts[stranger.appID]; ok {
			t.Error("a push to an unknown AppID is in a push record")
		}
	}

	// Nothing new: no patch.
	patches := okStatusPatches(t)
	report()
	if n := okStatusPatches(t) - patches; n != 0 {
		t.Errorf("%v patches without a change", n)
	}

	// An hour and a bucket later the refusals are gone, the last verified push stays.
	f.clock.Step(pushrecord.RefusedWindow + pushrecord.RefusedBucket)
	report()
	if got := callbackOf(t, f, ns); got.Refused != nil {
		t.Errorf("refusals older than an hour still shown: %v", got.Refused)
	}

	// A replica gone for longer than the window: its record is deleted, and its last verified
	// push is carried over by the folder's replica.
	recorders = recorders[1:]
	f.clock.Step(pushrecord.RefusedWindow + pushrecord.RecordHeartbeat)
	report()
	if err := f.C.Get(f.Ctx, client.ObjectKey{Namespace: f.NS, Name: rs[0].opts.Identity}, &qrv1alpha1.WeChatPushRecord{}); !apierrors.IsNotFound(err) {
		t.Errorf("the gone replica's record: %v, want deleted", err)
	}
	if got := callbackOf(t, f, cluster); got.LastVerifiedPushTime == nil {
		t.Error("the gone replica's last verified push was lost")
	}
}

func callbackOf(t *testing.T, f *fixture, account qrv1alpha1.Account) qrv1alpha1.AccountCallbackStatus {
	t.Helper()
	obj := account.(client.Object)
	if err := f.C.Get(f.Ctx, client.ObjectKeyFromObject(obj), obj); err != nil {
		t.Fatal(err)
	}
	if cb := account.AccountStatus().Callback; cb != nil {
		return *cb
	}
	return qrv1alpha1.AccountCallbackStatus{}
}

// okStatusPatches is how many account status patches this process made.
func okStatusPatches(t *testing.T) float64 {
	return scantest.Sample(t, metricnames.Namespace+"_callback_account_status_patches_total", map[string]string{"result": "ok"})
}
