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
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/destination"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/issuance"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// accountKinds are the kinds of account, in the order they are listed.
var accountKinds = []string{v1alpha1.KindWeChatAccount, v1alpha1.KindClusterWeChatAccount}

// listAccounts lists the accounts of both kinds matching opts.
func listAccounts(ctx context.Context, c client.Reader, opts ...client.ListOption) ([]v1alpha1.Account, error) {
	var out []v1alpha1.Account
	var wa v1alpha1.WeChatAccountList
	if err := c.List(ctx, &wa, opts...); err != nil {
		return nil, err
	}
	for i := range wa.Items {
		out = append(out, &wa.Items[i])
	}
	var ca v1alpha1.ClusterWeChatAccountList
	if err := c.List(ctx, &ca, opts...); err != nil {
		return nil, err
	}
	for i := range ca.Items {
		out = append(out, &ca.Items[i])
	}
	return out, nil
}

// refOf is the account resource a code in namespace ns refers to.
func refOf(ns string, ref v1alpha1.AccountReference) pushconfig.Ref {
	r := pushconfig.Ref{Kind: ref.KindOrDefault(), Name: ref.Name}
	if r.Kind == v1alpha1.KindWeChatAccount {
		r.Namespace = ns
	}
	return r
}

// accountRef is the account resource itself.
func accountRef(a v1alpha1.Account) pushconfig.Ref {
	return pushconfig.Ref{Kind: a.Ref().Kind, Namespace: a.GetNamespace(), Name: a.GetName()}
}

// describe names an account resource in a message.
func describe(r pushconfig.Ref) string {
	if r.Namespace == "" {
		return fmt.Sprintf("%s %q", r.Kind, r.Name)
	}
	return fmt.Sprintf("%s %q in namespace %s", r.Kind, r.Name, r.Namespace)
}

// accountsCommon is what the reconcilers share: the reader of account Secrets, where
// ClusterWeChatAccounts keep theirs, and the permanent codes being issued.
type accountsCommon struct {
	cache   client.Reader
	secrets *secrets
	// clusterNamespace holds the Secrets of ClusterWeChatAccounts and the projected push config.
	clusterNamespace string
	budget           *budget
}

// secretKey is where an account's Secret lives.
func (s *accountsCommon) secretKey(a v1alpha1.Account) types.NamespacedName {
	ns := a.GetNamespace()
	if ns == "" {
		ns = s.clusterNamespace
	}
	return types.NamespacedName{Namespace: ns, Name: a.AccountSpec().SecretRef.Name}
}

// referrer is an account as the holder of spec.forward and spec.sink: a ClusterWeChatAccount's
// references point into the operator's namespace unless they name another.
func (s *accountsCommon) referrer(a v1alpha1.Account) destination.Referrer {
	if a.GetNamespace() == "" {
		return destination.Referrer{Namespace: s.clusterNamespace, Cluster: true}
	}
	return destination.Referrer{Namespace: a.GetNamespace()}
}

// resolved is a code's account as the code reconciler sees it.
type resolved struct {
	ref     pushconfig.Ref
	account v1alpha1.Account
	secret  secret
	creds   wechat.Credentials
	// problem says why codes cannot use the account now.
	problem *accountProblem
}

// resolve finds the account a code refers to and says whether codes may use it: it must exist
// and be Ready for its current spec and Secret (the account controller checked the token with
// exactly those), so that a code never calls WeChat with credentials the account has not proven.
func (s *accountsCommon) resolve(ctx context.Context, ns string, ref v1alpha1.AccountReference) (resolved, error) {
	out := resolved{ref: refOf(ns, ref)}
	acct := v1alpha1.NewAccount(out.ref.Kind)
	if err := s.cache.Get(ctx, types.NamespacedName{Namespace: out.ref.Namespace, Name: out.ref.Name}, acct); err != nil {
		if !apierrors.IsNotFound(err) {
			return resolved{}, err
		}
		msg, err := s.notFound(ctx, out.ref)
		if err != nil {
			return resolved{}, err
		}
		out.problem = &accountProblem{reason: v1alpha1.ReasonAccountNotFound, message: msg}
		return out, nil
	}
	out.account = acct
	sec, err := s.secrets.get(ctx, s.secretKey(acct))
	if err != nil && !isProblem(err) {
		return resolved{}, err
	}
	out.secret = sec
	st := acct.AccountStatus()
	r := st.Condition(v1alpha1.ConditionReady)
	switch {
	case r == nil || r.ObservedGeneration != acct.GetGeneration() || st.ObservedSecretVersion != sec.version:
		out.problem = problemOf(issuance.AccountChecking(describe(out.ref)))
	case r.Status != metav1.ConditionTrue:
		out.problem = problemOf(issuance.AccountNotReady(describe(out.ref), r.Reason, r.Message))
	default:
		var problem *accountProblem
		if out.creds, problem = apiCredentials(sec, acct.AccountSpec(), acct.AccountSpec().SecretRef.Name); problem != nil {
			out.problem = problem
		}
	}
	return out, nil
}

