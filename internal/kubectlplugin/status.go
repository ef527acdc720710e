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

package kubectlplugin

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// statusEvents is how many of the code's most recent Events the status screen lists.
const statusEvents = 10

func (p *plugin) statusCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "status NAME",
		Short: "Show one code's state: Ready and why, ticket, expiry, scans, account Secret, Events",
		Long: "Shows everything about one WeChatQRCode on one screen. Exits 0 when the code is Ready " +
			"for its current spec, 2 when it is not, 1 when its state could not be read.",
		Example: "  kubectl wechat status spring-sale-poster\n  kubectl wechat status -n marketing booth-checkin || page-oncall",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, code, err := p.getCode(cmd, args[0])
			if err != nil {
				return err
			}
			s := screen{w: cmd.OutOrStdout(), now: p.clock.Now()}
			isReady := s.code(code)
			s.account(cmd, c, code)
			s.events(cmd, c, code)
			if !isReady {
				return &ExitError{Code: ExitNotReady}
			}
			return nil
		},
	}
}

// screen writes the status screen: one "Label: value" line per fact.
type screen struct {
	w   io.Writer
	now time.Time
}

func (s screen) line(label, format string, a ...any) {
	fmt.Fprintf(s.w, "%-10s %s\n", label+":", fmt.Sprintf(format, a...))
}

// more continues the previous line's value.
func (s screen) more(format string, a ...any) {
	fmt.Fprintf(s.w, "%-10s %s\n", "", fmt.Sprintf(format, a...))
}

// when is a time with how far it is from now: "2026-11-29T10:16:24Z (in 6d23h)".
func (s screen) when(t metav1.Time) string {
	d := t.Sub(s.now)
	if d >= 0 {
		return fmt.Sprintf("%s (in %s)", t.UTC().Format(time.RFC3339), duration.HumanDuration(d))
	}
	return fmt.Sprintf("%s (%s ago)", t.UTC().Format(time.RFC3339), duration.HumanDuration(-d))
}

func (s screen) code(code *v1alpha1.WeChatQRCode) bool {
	st := code.Status
	isReady, why := ready(code)
	s.line("Name", "%s/%s", code.Namespace, code.Name)
	s.line("Type", "%s, %s", code.Spec.Type, sceneText(code.Spec.Scene))
	s.line("Ready", "%s", why)
	if st.FailedAttempts > 0 && st.LastFailureTime != nil {
		s.line("Failures", "%d in a row, the last at %s", st.FailedAttempts, s.when(*st.LastFailureTime))
	}
	if st.Ticket == "" {
		s.line("Ticket", "none yet")
	} else {
		s.line("Ticket", "%s", abbreviate(st.Ticket))
		if st.IssuedAt != nil {
			s.more("issued %s", s.when(*st.IssuedAt))
		}
		s.line("URL", "%s", st.URL)
	}
	switch {
	case code.Spec.Type == v1alpha1.Permanent && st.Ticket != "":
		s.line("Expires", "never (Permanent: never re-issued)")
	case st.ExpiresAt != nil:
		s.line("Expires", "%s", s.when(*st.ExpiresAt))
	}
	if st.RenewalTime != nil {
		s.line("Renewal", "%s", s.when(*st.RenewalTime))
	}
	if n := len(st.PreviousTickets); n > 0 {
		s.line("Previous", "%d earlier %s still valid, scans of them still count", n, plural(n, "ticket", "tickets"))
		for _, t := range st.PreviousTickets {
			if t.ExpiresAt == nil {
				// A Permanent code's ticket from before its scene changed: kept until another code claims that scene.
				s.more("%s never expires (permanent)", abbreviate(t.Ticket))
				continue
			}
			s.more("%s expires %s", abbreviate(t.Ticket), s.when(*t.ExpiresAt))
		}
	}
	s.scans(code.Annotations)
	s.tags(code)
	s.delivery(code)
	if at, ok := code.Annotations[v1alpha1.AnnotationRenewRequestedAt]; ok {
		// The operator honours a request made after the current ticket was issued.
		state := "pending"
		if t, err := time.Parse(time.RFC3339, at); err == nil && st.IssuedAt != nil && !t.After(st.IssuedAt.Time) {
			state = "done: the current ticket was issued since"
		}
		s.line("Renew", "requested at %s (%s)", at, state)
	}
	return isReady
}

