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

package fault

import (
	"bytes"
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/install"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// batchTagging sits between the manager and the fake WeChat and keeps what the fake does not:
// every batchtagging call, with its tag, its OpenIDs and WeChat's errcode.
type batchTagging struct {
	fake *wechattest.Server
	srv  *httptest.Server

	mu    sync.Mutex
	calls []tagCall
	// inFlight are the calls the fake is answering.
	inFlight int
}

type tagCall struct {
	at      time.Time
	tagID   int64
	openIDs []string
	errcode int
}

// tagging is the key of one follower given one tag.
type tagging struct {
	tagID  int64
	openID string
}

// recordBatchTagging puts a recorder in front of the world's fake WeChat; the manager is to be
// given its URL.
func (w *world) recordBatchTagging() *batchTagging {
	b := &batchTagging{fake: w.wechat.Server}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	w.t.Cleanup(b.srv.Close)
	return b
}

func (b *batchTagging) serve(rw http.ResponseWriter, r *http.Request) {
	if r.URL.Path != wechattest.EndpointBatchTagging {
		b.fake.ServeHTTP(rw, r)
		return
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	r.Body = io.NopCloser(bytes.NewReader(body))
	var in struct {
		OpenIDs []string `json:"openid_list"`
		TagID   int64    `json:"tagid"`
	}
	_ = json.Unmarshal(body, &in)
	b.mu.Lock()
	b.inFlight++
	b.mu.Unlock()
	answer := httptest.NewRecorder()
	b.fake.ServeHTTP(answer, r)
	var out struct {
		Errcode int `json:"errcode"`
	}
	_ = json.Unmarshal(answer.Body.Bytes(), &out)
	b.mu.Lock()
	b.calls = append(b.calls, tagCall{at: time.Now(), tagID: in.TagID, openIDs: in.OpenIDs, errcode: out.Errcode})
	b.inFlight--
	b.mu.Unlock()
	maps.Copy(rw.Header(), answer.Header())
	rw.WriteHeader(answer.Code)
	_, _ = rw.Write(answer.Body.Bytes())
}

// tagged is when each follower was given each tag by a call WeChat accepted, in call order.
func (b *batchTagging) tagged() map[tagging][]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[tagging][]time.Time{}
	for _, c := range b.calls {
		if c.errcode != 0 {
			continue
		}
		for _, id := range c.openIDs {
			k := tagging{c.tagID, id}
			out[k] = append(out[k], c.at)
		}
	}
	return out
}

// idle is whether the fake is answering no call.
func (b *batchTagging) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight == 0
}

// counts are the calls so far, and those WeChat refused.
func (b *batchTagging) counts() (calls, refused int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.calls {
		if c.errcode != 0 {
			refused++
		}
	}
	return len(b.calls), refused
}

// operatorIdentities applies the ServiceAccounts and RBAC of config/default, as `make dev` does,
// and writes a kubeconfig for the manager's and one for the callback server's ServiceAccount:
// the callback server's deliverer presents its token to the manager's tagging endpoint, which
// reviews it (TokenReview) and its right to post on /tagging (SubjectAccessReview).
func (w *world) operatorIdentities() (manager, callback string) {
	w.t.Helper()
	if err := install.ApplyRBAC(w.ctx, cp.Client, filepath.Join(cp.AssetsDir, "kubectl"), testenv.RepoRoot()); err != nil {
		w.t.Fatal(err)
	}
	kc := proc.Kubeconfig{Cluster: "fault"}
	manager, callback = filepath.Join(logDir, "manager.kubeconfig"), filepath.Join(logDir, "callback.kubeconfig")
	for name, path := range map[string]string{install.ManagerServiceAccount: manager, install.CallbackServiceAccount: callback} {
		if err := install.WriteServiceAccountKubeconfig(w.ctx, cp.Config, name, kc, path); err != nil {
			w.t.Fatal(err)
		}
	}
	return manager, callback
}

// The tags of the tagging test: the hot code's, and every other code's.
const (
	hotTag    = "hot-poster"
	springTag = "spring-poster"
)

