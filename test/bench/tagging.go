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

package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/tagging"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// taggingConfig is the tagging: distinct scanners, each scanning one code once, offered open loop
// to a callback server whose deliverer sends the scans to the manager's tagging endpoint, which
// tags them at the fake WeChat with batchtagging. The calls, the lag and the manager's CPU are
// measured at the fake and in /proc, not taken from the manager's metrics.
type taggingConfig struct {
	Scans, Codes, TagsPerCode, Rate int
}

func (c taggingConfig) String() string {
	return fmt.Sprintf("%d distinct scanners (OpenIDs) offered open loop at %d/s (a batch every %s), each scanning one of %d codes (in turn) once, half subscribe and half SCAN; %d tags per code (%d at the account: the code's own, then one shared by 2, by 4, ... codes) to one callback replica (default flags, a ServiceAccount token) and the manager (tagging endpoint, default --tag-batch-wait); fake WeChat answering in %s",
		c.Scans, c.Rate, hotFaultTick, c.Codes, c.TagsPerCode, len(c.accountTags()), taggingLatency)
}

// taggingLatency is the fake WeChat's answer time, as in the soak.
const taggingLatency = 20 * time.Millisecond

// Goals of the issue for the tagging.
const (
	// callsGoal: batchtagging calls per tag within this factor of ceil(followers/50).
	callsGoal = 1.05
	// taggingLagGoal: a scan to its scanner tagged, at the p99.
	taggingLagGoal = time.Minute
)

// taggingAfter is how long the bench still counts the calls once every follower was tagged: a
// request the deliverer sends again (its answer lost or late) must not tag anyone twice.
const taggingAfter = 30 * time.Second

// taggingStall ends the wait for the last taggings when nothing was tagged for this long: the
// deliverer's backoff tops out at 30 s, so two of its longest waits without progress are a stall.
const taggingStall = 2 * time.Minute

// codeTags are the tag names of code i: tag 0 is the code's own (a channel), tag j > 0 is shared
// by the 2^j codes i>>j has in common (a region, a campaign), so that a tag's followers come
// from several codes' scans at once and 50 codes with 3 tags use 50 + 25 + 13 = 88 of the
// account's 100.
func (c taggingConfig) codeTags(i int) []qrv1alpha1.TagName {
	tags := make([]qrv1alpha1.TagName, c.TagsPerCode)
	for j := range tags {
		if j == 0 {
			tags[j] = qrv1alpha1.TagName(fmt.Sprintf("ch-%d", i))
		} else {
			tags[j] = qrv1alpha1.TagName(fmt.Sprintf("g%d-%d", j, i>>j))
		}
	}
	return tags
}

// accountTags are the distinct tag names of all codes, with how many codes name each.
func (c taggingConfig) accountTags() map[string]int {
	out := map[string]int{}
	for i := range c.Codes {
		for _, t := range c.codeTags(i) {
			out[string(t)]++
		}
	}
	return out
}

func (c taggingConfig) check() error {
	switch {
	case c.Scans < 1 || c.Codes < 1 || c.Rate < 1:
		return errors.New("-tagging-scans, -tagging-codes and -tagging-rate must be at least 1")
	case c.TagsPerCode < 1 || c.TagsPerCode > qrv1alpha1.MaxCodeTags:
		return fmt.Errorf("-tagging-tags must be 1 to %d (spec.tags)", qrv1alpha1.MaxCodeTags)
	case len(c.accountTags()) > qrv1alpha1.MaxAccountTags:
		return fmt.Errorf("%d codes with %d tags use %d tags, over WeChat's %d per account", c.Codes, c.TagsPerCode, len(c.accountTags()), qrv1alpha1.MaxAccountTags)
	}
	return nil
}

// scanner is the OpenID of scan i; scan i scans code i % Codes.
func scanner(i int) string { return fmt.Sprintf("o-tagging-%d", i) }

