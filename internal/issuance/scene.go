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

package issuance

import (
	"cmp"
	"slices"
	"strconv"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// PermanentSceneKey names the permanent scene of that type ("id:123" or "str:abc", so that id
// 123 and string "123" stay apart), or "" for a Temporary code: WeChat gives every temporary
// request its own ticket, so only permanent scenes can be contested.
func PermanentSceneKey(t v1alpha1.QRCodeType, s v1alpha1.Scene) string {
	switch {
	case t != v1alpha1.Permanent:
		return ""
	case s.ID != nil:
		return "id:" + strconv.FormatInt(*s.ID, 10)
	case s.Str != nil:
		return "str:" + *s.Str
	}
	return ""
}

// PreviousPermanentSceneKeys are the permanent scenes of the code's previous tickets.
func PreviousPermanentSceneKeys(st *v1alpha1.WeChatQRCodeStatus) []string {
	var keys []string
	for _, p := range st.PreviousTickets {
		if p.ExpiresAt == nil {
			keys = append(keys, PermanentSceneKey(v1alpha1.Permanent, p.Scene))
		}
	}
	return keys
}

// sceneHolder returns the neighbour that may hold the permanent scene the code claims, or nil
// when the code may hold it itself (or claims none). A code that already holds the scene keeps
// it, so that editing an older code onto a scene in use does not take a working code's ticket
// away; among the others the oldest wins, then namespace/name, an order every replica and every
// reconcile computes alike.
func (d *decision) sceneHolder(holds bool) *v1alpha1.WeChatQRCode {
	key := PermanentSceneKey(d.Code.Spec.Type, d.Code.Spec.Scene)
	if key == "" {
		return nil
	}
	type claim struct {
		code  *v1alpha1.WeChatQRCode
		holds bool
	}
	claims := []claim{{d.Code, holds}}
	for _, n := range d.Neighbours {
		if n.AppID == d.Account.AppID && PermanentSceneKey(n.Code.Spec.Type, n.Code.Spec.Scene) == key {
			f := n.Code.Status.IssuedFor
			claims = append(claims, claim{n.Code, n.Code.Status.Ticket != "" && f != nil &&
				f.AppID == n.AppID && f.Type == v1alpha1.Permanent && f.Scene.Equal(n.Code.Spec.Scene)})
		}
	}
	first := slices.MinFunc(claims, func(a, b claim) int {
		if a.holds != b.holds {
			if a.holds {
				return -1
			}
			return 1
		}
		return cmp.Or(a.code.CreationTimestamp.Compare(b.code.CreationTimestamp.Time),
			cmp.Compare(a.code.Namespace, b.code.Namespace), cmp.Compare(a.code.Name, b.code.Name))
	})
	if first.code == d.Code {
		return nil
	}
	return first.code
}

// claimedByNeighbour: another code of the ticket's AppID claims the permanent scene of p, so
// WeChat will answer it with p's ticket, which then counts for that code only.
func (d *decision) claimedByNeighbour(p v1alpha1.PreviousTicket) bool {
	key := PermanentSceneKey(v1alpha1.Permanent, p.Scene)
	for _, n := range d.Neighbours {
		if n.AppID == p.AppID && PermanentSceneKey(n.Code.Spec.Type, n.Code.Spec.Scene) == key {
			return true
		}
	}
	return false
}

// sceneText names a scene in messages.
func sceneText(s v1alpha1.Scene) string {
	if s.ID != nil {
		return "scene id " + strconv.FormatInt(*s.ID, 10)
	}
	return "scene str " + strconv.Quote(s.Key())
}
