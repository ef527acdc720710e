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
	"errors"

	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Indexes of the cached codes. Values are "<appID>/<ticket or scene>": an AppID has no "/", so
// the prefix cannot be confused with part of a ticket (base64, which has "/") or a scene string.
const (
	ticketIndex = "callback.ticket"
	sceneIndex  = "callback.scene"
)

func indexKey(appID, value string) string { return appID + "/" + value }

// ticketValues indexes the current ticket and the previous tickets that are still alive, each
// under the account that issued it: after a change of spec.accountRef the old account's tickets
// still count, and so do previous tickets while a failed re-issue leaves no current one.
func ticketValues(c *qrv1alpha1.WeChatQRCode) []string {
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
func sceneValues(c *qrv1alpha1.WeChatQRCode) []string {
	if c.Status.IssuedFor == nil || c.Status.IssuedFor.AppID == "" {
		return nil
	}
	if k := c.Status.IssuedFor.Scene.Key(); k != "" {
		return []string{indexKey(c.Status.IssuedFor.AppID, k)}
	}
	return nil
}

// codeIndex looks the cached codes up by ticketIndex and sceneIndex: the informer's own indexer,
// whose lookup hands out the cached objects themselves. Through the cache's List (a field
// selector parsed, the list type made by reflection, each item copied into it) the lookup took a
// fifth of the handler's CPU and 2 KB of garbage a push (BenchmarkCallbackPush, 2026-11-30).
type codeIndex interface {
	ByIndex(indexName, indexedValue string) ([]any, error)
	// GetByKey finds a code by namespace/name.
	GetByKey(key string) (any, bool, error)
	// List is every code.
	List() []any
}

// indexers are the indexes attribute looks codes up by.
func indexers() toolscache.Indexers {
	return toolscache.Indexers{ticketIndex: codeValues(ticketValues), sceneIndex: codeValues(sceneValues)}
}

func codeValues(values func(*qrv1alpha1.WeChatQRCode) []string) toolscache.IndexFunc {
	return func(o any) ([]string, error) {
		c, ok := o.(*qrv1alpha1.WeChatQRCode)
		if !ok {
			return nil, nil
		}
		return values(c), nil
	}
}

// indexCodes adds the indexes to the codes' informer of c and returns its indexer. The informer
// may already run: client-go indexes what it holds when an index is added.
func indexCodes(ctx context.Context, c cache.Cache) (codeIndex, error) {
	inf, err := c.GetInformer(ctx, &qrv1alpha1.WeChatQRCode{})
	if err != nil {
		return nil, err
	}
	if err := inf.AddIndexers(indexers()); err != nil {
		return nil, err
	}
	shared, ok := inf.(interface{ GetIndexer() toolscache.Indexer })
	if !ok {
		return nil, errors.New("the cache's informer of WeChatQRCodes has no indexer")
	}
	return shared.GetIndexer(), nil
}

// attribute finds the code a scan belongs to: by ticket, or by scene when the push has no
// ticket. It returns the code (nil when there is none) or why there is none: no code, or several
// with none preferred. The code is the cached object itself: read it, never change it.
func attribute(codes codeIndex, appID string, s *scan) (*qrv1alpha1.WeChatQRCode, string, error) {
	index, value := ticketIndex, s.ticket
	if value == "" {
		index, value = sceneIndex, s.scene
	}
	found, err := codes.ByIndex(index, indexKey(appID, value))
	if err != nil {
		return nil, "", err
	}
	switch len(found) {
	case 0:
		return nil, resultUnmatched, nil
	case 1:
		return found[0].(*qrv1alpha1.WeChatQRCode), "", nil
	}
	// A permanent ticket is one code's current ticket and, for a while, another's previous one:
	// WeChat answers the same ticket for the same permanent scene, and the code that gave the
	// scene up keeps its ticket until the controller sees that another code claimed it. The scan
	// is the current holder's.
	var current *qrv1alpha1.WeChatQRCode
	for _, o := range found {
		if c := o.(*qrv1alpha1.WeChatQRCode); s.ticket != "" && currentTicket(c, appID) == s.ticket {
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
