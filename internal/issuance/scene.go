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
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// PermanentSceneKey names the permanent scene a spec claims ("id:123" or "str:abc", so that id
// 123 and string "123" stay apart), or "" for a Temporary code: WeChat gives every temporary
// request its own ticket, so only permanent scenes can be contested.
func PermanentSceneKey(spec *v1alpha1.WeChatQRCodeSpec) string {
	switch {
	case spec.Type != v1alpha1.Permanent:
		return ""
	case spec.Scene.ID != nil:
		return "id:" + strconv.FormatInt(*spec.Scene.ID, 10)
	case spec.Scene.Str != nil:
		return "str:" + *spec.Scene.Str
	}
	return ""
}

// Claim is one WeChatQRCode claiming a permanent scene of an AppID.
type Claim struct {
	Namespace, Name string
	Created         time.Time
	// Holds: the code's status already carries the scene's ticket.
	Holds bool
}

// SceneHolder picks the claim that may hold the scene. A code that already holds it keeps it, so
// that editing an older code onto a scene in use does not take a working code's ticket away; among
// the others the oldest wins, then namespace/name, an order every replica and every reconcile
// computes alike.
func SceneHolder(claims []Claim) Claim {
	return slices.MinFunc(claims, func(a, b Claim) int {
		if a.Holds != b.Holds {
			if a.Holds {
				return -1
			}
			return 1
		}
		return cmp.Or(a.Created.Compare(b.Created), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
}