func (c taggingConfig) run(ctx context.Context, r *run) ([]Figure, error) {
	if err := c.check(); err != nil {
		return nil, err
	}
	s, err := r.stage(ctx, "tagging", taggingLatency)
	if err != nil {
		return nil, err
	}
	defer s.close()
	codes := harness.TemporaryCodes(s.ns, c.Codes, 720*time.Hour, 0)
	for i, code := range codes {
		code.Spec.Tags = c.codeTags(i)
	}
	if err := harness.CreateIssued(ctx, s.admin, s.acct.AppID, codes, createWorkers); err != nil {
		return nil, err
	}
	// Every scanner follows the account, as a scan makes them: the fake refuses to tag others.
	for i := range c.Scans {
		s.wechat.AddFollower(s.acct.AppID, scanner(i))
	}
	callbackKC, err := taggingClient(ctx, s)
	if err != nil {
		return nil, err
	}
	// The manager projects the push config (with the tagging endpoint) into the stage's
	// namespace, where the callback server reads it.
	m, err := harness.StartManager(ctx, r.bins, harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{
		Kubeconfig: s.cp.Kubeconfig, WeChatURL: s.wechat.URL, ClusterResourceNamespace: s.ns,
		TaggingAddr: "127.0.0.1:0", TaggingAdvertise: "127.0.0.1",
	}}, s.dir)
	if err != nil {
		return nil, err
	}
	defer func() { _ = m.Stop(10 * time.Second) }()
	r.logf("tagging: waiting for the %d tags at the fake", len(c.accountTags()))
	if err := awaitTagsCreated(ctx, s, len(codes)); err != nil {
		return nil, err
	}
	cb, err := harness.StartCallback(ctx, r.bins, "callback", callbackKC, s.ns, s.dir, 0)
	if err != nil {
		return nil, err
	}
	defer func() { _ = cb.Stop(10 * time.Second) }() // a forced kill after the measurement changes no figure
	pusher, err := harness.NewPusher(s.acct)
	if err != nil {
		return nil, err
	}

	per := max(1, int(float64(c.Rate)*hotFaultTick.Seconds()))
	var buildErr error
	st := &harness.Stream{
		Per: per, Tick: hotFaultTick,
		// WeChat's 3 tries of 5 s each: a push the server was slow to answer is sent again, and
		// the ledger's dedupe keeps it one scan.
		Senders: []*harness.Sender{{Targets: []string{cb.URL}, Workers: per, Tries: 3, Timeout: 5 * time.Second}},
		// Built as they are due, so that each carries the time it is sent (the callback server
		// refuses a timestamp minutes old, and 100,000 scans take minutes).
		More: func(i int) *harness.Push {
			if i >= c.Scans {
				return nil
			}
			now := time.Now()
			code := codes[i%c.Codes]
			ev := harness.Event{OpenID: scanner(i), CreateTime: now.Unix(), Subscribe: i%2 == 0,
				Scene: fmt.Sprint(*code.Spec.Scene.ID), Ticket: code.Status.Ticket}
			p, err := pusher.Push(ev.XML(), now)
			if err != nil && buildErr == nil {
				buildErr = err
			}
			return p
		},
	}
	r.logf("tagging: %d scans at %d/s", c.Scans, c.Rate)
	cpuBefore := harness.CPUByName()
	start := time.Now()
	progress, stopProgress := context.WithCancel(ctx)
	defer stopProgress()
	go func() {
		for t := time.NewTicker(30 * time.Second); ; {
			select {
			case <-progress.Done():
				t.Stop()
				return
			case <-t.C:
				r.logf("tagging: %d scans sent, %d acknowledged, %d (follower, tag) pairs tagged", st.Sent(), st.Acked(), s.wechat.Tagging().Tagged)
			}
		}
	}()
	st.Start(ctx)
	<-st.Stopped()
	outcomes := st.End()
	if buildErr != nil {
		return nil, buildErr
	}
	want := 0
	for i, waves := range outcomes {
		if waves[0].Status == http.StatusOK {
			want += len(c.codeTags(i % c.Codes))
		}
	}
	r.logf("tagging: %d scans acknowledged of %d; waiting for %d (follower, tag) pairs tagged", st.Acked(), len(outcomes), want)
	done, err := awaitTagged(ctx, s.wechat, want)
	cpuAfter, atDone := harness.CPUByName(), s.wechat.Tagging()
	stopProgress()
	if err != nil {
		return nil, err
	}
	managerLag, err := harness.ScrapeHistogram(m.Metrics, metricnames.Namespace+"_tagging_lag_seconds")
	if err != nil {
		return nil, err
	}
	peakRSS, err := m.PeakRSS()
	if err != nil {
		return nil, err
	}
	res := c.measure(s, codes, outcomes, atDone)
	r.logf("tagging: %s more for the calls that come after the last tagging", taggingAfter)
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(taggingAfter):
	}
	res.after = s.wechat.Tagging()
	res.span, res.sending, res.managerLag, res.peakRSS = done.Sub(start), st.Sending(), managerLag, peakRSS
	res.managerCPU = cpuAfter["manager"] - cpuBefore["manager"]
	res.callbackCPU = cpuAfter["callback"] - cpuBefore["callback"]
	return c.figures(res), nil
}

