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
	"errors"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/tagging"
)

// TaggingLookup is what the tagging endpoint needs of a code: its account's credentials, by the
// same rule as issuing (the account Ready for its current spec and Secret), and the WeChat ids
// of its tags from the account's registry (status.tags).
func (rs *Reconcilers) TaggingLookup() tagging.Lookup { return taggingLookup{rs.Codes.accountsCommon} }

type taggingLookup struct{ *accountsCommon }

func (l taggingLookup) Code(ctx context.Context, namespace, name string) (tagging.Code, bool, error) {
	code := &v1alpha1.WeChatQRCode{}
	switch err := l.cache.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, code); {
	case apierrors.IsNotFound(err):
		return tagging.Code{}, false, nil
	case err != nil:
		return tagging.Code{}, false, err
	case len(code.Spec.Tags) == 0:
		return tagging.Code{}, false, nil
	}
	res, err := l.resolve(ctx, namespace, code.Spec.AccountRef)
	switch {
	case err != nil:
		return tagging.Code{}, false, err
	case res.problem != nil:
		return tagging.Code{}, false, errors.New(res.problem.message)
	}
	ids := map[string]int64{}
	if reg := res.account.AccountStatus().Tags; reg != nil {
		for _, t := range reg.Tags {
			if t.ID != 0 {
				ids[t.Name] = t.ID
			}
		}
	}
	out := tagging.Code{Creds: res.creds}
	for _, n := range code.Spec.Tags {
		if id, ok := ids[string(n)]; ok {
			out.TagIDs = append(out.TagIDs, id)
		} else {
			out.Missing = append(out.Missing, string(n))
		}
	}
	return out, true, nil
}
