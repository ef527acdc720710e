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
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// The tag registry: per account, the tags its codes name (spec.tags) must exist at WeChat. The
// account reconciler reads the account's tags (tags/get), creates the missing ones (tags/create)
// and reports them in status.tags and the TagsReady condition; it never renames or deletes a
// tag. Each code's Tagging condition is read from its account's status by the code reconciler.
// Tags are created by the elected manager only, one account at a time per AppID (an account key
// is never reconciled by two workers at once, and a younger account with the same AppID is
// refused), and after reading WeChat's list, so a restart or two codes naming a tag at once
// create it once; a name taken meanwhile (45157) is read again, not reported.

// TagAPI is what the tag registry needs of a WeChat client (*wechat.Client).
type TagAPI interface {
	Tags(ctx context.Context, creds wechat.Credentials) ([]wechat.Tag, error)
	CreateTag(ctx context.Context, creds wechat.Credentials, name string) (wechat.Tag, error)
}

// IndexTaggedAccount maps an account resource (pushconfig.Ref's string) to its codes that name
// tags: an account whose codes name none costs no list and no call.
const IndexTaggedAccount = "spec.tags.accountRef"

// Retry delays of the registry. A tag deleted in WeChat's console is noticed at the next read:
// the registry reads WeChat's list again hourly while codes name tags (24 calls a day).
const (
	tagsRefresh        = time.Hour
	tagsTransientRetry = time.Minute
	tagsTerminalRetry  = time.Hour
)

func addTagIndexes(ctx context.Context, mgr manager.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &v1alpha1.WeChatQRCode{}, IndexTaggedAccount, func(o client.Object) []string {
		c := o.(*v1alpha1.WeChatQRCode)
		if len(c.Spec.Tags) == 0 {
			return nil
		}
		return []string{refOf(c.Namespace, c.Spec.AccountRef).String()}
	})
}

// tagWant is one tag name the account's codes name.
type tagWant struct {
	name  string
	codes int32
	// codeNames are the first codes naming it, by namespace then name.
	codeNames []string
}

// codeKey orders codes by namespace, then name, without building strings for all of them.
type codeKey struct{ ns, name string }

func (k codeKey) less(o codeKey) bool {
	if k.ns != o.ns {
		return k.ns < o.ns
	}
	return k.name < o.name
}

// wantedTags are the names codes name, by name, each with how many codes and which first. One
// pass, keeping each name's first few codes: an account may have 100,000 codes, and this runs at
// each of its reconciles.
func wantedTags(codes []v1alpha1.WeChatQRCode) []tagWant {
	type acc struct {
		codes int32
		first []codeKey
	}
	byName := map[v1alpha1.TagName]*acc{}
	for i := range codes {
		k := codeKey{codes[i].Namespace, codes[i].Name}
		for _, n := range codes[i].Spec.Tags {
			a := byName[n]
			if a == nil {
				a = &acc{first: make([]codeKey, 0, v1alpha1.MaxTagCodeNames)}
				byName[n] = a
			}
			a.codes++
			at := len(a.first)
			for at > 0 && k.less(a.first[at-1]) {
				at--
			}
			if at < v1alpha1.MaxTagCodeNames {
				a.first = slices.Insert(a.first, at, k)[:min(len(a.first)+1, v1alpha1.MaxTagCodeNames)]
			}
		}
	}
	out := make([]tagWant, 0, len(byName))
	for _, name := range slices.Sorted(maps.Keys(byName)) {
		a := byName[name]
		w := tagWant{name: string(name), codes: a.codes, codeNames: make([]string, len(a.first))}
		for i, k := range a.first {
			w.codeNames[i] = k.ns + "/" + k.name
		}
		out = append(out, w)
	}
	return out
}

// tagSnapshot is what the registry knows of an account's tags at WeChat. A snapshot handed out is
// never changed: a sync works on a copy.
type tagSnapshot struct {
	// ids by name, WeChat's reserved tags included.
	ids map[string]int64
	// used counts the tags the account created, reserved ones aside: what WeChat's limit counts.
	used int32
	// readAt is when tags/get answered; zero before this process read it.
	readAt time.Time
}

func (s tagSnapshot) clone() tagSnapshot {
	s.ids = maps.Clone(s.ids)
	return s
}

func snapshotOf(tags []wechat.Tag, now time.Time) tagSnapshot {
	s := tagSnapshot{ids: make(map[string]int64, len(tags)), readAt: now}
	for _, t := range tags {
		s.ids[t.Name] = t.ID
		if !t.Reserved() {
			s.used++
		}
	}
	return s
}