// taggingClient gives the callback server the identity the tagging endpoint wants, a
// ServiceAccount token (the manager checks it with a TokenReview and a SubjectAccessReview), and
// returns its kubeconfig. The ServiceAccount is bound to cluster-admin: the benchmark measures
// tagging, not the least privilege of config/rbac, which test/health and the dev stack check.
func taggingClient(ctx context.Context, s *stage) (string, error) {
	cs, err := kubernetes.NewForConfig(s.cp.Config)
	if err != nil {
		return "", err
	}
	const name = "callback"
	if _, err := cs.CoreV1().ServiceAccounts(s.ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "bench-callback-" + s.ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: s.ns}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		return "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(s.ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	// The manager caches a denial for a while: the first request must not race the binding.
	err = poll(ctx, 30*time.Second, func() (bool, error) {
		sar, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:                  "system:serviceaccount:" + s.ns + ":" + name,
			NonResourceAttributes: &authorizationv1.NonResourceAttributes{Path: tagging.Path, Verb: "post"},
		}}, metav1.CreateOptions{})
		return err == nil && sar.Status.Allowed, nil
	})
	if err != nil {
		return "", err
	}
	path := filepath.Join(s.dir, "callback.kubeconfig")
	kc := proc.Kubeconfig{Cluster: "local", User: name, Auth: &clientcmdapi.AuthInfo{Token: tr.Status.Token}}
	return path, kc.Write(path, s.cp.Config)
}

// awaitTagsCreated waits until each of the n codes of the stage has its Tagging condition True:
// every tag it names exists at the fake.
func awaitTagsCreated(ctx context.Context, s *stage, n int) error {
	ready := 0
	err := poll(ctx, 2*time.Minute, func() (bool, error) {
		var list qrv1alpha1.WeChatQRCodeList
		if err := s.admin.List(ctx, &list, client.InNamespace(s.ns)); err != nil {
			return false, err
		}
		ready = 0
		for _, code := range list.Items {
			if meta.IsStatusConditionTrue(code.Status.Conditions, qrv1alpha1.ConditionTagging) {
				ready++
			}
		}
		return ready == n, nil
	})
	if err == nil && ready < n {
		err = fmt.Errorf("%d of %d codes with their tags created at WeChat after 2 minutes", ready, n)
	}
	return err
}