func (s screen) scans(ann map[string]string) {
	scans, ok := ann[v1alpha1.AnnotationScans]
	if !ok {
		s.line("Scans", "none counted")
		return
	}
	text := scans
	if subs, ok := ann[v1alpha1.AnnotationSubscribes]; ok {
		text += ", " + subs + " of them by new followers"
	}
	if unique, ok := ann[v1alpha1.AnnotationUniqueScanners]; ok {
		text += ", " + unique + " distinct scanners"
	}
	if last, err := time.Parse(time.RFC3339, ann[v1alpha1.AnnotationLastScanTime]); err == nil {
		text += "; last " + s.when(metav1.NewTime(last))
	}
	s.line("Scans", "%s", text)
}

// tags reports the tags the code gives its scanners and its Tagging condition.
func (s screen) tags(code *v1alpha1.WeChatQRCode) {
	if len(code.Spec.Tags) == 0 {
		return
	}
	names := make([]string, len(code.Spec.Tags))
	for i, t := range code.Spec.Tags {
		names[i] = string(t)
	}
	who := "every scanner"
	if code.Spec.TagOnOrDefault() == v1alpha1.TagOnNewFollowers {
		who = "new followers only"
	}
	s.line("Tags", "%s (%s)", strings.Join(names, ", "), who)
	if t := code.Status.Tagging; t != nil {
		skipped := t.InvalidOpenID + t.ForeignOpenID + t.FollowerTagLimit
		s.more("%d scanners tagged, %d skipped since %s (invalid OpenID %d, another account's %d, at WeChat's 20 tags %d)",
			t.Tagged, skipped, s.when(t.Since), t.InvalidOpenID, t.ForeignOpenID, t.FollowerTagLimit)
		if t.LastError != "" {
			s.more("last error: %s", t.LastError)
		}
	}
	s.condition(code.Status.Conditions, v1alpha1.ConditionTagging)
}

// delivery reports how the code's own scan events reach its spec.sink.
func (s screen) delivery(code *v1alpha1.WeChatQRCode) {
	d := code.Status.SinkDelivery
	if code.Spec.Sink == nil {
		return
	}
	if d == nil {
		s.line("Delivery", "no report from the deliverer yet")
	} else {
		text := fmt.Sprintf("%d waiting", d.Backlog)
		if d.OldestUndeliveredTime != nil {
			text += ", the oldest scanned " + s.when(*d.OldestUndeliveredTime)
		}
		if d.LastDeliveryTime != nil {
			text += "; last delivered " + s.when(*d.LastDeliveryTime)
		}
		if d.Expired > 0 {
			text += fmt.Sprintf("; %d expired", d.Expired)
		}
		s.line("Delivery", "%s", text)
		if d.LastError != "" {
			s.more("last error: %s", d.LastError)
		}
	}
	s.condition(code.Status.Conditions, v1alpha1.ConditionSinkDelivering)
}

// condition shows a condition of the code under the line before it: its status and reason, and
// its message when it is not True.
func (s screen) condition(conds []metav1.Condition, typ string) {
	c := meta.FindStatusCondition(conds, typ)
	switch {
	case c == nil:
		s.more("%s: not reported yet", typ)
	case c.Status == metav1.ConditionTrue:
		s.more("%s: True (%s)", typ, c.Reason)
	default:
		s.more("%s: %s (%s): %s", typ, c.Status, c.Reason, c.Message)
	}
}