// missing are the wanted names the snapshot lacks, by name.
func (s tagSnapshot) missing(want []tagWant) []string {
	var out []string
	for _, w := range want {
		if _, ok := s.ids[w.name]; !ok {
			out = append(out, w.name)
		}
	}
	return out
}

// tagsReadDue: WeChat's list is read before anything is created (this process may never have
// read it, another system may have created a tag meanwhile), and hourly.
func tagsReadDue(want []tagWant, s tagSnapshot, now time.Time) bool {
	return s.readAt.IsZero() || now.Sub(s.readAt) >= tagsRefresh || len(s.missing(want)) > 0
}

// tagsToCreate splits the missing names, by name, into those the account's limit has room for
// and those it has not.
func tagsToCreate(want []tagWant, s tagSnapshot) (create, blocked []string) {
	missing := s.missing(want)
	room := max(int(v1alpha1.MaxAccountTags-s.used), 0)
	if len(missing) <= room {
		return missing, nil
	}
	return missing[:room], missing[room:]
}

// tagOutcome is what a sync did besides the snapshot it left.
type tagOutcome struct {
	created []wechat.Tag
	// err stopped the sync (a read or a create failing); limit: WeChat answered 45056.
	err   error
	limit bool
}

// reportTags records the registry in the account's status: status.tags and TagsReady, with an
// Event for each tag created and one when the account reaches its limit; and when to sync again.
// ready: the account is Ready and was synced; otherwise the last report stays, marked pending.
func reportTags(st *v1alpha1.WeChatAccountStatus, generation int64, want []tagWant, s tagSnapshot, out tagOutcome, ready bool, now time.Time) ([]issuance.Event, time.Duration) {
	if len(want) == 0 {
		st.Tags = nil
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionTagsReady)
		return nil, 0
	}
	set := func(status metav1.ConditionStatus, reason, message string) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{Type: v1alpha1.ConditionTagsReady, Status: status,
			Reason: reason, Message: message, ObservedGeneration: generation, LastTransitionTime: metav1.NewTime(now)})
	}
	if !ready {
		set(metav1.ConditionUnknown, v1alpha1.ReasonTagsPending, "The account is not Ready: its tags are read and created once it is")
		return nil, 0
	}
	if !s.readAt.IsZero() {
		// Never read by this process (a restart, then a failed read): the last report stands.
		st.Tags = tagsStatus(want, s)
	}
	// One Event a sync: Events of one reason about one object within minutes become a series
	// that keeps the first note only.
	var events []issuance.Event
	if len(out.created) > 0 {
		created := make([]string, len(out.created))
		for i, t := range out.created {
			created[i] = fmt.Sprintf("%q (id %d)", t.Name, t.ID)
		}
		events = append(events, issuance.Event{Type: corev1.EventTypeNormal, Reason: v1alpha1.EventTagCreated, Action: "CreateTag",
			Note: "Created at WeChat the tags " + strings.Join(created, ", ")})
	}
	missing := s.missing(want)
	before := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionTagsReady)
	switch {
	case len(missing) == 0:
		set(metav1.ConditionTrue, v1alpha1.ReasonTagsCreated, fmt.Sprintf(
			"The %d tags the account's codes name exist at WeChat; the account has %d of its %d tags", len(want), s.used, v1alpha1.MaxAccountTags))
		return events, tagsRefresh
	case out.limit || s.used >= v1alpha1.MaxAccountTags:
		msg := fmt.Sprintf("The account has %d of WeChat's %d tags; the codes name %d more that do not exist: %s. "+
			"Their codes' scanners are not tagged with them. Delete tags the account no longer needs in WeChat's admin console "+
			"(Users > Tags), or remove the names from spec.tags; the operator never deletes a tag",
			s.used, v1alpha1.MaxAccountTags, len(missing), listSome(missing))
		if before == nil || before.Reason != v1alpha1.ReasonTagLimitReached {
			events = append(events, issuance.Event{Type: corev1.EventTypeWarning, Reason: v1alpha1.ReasonTagLimitReached, Action: "CreateTag", Note: msg})
		}
		set(metav1.ConditionFalse, v1alpha1.ReasonTagLimitReached, msg)
		return events, tagsRefresh
	case out.err != nil:
		reason, stalled := issuance.Classify(out.err)
		set(metav1.ConditionFalse, reason, fmt.Sprintf("Missing at WeChat: %s. %v", listSome(missing), out.err))
		switch {
		case wechat.ClassOf(out.err) == wechat.ClassQuota:
			return events, wechat.QuotaResetAfter(now).Sub(now)
		case stalled:
			return events, tagsTerminalRetry
		}
		return events, tagsTransientRetry
	}
	// A name WeChat answered 45157 for, and that its list still lacks: refused as invalid.
	set(metav1.ConditionFalse, v1alpha1.ReasonWeChatError(45157), fmt.Sprintf(
		"WeChat refuses the tag names %s (45157: invalid or taken): rename them in spec.tags", listSome(missing)))
	return events, tagsTerminalRetry
}