// awaitTagged waits until the fake has given want (follower, tag) pairs, or until none was given
// for taggingStall, and returns when the last was given.
func awaitTagged(ctx context.Context, w *harness.WeChat, want int) (time.Time, error) {
	last, lastAt := w.Tagging().Tagged, time.Now()
	for last < want && time.Since(lastAt) < taggingStall {
		select {
		case <-ctx.Done():
			return lastAt, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
		if n := w.Tagging().Tagged; n > last {
			last, lastAt = n, time.Now()
		}
	}
	return lastAt, nil
}

// taggingResult is what the fake and /proc say of a run.
type taggingResult struct {
	sent, acked int
	// unacked counts the scans none of whose 3 tries got a 200, by the last try's status (0: no
	// answer within 5 s); unackedTagged those whose scanner got all its tags all the same (the
	// scan was stored, its answer late).
	unacked       map[int]int
	unackedTagged int
	// exact followers carry their code's tags and no other; missing lack some, wrong carry
	// another.
	exact, missing, wrong int
	// tags are the account's tags the codes name, by name.
	tags []tagCalls
	// atDone is what the batchtagging calls did by the last tagging; after, taggingAfter later.
	atDone, after harness.Tagging
	// lags are, per follower fully tagged, its push's first try to the answer of the call that
	// gave it the last of its tags.
	lags                    []time.Duration
	span, sending           time.Duration
	managerLag              harness.Histogram
	managerCPU, callbackCPU float64
	peakRSS                 int64
}

// tagCalls is one tag's batchtagging calls beside their minimum.
type tagCalls struct {
	name             string
	codes, followers int
	calls            int
}

func (t tagCalls) minimum() int {
	return (t.followers + wechattest.MaxBatchOpenIDs - 1) / wechattest.MaxBatchOpenIDs
}

func (t tagCalls) ratio() float64 { return float64(t.calls) / float64(max(1, t.minimum())) }

// measure reads the fake: each scanner's tags beside its code's, the calls by tag and the lags.
func (c taggingConfig) measure(s *stage, codes []*qrv1alpha1.WeChatQRCode, outcomes [][]harness.Outcome, atDone harness.Tagging) taggingResult {
	ids := map[string]int64{}
	for _, t := range s.wechat.Tags(s.acct.AppID) {
		ids[t.Name] = t.ID
	}
	byTag := map[string]*tagCalls{}
	for name, n := range c.accountTags() {
		byTag[name] = &tagCalls{name: name, codes: n}
	}
	res := taggingResult{sent: len(outcomes), unacked: map[int]int{}, atDone: atDone}
	for i, waves := range outcomes {
		openID, want := scanner(i), c.codeTags(i%len(codes))
		var last time.Time
		complete := true
		for _, name := range want {
			at, ok := s.wechat.TaggedAt(openID, ids[string(name)])
			if !ok {
				complete = false
				continue
			}
			byTag[string(name)].followers++
			last = later(last, at)
		}
		if waves[0].Status != http.StatusOK {
			res.unacked[waves[0].Status]++
			if complete {
				res.unackedTagged++
			}
			continue
		}
		res.acked++
		var got []string
		for _, t := range s.wechat.FollowerTags(s.acct.AppID, openID) {
			got = append(got, t.Name)
		}
		switch {
		case slices.ContainsFunc(got, func(name string) bool { return !slices.Contains(want, qrv1alpha1.TagName(name)) }):
			res.wrong++
		case len(got) < len(want) || !complete:
			res.missing++
		default:
			res.exact++
			res.lags = append(res.lags, last.Sub(waves[0].Attempts[0].Start))
		}
	}
	for id, n := range atDone.Calls {
		for name, t := range byTag {
			if ids[name] == id {
				t.calls = n
			}
		}
	}
	for _, t := range byTag {
		res.tags = append(res.tags, *t)
	}
	slices.SortFunc(res.tags, func(a, b tagCalls) int { return strings.Compare(a.name, b.name) })
	return res
}

// tagSum is several tags' calls, followers and minimums.
type tagSum struct{ tags, calls, followers, minimum int }

func (s *tagSum) add(t tagCalls) {
	s.tags, s.calls, s.followers, s.minimum = s.tags+1, s.calls+t.calls, s.followers+t.followers, s.minimum+t.minimum()
}

func (s tagSum) ratio() float64 { return float64(s.calls) / float64(max(1, s.minimum)) }

func total(calls map[int64]int) int {
	n := 0
	for _, c := range calls {
		n += c
	}
	return n
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (c taggingConfig) figures(res taggingResult) []Figure {
	const b = "tagging"
	// sum is every tag's; kinds sum the tags by how many codes share them (1, 2, 4, ...).
	var sum tagSum
	worst := res.tags[0]
	kinds := map[int]*tagSum{}
	for _, t := range res.tags {
		sum.add(t)
		if t.ratio() > worst.ratio() {
			worst = t
		}
		if kinds[t.codes] == nil {
			kinds[t.codes] = &tagSum{}
		}
		kinds[t.codes].add(t)
	}
	var byKind []string
	for _, n := range slices.Sorted(maps.Keys(kinds)) {
		k := kinds[n]
		byKind = append(byKind, fmt.Sprintf("%d tags of %d code(s) each: %d calls for %d followers, minimum %d (%.3fx)", k.tags, n, k.calls, k.followers, k.minimum, k.ratio()))
	}
	p50, p99 := harness.Percentile(res.lags, 0.5), harness.Percentile(res.lags, 0.99)
	var longest time.Duration
	if len(res.lags) > 0 {
		longest = slices.Max(res.lags)
	}
	tagged := res.exact + res.missing // followers with at least their code's tags or some of them
	rate := float64(res.acked) / res.sending.Seconds()
	unacked := "every one acknowledged"
	if len(res.unacked) > 0 {
		unacked = fmt.Sprintf("not acknowledged in 3 tries of 5 s, by the last try's status (0: no answer): %s, %d of them tagged all the same", statuses(res.unacked), res.unackedTagged)
	}
	return []Figure{
		figure(b, "scans_per_second", rate, "scans/s",
			fmt.Sprintf("%d distinct scanners acknowledged of %d offered at %d/s over %s; %s", res.acked, res.sent, c.Rate, res.sending.Round(time.Second), unacked)),
		figure(b, "followers_tagged_exactly", float64(res.exact), "followers",
			fmt.Sprintf("followers carrying exactly their code's %d tags at the fake; %d lack some, %d carry another", c.TagsPerCode, res.missing, res.wrong)).
			goal(fmt.Sprintf("= the %d scanners acknowledged", res.acked), res.exact == res.acked),
		figure(b, "batchtagging_calls", float64(sum.calls), "calls",
			fmt.Sprintf("at the fake by the last tagging, %d tags: minimum, the sum of ceil(followers/50), %d (%.3fx), %.1f followers per call; answered another errcode than 0 (by errcode): %s; followers named who had the tag already: %d; in the %s after: %d more calls, %d more such followers; %s",
				sum.tags, sum.minimum, sum.ratio(), float64(sum.followers)/float64(max(1, sum.calls)), orNone(statuses(res.atDone.Errcodes)), res.atDone.Retagged,
				taggingAfter, total(res.after.Calls)-total(res.atDone.Calls), res.after.Retagged-res.atDone.Retagged, strings.Join(byKind, "; "))),
		figure(b, "calls_over_minimum_worst_tag", worst.ratio(), "x",
			fmt.Sprintf("the tag with the most calls beside its minimum ceil(followers/50): %s (%d code(s)), %d calls for %d followers, minimum %d", worst.name, worst.codes, worst.calls, worst.followers, worst.minimum())).
			goal(fmt.Sprintf("<= %.2f x per tag", callsGoal), worst.ratio() <= callsGoal),
		figure(b, "tagging_lag_p50", p50.Seconds(), "s",
			fmt.Sprintf("a scan's push (first try) to the fake's answer to the call that gave its scanner the last of its tags, over %d followers tagged exactly; the manager's tagging_lag_seconds (from CreateTime, whole seconds): p50 %.1f s", len(res.lags), res.managerLag.Quantile(0.5))),
		figure(b, "tagging_lag_p99", p99.Seconds(), "s",
			fmt.Sprintf("longest %.1f s; the manager's tagging_lag_seconds p99 %.1f s over %.0f taggings", longest.Seconds(), res.managerLag.Quantile(0.99), res.managerLag.Count)).
			goal(fmt.Sprintf("<= %s at %d scans/s", taggingLagGoal, c.Rate), len(res.lags) > 0 && p99 <= taggingLagGoal),
		figure(b, "manager_cpu_per_tagged_follower", res.managerCPU/float64(max(1, tagged))*1e6, "µs",
			fmt.Sprintf("the manager's CPU (/proc, user + system) from the first push to the last tagging, %.1f s over %s (%.2f cores), per follower tagged (%d); the callback server's %.1f s; the manager's peak RSS %.0f MiB",
				res.managerCPU, res.span.Round(time.Second), res.managerCPU/res.span.Seconds(), tagged, res.callbackCPU, mib(res.peakRSS))),
	}
}