// TestTaggingManagerKilled streams scans of codes with spec.tags at 200 a second (for 6 s; 60 s
// in the long version) through a callback server running as its ServiceAccount, kills the
// manager with SIGKILL while it tags them, halfway, and starts it again at once. The manager
// that comes back serves the tagging endpoint on another port with another certificate and
// publishes them; the deliverer sends again what the killed one had not acknowledged. Proves:
// every scanner of a scan acknowledged to WeChat is tagged at the fake with its code's tag; a
// follower tagged twice was tagged by a call of the killed manager that the deliverer never saw
// acknowledged, and no more of them than there were such followers at the kill (counted at the
// fake and in the deliverer's metrics); the batchtagging calls stay near ceil(followers/50) per
// tag.
func TestTaggingManagerKilled(t *testing.T) {
	w := newWorld(t, true)
	rec := w.recordBatchTagging()
	managerKC, callbackKC := w.operatorIdentities()
	codes := harness.TemporaryCodes(w.ns, 10, 720*time.Hour, 0)
	for i, c := range codes {
		c.Spec.Tags = []qrv1alpha1.TagName{springTag}
		if i == 0 {
			c.Spec.Tags = []qrv1alpha1.TagName{hotTag}
		}
	}
	s := w.scansOf(codes)
	cfg := harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{
		Kubeconfig: managerKC, WeChatURL: rec.srv.URL, ClusterResourceNamespace: install.OperatorNamespace,
		TaggingAddr: "127.0.0.1:0", TaggingAdvertise: "127.0.0.1",
	}}
	mgr := w.manager(cfg)
	tagIDs := w.tagsCreated(hotTag, springTag)
	cb, err := harness.StartCallback(w.ctx, bins, "callback-a", callbackKC, install.OperatorNamespace, logDir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cb.Kill)

	const rate = 200
	n := size(6*rate, 60*rate)
	st := w.stream([]*harness.Callback{cb}, rate, func(i int) *harness.Push {
		// A scanner is a follower of the account by the time WeChat pushes the scan.
		w.wechat.AddFollower(w.acct.AppID, scanner(i))
		return s.good(i)
	})
	poll(t, time.Minute, 100*time.Millisecond, "followers tagged before the kill", func() bool {
		return st.Sent() >= int64(n/2) && len(rec.tagged()) > 0
	})
	mgr.Kill()
	killed := time.Now()
	// Once the fake has answered the calls the killed manager made, nothing is tagged until the
	// manager is back, and the deliverer can have no more answers from the dead one: what was
	// tagged and not acknowledged is fixed.
	eventually(t, 10*time.Second, "the killed manager's calls answered", rec.idle)
	taggedAtKill := len(rec.tagged())
	acked, err := harness.Metric(cb.Metrics, metricnames.Namespace+"_callback_sink_deliveries_total", `result="ok"`)
	if err != nil {
		t.Fatal(err)
	}
	unacknowledged := max(0, taggedAtKill-int(acked))
	w.manager(cfg)
	t.Logf("manager killed after %d scans sent, %d followers tagged at the fake, %.0f acknowledged to the deliverer; restarted in %s",
		st.Sent(), taggedAtKill, acked, time.Since(killed).Round(100*time.Millisecond))
	until := st.Sent() + int64(n/2)
	eventually(t, time.Minute, "scans sent", func() bool { return st.Sent() >= until })
	outcomes := st.End()

	want := map[tagging]int{}
	for i, waves := range outcomes {
		if slices.ContainsFunc(waves, func(o harness.Outcome) bool { return o.Status == http.StatusOK }) {
			want[tagging{tagIDs[string(s.pick(i).Spec.Tags[0])], scanner(i)}] = i
		}
	}
	var missing []int
	poll(t, 2*time.Minute, 200*time.Millisecond, "every acknowledged scanner tagged", func() bool {
		got := rec.tagged()
		missing = missing[:0]
		for k, i := range want {
			if len(got[k]) == 0 {
				missing = append(missing, i)
			}
		}
		return len(missing) == 0
	})
	caughtUp := time.Since(killed)

	got := rec.tagged()
	perTag := map[int64]int{}
	var duplicates, forNothing int
	for k, at := range got {
		perTag[k.tagID]++
		if len(at) < 2 {
			continue
		}
		duplicates++
		// Tagged again by the new manager: right only for a follower the killed one tagged.
		if !at[0].Before(killed) || len(at) > 2 {
			forNothing++
		}
	}
	minimum := 0
	for _, followers := range perTag {
		minimum += (followers + wechattest.MaxBatchOpenIDs - 1) / wechattest.MaxBatchOpenIDs
	}
	calls, refused := rec.counts()
	t.Logf("%.0f scans/s for %s: %d scans, %d acknowledged; %d followers tagged at the fake, %d missing; %d batchtagging calls (%d refused) for a minimum of %d; "+
		"%d followers tagged twice (%d tagged and unacknowledged at the kill), %d of them for nothing; caught up %s after the kill",
		float64(len(outcomes))/st.Sending().Seconds(), st.Sending().Round(100*time.Millisecond), len(outcomes), len(want),
		len(got), len(missing), calls, refused, minimum, duplicates, unacknowledged, forNothing, caughtUp.Round(100*time.Millisecond))
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%d of %d acknowledged scans never got their scanner tagged, e.g. scans %v (logs in %s)", len(missing), len(want), missing[:min(len(missing), 10)], logDir)
	}
	if forNothing > 0 || duplicates > unacknowledged {
		t.Errorf("%d followers tagged twice, %d of them not by the killed manager and then once again, for %d tagged and unacknowledged at the kill", duplicates, forNothing, unacknowledged)
	}
	if extra := calls - minimum; refused > 0 || extra > minimum/2+2*len(perTag) {
		t.Errorf("%d batchtagging calls (%d refused) for %d followers: the minimum is %d", calls, refused, len(got), minimum)
	}
}

// tagsCreated waits until the world's account has created names at WeChat and returns their ids
// by name, as the account's registry (status.tags) shows them.
func (w *world) tagsCreated(names ...string) map[string]int64 {
	w.t.Helper()
	ids := map[string]int64{}
	poll(w.t, time.Minute, apiPoll, "the account's tags created", func() bool {
		var a qrv1alpha1.WeChatAccount
		if err := cp.Client.Get(w.ctx, types.NamespacedName{Namespace: w.ns, Name: harness.AccountName}, &a); err != nil || a.Status.Tags == nil {
			return false
		}
		for _, tag := range a.Status.Tags.Tags {
			if tag.ID != 0 {
				ids[tag.Name] = tag.ID
			}
		}
		return len(ids) == len(names)
	})
	return ids
}