// tagsStatus is status.tags: the wanted tags by name, bounded.
func tagsStatus(want []tagWant, s tagSnapshot) *v1alpha1.AccountTags {
	readAt := metav1.NewTime(s.readAt)
	out := &v1alpha1.AccountTags{Used: s.used, Limit: v1alpha1.MaxAccountTags, Wanted: int32(len(want)), ReadTime: &readAt}
	for _, w := range want[:min(len(want), v1alpha1.MaxStatusTags)] {
		out.Tags = append(out.Tags, v1alpha1.TagUsage{Name: w.name, ID: s.ids[w.name], Codes: w.codes, CodeNames: w.codeNames})
	}
	return out
}

// listSome names at most five, quoted, and how many more.
func listSome(names []string) string {
	const shown = 5
	quoted := make([]string, 0, shown)
	for _, n := range names[:min(len(names), shown)] {
		quoted = append(quoted, fmt.Sprintf("%q", n))
	}
	s := strings.Join(quoted, ", ")
	if len(names) > shown {
		s += fmt.Sprintf(" and %d more", len(names)-shown)
	}
	return s
}

// taggingCondition is a code's Tagging condition, read from its account's registry and from the
// batchtagging errors its status.tagging reports; nil (no condition) for a code without tags.
// after is when to look again: when a batchtagging error shown stops being current.
func taggingCondition(code *v1alpha1.WeChatQRCode, acct v1alpha1.Account, now time.Time) (c *metav1.Condition, after time.Duration) {
	if len(code.Spec.Tags) == 0 {
		return nil, 0
	}
	c = &metav1.Condition{Type: v1alpha1.ConditionTagging, ObservedGeneration: code.Generation, LastTransitionTime: metav1.NewTime(now)}
	var registry *v1alpha1.AccountTags
	var ready *metav1.Condition
	if acct != nil {
		registry, ready = acct.AccountStatus().Tags, acct.AccountStatus().Condition(v1alpha1.ConditionTagsReady)
	}
	ids := map[string]int64{}
	if registry != nil {
		for _, t := range registry.Tags {
			ids[t.Name] = t.ID
		}
	}
	var have, missing []string
	for _, n := range code.Spec.Tags {
		if id := ids[string(n)]; id != 0 {
			have = append(have, fmt.Sprintf("%q (id %d)", n, id))
		} else {
			missing = append(missing, string(n))
		}
	}
	problem, message, until := batchTaggingProblem(code.Status.Tagging, now)
	switch {
	case len(missing) == 0 && problem != "":
		c.Status, c.Reason, c.Message = metav1.ConditionFalse, problem, message
		after = until.Sub(now)
	case len(missing) == 0:
		c.Status, c.Reason = metav1.ConditionTrue, v1alpha1.ReasonTagsCreated
		c.Message = fmt.Sprintf("Its tags exist at WeChat: %s; tagOn %s", strings.Join(have, ", "), code.Spec.TagOnOrDefault())
	case ready != nil && ready.Status == metav1.ConditionFalse && ready.Reason == v1alpha1.ReasonTagLimitReached:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonTagLimitReached
		c.Message = fmt.Sprintf("Its scanners are not tagged with %s: the account is at WeChat's limit of %d tags (see the account's TagsReady condition)",
			listSome(missing), v1alpha1.MaxAccountTags)
	case ready != nil && ready.Status == metav1.ConditionFalse:
		c.Status, c.Reason = metav1.ConditionFalse, v1alpha1.ReasonTagsNotCreated
		c.Message = fmt.Sprintf("Its scanners are not tagged with %s: the account could not create them: %s", listSome(missing), ready.Message)
	default:
		c.Status, c.Reason = metav1.ConditionUnknown, v1alpha1.ReasonTagsPending
		c.Message = fmt.Sprintf("Waiting for the account to create %s at WeChat", listSome(missing))
	}
	return c, after
}