// account reports the code's account as the operator sees it: its Ready condition, AppID and
// where its credentials are. The Secret itself is never read: the account's status already says
// whether its keys work, and a user who may read codes need not be one who may read Secrets.
func (s screen) account(cmd *cobra.Command, c client.Client, code *v1alpha1.WeChatQRCode) {
	ref := code.Spec.AccountRef
	kind := ref.KindOrDefault()
	acct := v1alpha1.NewAccount(kind)
	key := client.ObjectKey{Name: ref.Name}
	if kind == v1alpha1.KindWeChatAccount {
		key.Namespace = code.Namespace
	}
	name := kind + " " + ref.Name
	err := c.Get(cmd.Context(), key, acct)
	switch {
	case apierrors.IsNotFound(err):
		s.line("Account", "%s: not found (create it, or point spec.accountRef at an existing account)", name)
		return
	case apierrors.IsForbidden(err):
		s.line("Account", "%s: you may not read it (get %s is forbidden)", name, strings.ToLower(kind)+"s")
		return
	case err != nil:
		s.line("Account", "%s: %v", name, err)
		return
	}
	st := acct.AccountStatus()
	s.line("Account", "%s, Ready: %s", name, accountReady(acct))
	if cond := st.Condition(v1alpha1.ConditionReady); cond != nil && cond.Status != metav1.ConditionTrue && cond.Message != "" {
		s.more("%s", cond.Message)
	}
	where := "the operator's namespace"
	if acct.GetNamespace() != "" {
		where = "namespace " + acct.GetNamespace()
	}
	s.more("AppID %s, credentials in Secret %s (%s)", orNone(st.AppID), acct.AccountSpec().SecretRef.Name, where)
	if st.ForwardURL != "" {
		s.more("pushes it does not answer go on to %s", st.ForwardURL)
	}
	type sink struct {
		uri       string
		maxEvents int32
	}
	for _, k := range slices.Compact([]sink{{st.SinkURI, st.SinkMaxEvents}, {code.Status.SinkURI, code.Status.SinkMaxEvents}}) {
		if k.uri != "" {
			s.more("scans are sent to %s%s", k.uri, batching(k.maxEvents))
		}
	}
	if len(code.Spec.Tags) > 0 && st.Tags != nil {
		s.more("tags at WeChat %s: %s", tagsText(st.Tags), tagIDs(code.Spec.Tags, st.Tags))
	}
}

// tagIDs is each of names with WeChat's id of it as the account's registry has it.
func tagIDs(names []v1alpha1.TagName, reg *v1alpha1.AccountTags) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = string(n) + " (not at WeChat yet)"
		for _, u := range reg.Tags {
			if u.Name == string(n) && u.ID != 0 {
				out[i] = fmt.Sprintf("%s (id %d)", n, u.ID)
			}
		}
	}
	return strings.Join(out, ", ")
}

// batching says how a sink gets its events when they go in batches (status.sinkMaxEvents).
func batching(maxEvents int32) string {
	if maxEvents == 0 {
		return ""
	}
	return fmt.Sprintf(", in batches of up to %d events", maxEvents)
}

// events lists the code's latest Events, oldest first as kubectl describe does. They are
// selected by UID: an earlier code of the same name has other Events.
func (s screen) events(cmd *cobra.Command, c client.Client, code *v1alpha1.WeChatQRCode) {
	var list eventsv1.EventList
	if err := c.List(cmd.Context(), &list, client.InNamespace(code.Namespace),
		client.MatchingFields{"regarding.uid": string(code.UID)}); err != nil {
		s.line("Events", "cannot list: %v", err)
		return
	}
	if len(list.Items) == 0 {
		s.line("Events", "none")
		return
	}
	slices.SortStableFunc(list.Items, func(a, b eventsv1.Event) int { return cmp.Compare(lastSeen(a).UnixNano(), lastSeen(b).UnixNano()) })
	items := list.Items[max(0, len(list.Items)-statusEvents):]
	fmt.Fprintln(s.w, "Events:")
	tw := tabwriter.NewWriter(s.w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "  LAST SEEN\tTYPE\tREASON\tCOUNT\tMESSAGE")
	for _, e := range items {
		count := 1
		if e.Series != nil {
			count = int(e.Series.Count)
		} else if e.DeprecatedCount > 0 {
			count = int(e.DeprecatedCount)
		}
		fmt.Fprintf(tw, "  %s ago\t%s\t%s\t%d\t%s\n", duration.HumanDuration(s.now.Sub(lastSeen(e))), e.Type, e.Reason, count, e.Note)
	}
	// The screen's other lines go to the terminal unchecked too: if it is gone, no one reads an error.
	_ = tw.Flush()
}

// lastSeen is when an Event last happened, whichever API wrote it.
func lastSeen(e eventsv1.Event) time.Time {
	switch {
	case e.Series != nil:
		return e.Series.LastObservedTime.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	case !e.DeprecatedLastTimestamp.IsZero():
		return e.DeprecatedLastTimestamp.Time
	}
	return e.CreationTimestamp.Time
}

func sceneText(sc v1alpha1.Scene) string {
	if sc.ID != nil {
		return fmt.Sprintf("scene id %d", *sc.ID)
	}
	return fmt.Sprintf("scene str %q", sc.Key())
}

// abbreviate shortens a ticket (about a hundred characters) to what tells tickets apart on screen.
func abbreviate(ticket string) string {
	const keep = 24
	if len(ticket) <= keep {
		return ticket
	}
	return ticket[:keep] + "…"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