// notFound says that ref names no account. A WeChatAccount not found while a ClusterWeChatAccount
// of that name exists is named: accountRef.kind defaults to WeChatAccount, so a code meant for the
// cluster's account that omits the kind lands here.
func (s *accountsCommon) notFound(ctx context.Context, ref pushconfig.Ref) (string, error) {
	if ref.Kind == v1alpha1.KindWeChatAccount {
		err := s.cache.Get(ctx, types.NamespacedName{Name: ref.Name}, &v1alpha1.ClusterWeChatAccount{})
		switch {
		case err == nil:
			return fmt.Sprintf("no WeChatAccount %s/%s; a ClusterWeChatAccount %s exists: set accountRef.kind: ClusterWeChatAccount to use it",
				ref.Namespace, ref.Name, ref.Name), nil
		case !apierrors.IsNotFound(err):
			return "", err
		}
	}
	return fmt.Sprintf("spec.accountRef names %s, which does not exist: create it, or point spec.accountRef at an existing account", describe(ref)), nil
}

func isProblem(err error) bool {
	_, ok := err.(*accountProblem)
	return ok
}

// permanentHolder: the code holds a permanent ticket of appID, one of the account's permanent
// codes at WeChat.
func permanentHolder(c *v1alpha1.WeChatQRCode, appID string) bool {
	f := c.Status.IssuedFor
	return c.Status.Ticket != "" && f != nil && f.Type == v1alpha1.Permanent && f.AppID == appID
}

// budget counts the permanent codes of each account: those the cache shows holding a permanent
// ticket, plus those this process is issuing one to right now (the cache learns of them only
// after their status is written). With one leader, counting and reserving under one lock keeps
// two workers from both taking the last unit of a budget.
type budget struct {
	mu sync.Mutex
	// issuing: account ref → codes being issued a permanent ticket, until the cache shows it.
	issuing map[string]map[types.NamespacedName]bool
}

func newBudget() *budget { return &budget{issuing: map[string]map[types.NamespacedName]bool{}} }

// used counts the account's permanent codes other than self, among codes (the account's codes
// in the cache); reservations the cache now shows, or of codes gone, are forgotten.
func (b *budget) used(account string, appID string, codes []v1alpha1.WeChatQRCode, self types.NamespacedName) int32 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.usedLocked(account, appID, codes, self)
}

func (b *budget) usedLocked(account string, appID string, codes []v1alpha1.WeChatQRCode, self types.NamespacedName) int32 {
	pending := b.issuing[account]
	present := map[types.NamespacedName]bool{}
	var n int32
	for i := range codes {
		k := client.ObjectKeyFromObject(&codes[i])
		present[k] = true
		if permanentHolder(&codes[i], appID) {
			delete(pending, k)
			if k != self {
				n++
			}
		}
	}
	for k := range pending {
		if !present[k] {
			delete(pending, k)
		} else if k != self {
			n++
		}
	}
	return n
}

// reserve counts again and, if the budget has room, records self as being issued. It returns
// the count it decided with.
func (b *budget) reserve(account, appID string, codes []v1alpha1.WeChatQRCode, self types.NamespacedName, limit int32) (int32, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := b.usedLocked(account, appID, codes, self)
	if n >= limit {
		return n, false
	}
	if b.issuing[account] == nil {
		b.issuing[account] = map[types.NamespacedName]bool{}
	}
	b.issuing[account][self] = true
	return n, true
}

// release forgets a reservation whose call failed.
func (b *budget) release(account string, self types.NamespacedName) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.issuing[account], self)
}