// taggingErrorCurrentFor is how long a batchtagging error in status.tagging counts as happening:
// a scan that keeps failing is sent again by the deliverer at least every 30 s (its longest
// backoff) and the manager writes status.tagging every 10 s, so an error older than this has
// stopped (or its scans expired).
const taggingErrorCurrentFor = 2 * time.Minute

// batchTaggingProblem is the batchtagging error that st (a code's status.tagging) reports, if
// only a human can end it and it is current at now: the Tagging reason (QuotaExhausted,
// WeChatError<errcode>), its message with the errcode and what to do, and when it stops being
// current unless it happens again. "" for none: no error, one that passes by itself (-1, WeChat
// unreachable, a tag deleted at WeChat that the registry creates again), or one that is over.
func batchTaggingProblem(st *v1alpha1.TaggingStatus, now time.Time) (reason, message string, until time.Time) {
	if st == nil || st.LastErrorTime == nil {
		return "", "", time.Time{}
	}
	e, ok := wechat.ErrorIn(st.LastError)
	until = st.LastErrorTime.Add(taggingErrorCurrentFor)
	if !ok || !now.Before(until) {
		return "", "", time.Time{}
	}
	var remedy string
	switch {
	case e.Class == wechat.ClassQuota:
		remedy = "The account's daily quota of batchtagging is spent: WeChat resets it at midnight Beijing time, or reset it in the WeChat admin console"
	case e.Class == wechat.ClassToken:
		remedy = "Another system refreshes the AppID's access token with cgi-bin/token, which invalidates the operator's: make it use stable_token, " +
			"or point the account's spec.tokenSource at your central token service"
	case e.Class == wechat.ClassTerminal && e.Code != 45159:
		remedy = "No follower of the account is tagged until this is fixed"
	default:
		return "", "", time.Time{}
	}
	reason, _ = issuance.Classify(e)
	// Without the time (status.tagging.lastErrorTime has it), so that a lasting error, refreshed
	// every few seconds, costs no status write at each look.
	message = fmt.Sprintf("Its scanners are not being tagged: batchtagging fails: %s. %s; each scan is tried again for an hour, then given up",
		st.LastError, remedy)
	return reason, message, until
}

// setTagging records the code's Tagging condition in st; a Warning Event when it turns False or
// changes reason while False, and when to look again.
func setTagging(st *v1alpha1.WeChatQRCodeStatus, code *v1alpha1.WeChatQRCode, acct v1alpha1.Account, now time.Time) (*issuance.Event, time.Duration) {
	c, after := taggingCondition(code, acct, now)
	if c == nil {
		meta.RemoveStatusCondition(&st.Conditions, v1alpha1.ConditionTagging)
		return nil, 0
	}
	return setProblem(&st.Conditions, *c, "TagFollowers"), after
}

// taggingErrorChanged passes the updates of a code whose status.tagging reports a batchtagging
// errcode other than before, or the same one again after a pause long enough for it to have
// stopped being current: while an error lasts the manager refreshes lastErrorTime every few
// seconds, and WeChat's errmsg (in lastError) differs at each call by its request id; the
// condition's end is a requeue, not a watch event.
var taggingErrorChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		a, b := taggingOf(e.ObjectOld), taggingOf(e.ObjectNew)
		if errcodeIn(a.LastError) != errcodeIn(b.LastError) {
			return true
		}
		return b.LastErrorTime != nil && (a.LastErrorTime == nil || b.LastErrorTime.Sub(a.LastErrorTime.Time) >= taggingErrorCurrentFor/2)
	},
}

func taggingOf(o client.Object) v1alpha1.TaggingStatus {
	if c, ok := o.(*v1alpha1.WeChatQRCode); ok && c.Status.Tagging != nil {
		return *c.Status.Tagging
	}
	return v1alpha1.TaggingStatus{}
}

// errcodeIn is the errcode an error's text names, 0 for none.
func errcodeIn(s string) int {
	if e, ok := wechat.ErrorIn(s); ok {
		return e.Code
	}
	return 0
}

// tagRegistry holds the snapshots of the AppIDs this process serves, and serializes each AppID's
// syncs. The zero value is ready.
type tagRegistry struct {
	mu    sync.Mutex
	appID map[string]*appTags
}

