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
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Cache field indexes. Values are "<appID>/<ticket or scene>": an AppID has no "/", so the prefix
// cannot be confused with part of a ticket (base64, which has "/") or a scene string.
const (
	ticketIndex = "callback.ticket"
	sceneIndex  = "callback.scene"
)

func indexKey(appID, value string) string { return appID + "/" + value }

// ticketValues indexes the current ticket and the previous tickets that are still alive, each
// under the account that issued it: after a change of spec.accountRef the old account's tickets
// still count, and so do previous tickets while a failed re-issue leaves no current one.
func ticketValues(o client.Object) []string {
	c := o.(*qrv1alpha1.WeChatQRCode)
	var v []string
	if c.Status.IssuedFor != nil && currentTicket(c, c.Status.IssuedFor.AppID) != "" {
		v = append(v, indexKey(c.Status.IssuedFor.AppID, c.Status.Ticket))
	}
	for _, p := range c.Status.PreviousTickets {
		if p.Ticket != "" && p.AppID != "" {
			v = append(v, indexKey(p.AppID, p.Ticket))
		}
	}
	return v
}

// currentTicket is c's current ticket if it was issued for appID, else "".
func currentTicket(c *qrv1alpha1.WeChatQRCode, appID string) string {
	if appID == "" || c.Status.IssuedFor == nil || c.Status.IssuedFor.AppID != appID {
		return ""
	}
	return c.Status.Ticket
}

// sceneValues indexes the scene a ticket was issued for, for pushes without a Ticket.
func sceneValues(o client.Object) []string {
	c := o.(*qrv1alpha1.WeChatQRCode)
	if c.Status.IssuedFor == nil || c.Status.IssuedFor.AppID == "" {
		return nil
	}
	if k := c.Status.IssuedFor.Scene.Key(); k != "" {
		return []string{indexKey(c.Status.IssuedFor.AppID, k)}
	}
	return nil
}

// addIndexes registers the indexes; the cache must not have started yet.
func addIndexes(ctx context.Context, indexer client.FieldIndexer) error {
	if err := indexer.IndexField(ctx, &qrv1alpha1.WeChatQRCode{}, ticketIndex, ticketValues); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &qrv1alpha1.WeChatQRCode{}, sceneIndex, sceneValues)
}

// attribute finds the code a scan belongs to: by ticket, or by scene when the push has no
// ticket. It returns the code (nil when there is none) or why there is none: no code, or several
// with none preferred.
func attribute(ctx context.Context, cache client.Reader, appID string, s *scan) (*qrv1alpha1.WeChatQRCode, string, error) {
	index, value := ticketIndex, s.ticket
	if value == "" {
		index, value = sceneIndex, s.scene
	}
	var list qrv1alpha1.WeChatQRCodeList
	// Read-only use of the cached objects, so they need not be copied.
	if err := cache.List(ctx, &list, client.MatchingFields{index: indexKey(appID, value)}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, "", err
	}
	switch len(list.Items) {
	case 0:
		return nil, resultUnmatched, nil
	case 1:
		return &list.Items[0], "", nil
	}
	// A permanent ticket is one code's current ticket and, for a while, another's previous one:
	// WeChat answers the same ticket for the same permanent scene, and the code that gave the
	// scene up keeps its ticket until the controller sees that another code claimed it. The scan
	// is the current holder's.
	var current *qrv1alpha1.WeChatQRCode
	for i := range list.Items {
		if c := &list.Items[i]; s.ticket != "" && currentTicket(c, appID) == s.ticket {
			if current != nil {
				return nil, resultAmbiguous, nil
			}
			current = c
		}
	}
	if current == nil {
		return nil, resultAmbiguous, nil
	}
	return current, "", nil
}
