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
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// none is what a column shows for a fact the operator has not reported.
const none = "-"

func (p *plugin) accountsCommand() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:     "accounts",
		Aliases: []string{"account"},
		Short:   "List the Official Accounts: Ready and why not, quota, permanent codes, last push, codes",
		Long: "Lists the WeChatAccounts of the namespace (of every namespace with -A) and every " +
			"ClusterWeChatAccount, which codes of any namespace may use. QUOTA is WeChat's own count of " +
			"today's qrcode/create calls as the operator last read it; PERMANENT is the permanent codes the " +
			"cluster holds against spec.permanentCodeLimit; TAGS is the user tags the account has at WeChat against " +
			"WeChat's limit of 100, with the names its codes want that WeChat lacks; LAST PUSH is the last push whose signature verified.",
		Example: "  kubectl wechat accounts\n  kubectl wechat accounts -A",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			accounts, err := p.listAccounts(cmd, all)
			if err != nil {
				return err
			}
			p.printAccounts(cmd, accounts, all)
			return nil
		},
	}
	cmd.Flags().BoolVarP(&all, "all-namespaces", "A", false, "list the WeChatAccounts of every namespace")
	return cmd
}

// listAccounts reads the namespace's (or every namespace's) WeChatAccounts, then the
// ClusterWeChatAccounts, in the API server's order (by namespace and name).
func (p *plugin) listAccounts(cmd *cobra.Command, all bool) ([]v1alpha1.Account, error) {
	c, err := p.client()
	if err != nil {
		return nil, err
	}
	var opts []client.ListOption
	if !all {
		ns, err := p.namespace()
		if err != nil {
			return nil, err
		}
		opts = append(opts, client.InNamespace(ns))
	}
	var namespaced v1alpha1.WeChatAccountList
	if err := c.List(cmd.Context(), &namespaced, opts...); err != nil {
		return nil, explainList(err, "WeChatAccounts")
	}
	var cluster v1alpha1.ClusterWeChatAccountList
	if err := c.List(cmd.Context(), &cluster); err != nil {
		return nil, explainList(err, "ClusterWeChatAccounts")
	}
	out := make([]v1alpha1.Account, 0, len(namespaced.Items)+len(cluster.Items))
	for i := range namespaced.Items {
		out = append(out, &namespaced.Items[i])
	}
	for i := range cluster.Items {
		out = append(out, &cluster.Items[i])
	}
	return out, nil
}

func explainList(err error, what string) error {
	if meta.IsNoMatchError(err) {
		return fmt.Errorf("this cluster has no %s API (install the operator's CRDs: make install): %w", what, err)
	}
	return fmt.Errorf("listing %s: %w", what, err)
}

func (p *plugin) printAccounts(cmd *cobra.Command, accounts []v1alpha1.Account, all bool) {
	w := cmd.OutOrStdout()
	if len(accounts) == 0 {
		fmt.Fprintln(w, "No accounts found.")
		return
	}
	now := p.clock.Now()
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	header := "KIND\t"
	if all {
		header += "NAMESPACE\t"
	}
	fmt.Fprintln(tw, header+"NAME\tAPPID\tREADY\tQUOTA\tPERMANENT\tTAGS\tLAST PUSH\tCODES")
	for _, a := range accounts {
		st := a.AccountStatus()
		fmt.Fprintf(tw, "%s\t", a.Ref().Kind)
		if all {
			fmt.Fprintf(tw, "%s\t", orNone(a.GetNamespace()))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.GetName(), orNone(st.AppID), accountReady(a),
			quotaText(st.Quota), permanentText(st.PermanentCodes), tagsText(st.Tags), lastPush(st.Callback, now), codesText(st.Codes))
	}
	// As the status screen: if the terminal is gone, no one reads an error.
	_ = tw.Flush()
}

// accountReady is the Ready condition's status, with its reason when the account is not Ready
// or the operator has not yet looked at the current spec.
func accountReady(a v1alpha1.Account) string {
	cond := a.AccountStatus().Condition(v1alpha1.ConditionReady)
	switch {
	case cond == nil:
		return "Unknown"
	case cond.ObservedGeneration != a.GetGeneration():
		return "Unknown (spec not yet observed)"
	case cond.Status == "True":
		return "True"
	}
	return fmt.Sprintf("%s (%s)", cond.Status, cond.Reason)
}

func quotaText(q *v1alpha1.QRCodeQuota) string {
	switch {
	case q == nil || q.DailyLimit == 0 && q.Error != "":
		return none
	case q.Error != "":
		// The numbers are those of the last read that worked.
		return fmt.Sprintf("%d/%d (read failed)", q.Used, q.DailyLimit)
	}
	return fmt.Sprintf("%d/%d", q.Used, q.DailyLimit)
}

func permanentText(p *v1alpha1.PermanentCodeUsage) string {
	if p == nil {
		return none
	}
	return fmt.Sprintf("%d/%d", p.Used, p.Limit)
}

// tagsText is the tag budget: tags at WeChat against its limit, and the names the codes want
// that WeChat does not have (not created yet, or no room under the limit).
func tagsText(t *v1alpha1.AccountTags) string {
	if t == nil {
		return none
	}
	text := fmt.Sprintf("%d/%d", t.Used, t.Limit)
	missing := 0
	for _, u := range t.Tags {
		if u.ID == 0 {
			missing++
		}
	}
	if missing > 0 {
		text += fmt.Sprintf(" (%d missing)", missing)
	}
	return text
}

func lastPush(cb *v1alpha1.AccountCallbackStatus, now time.Time) string {
	if cb == nil || cb.LastVerifiedPushTime == nil {
		return "never"
	}
	return duration.HumanDuration(now.Sub(cb.LastVerifiedPushTime.Time))
}

func codesText(c *v1alpha1.AccountCodes) string {
	if c == nil {
		return none
	}
	return fmt.Sprintf("%d/%d", c.Ready, c.Total)
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}