type appTags struct {
	mu   sync.Mutex
	snap tagSnapshot
}

func (g *tagRegistry) of(appID string) *appTags {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.appID == nil {
		g.appID = map[string]*appTags{}
	}
	a := g.appID[appID]
	if a == nil {
		a = &appTags{}
		g.appID[appID] = a
	}
	return a
}

// sync reads the account's tags when due and creates those missing that its limit has room
// for, in name order, stopping at the first failure.
func (g *tagRegistry) sync(ctx context.Context, api TagAPI, creds wechat.Credentials, want []tagWant, now func() time.Time) (tagSnapshot, tagOutcome) {
	a := g.of(creds.AppID)
	a.mu.Lock()
	defer a.mu.Unlock()
	var out tagOutcome
	s := a.snap
	read := func() bool {
		tags, err := api.Tags(ctx, creds)
		if err != nil {
			out.err = err
			return false
		}
		s = snapshotOf(tags, now())
		return true
	}
	if tagsReadDue(want, s, now()) && !read() {
		return s, out
	}
	create, _ := tagsToCreate(want, s)
	s = s.clone()
	for _, name := range create {
		t, err := api.CreateTag(ctx, creds, name)
		if err == nil {
			s.ids[t.Name] = t.ID
			s.used++
			out.created = append(out.created, t)
			continue
		}
		switch wechat.ErrCode(err) {
		case 45157: // taken meanwhile, by another system or a human: WeChat's list has it
			if read() {
				continue
			}
		case 45056:
			out.limit = true
			read()
		default:
			out.err = err
		}
		break
	}
	a.snap = s
	return s, out
}

// reconcileTags is the registry's part of an account's reconcile: it observes the codes naming
// tags, syncs when the account is Ready, and records the outcome in st. It returns the Events
// to record and when to sync again (0: no need).
func (r *AccountReconciler) reconcileTags(ctx context.Context, acct v1alpha1.Account, creds wechat.Credentials, st *v1alpha1.WeChatAccountStatus) ([]issuance.Event, time.Duration, error) {
	var codes v1alpha1.WeChatQRCodeList
	if err := r.cache.List(ctx, &codes, client.MatchingFields{IndexTaggedAccount: accountRef(acct).String()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, 0, err
	}
	want := wantedTags(codes.Items)
	ready := meta.IsStatusConditionTrue(st.Conditions, v1alpha1.ConditionReady) && len(want) > 0
	var s tagSnapshot
	var out tagOutcome
	if ready {
		s, out = r.tags.sync(ctx, r.TagAPI, creds, want, r.Clock.Now)
		if out.err != nil {
			logf.FromContext(ctx).Info("the account's tags could not be synced with WeChat", "error", out.err.Error())
		}
	}
	events, again := reportTags(st, acct.GetGeneration(), want, s, out, ready, r.Clock.Now())
	return events, again, nil
}

// codeTagsChanged lets through a code update that changes the tags it names or its account.
var codeTagsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		o, n := e.ObjectOld.(*v1alpha1.WeChatQRCode), e.ObjectNew.(*v1alpha1.WeChatQRCode)
		return !slices.Equal(o.Spec.Tags, n.Spec.Tags) || (len(n.Spec.Tags) > 0 && o.Spec.AccountRef != n.Spec.AccountRef)
	},
}

// accountTagsChanged lets through an account update that changes its registry.
var accountTagsChanged = predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		os, ns := e.ObjectOld.(v1alpha1.Account).AccountStatus(), e.ObjectNew.(v1alpha1.Account).AccountStatus()
		return !equality.Semantic.DeepEqual(os.Tags, ns.Tags) ||
			!equality.Semantic.DeepEqual(os.Condition(v1alpha1.ConditionTagsReady), ns.Condition(v1alpha1.ConditionTagsReady))
	},
}

// taggedCodesOfAccount maps an account to its codes that name tags.
func (r *WeChatQRCodeReconciler) taggedCodesOfAccount(ctx context.Context, acct client.Object) []reconcile.Request {
	codes, err := r.codesOf(ctx, IndexTaggedAccount, accountRef(acct.(v1alpha1.Account)).String())
	if err != nil {
		logf.FromContext(ctx).Error(err, "listing the tagged codes of an account")
		return nil
	}
	reqs := make([]reconcile.Request, len(codes))
	for i := range codes {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&codes[i])}
	}
	return reqs
}
