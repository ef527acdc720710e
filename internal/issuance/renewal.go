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
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// scheduledRenewal is when the current ticket of a Temporary code is due for renewal, recomputed
// from what status recorded at issuance and the spec's current renewBefore; false when status
// lacks the times to compute it.
func scheduledRenewal(code *v1alpha1.WeChatQRCode) (time.Time, bool) {
	st := &code.Status
	if st.IssuedAt == nil || st.ExpiresAt == nil || !st.ExpiresAt.After(st.IssuedAt.Time) {
		return time.Time{}, false
	}
	var renewBefore time.Duration
	if code.Spec.RenewBefore != nil {
		renewBefore = code.Spec.RenewBefore.Duration
	}
	return renewalTime(st.IssuedAt.Time, st.ExpiresAt.Time, renewBefore, jitterSeed(code, st.Ticket)), true
}

// renewalTime places the renewal of a ticket that lives from issuedAt to expiresAt.
//
// renewBefore defaults to a third of the lifetime WeChat granted (not of spec.ttl: WeChat may
// grant less), and falls back to that default when it is not shorter than the lifetime.
// A jitter of up to a tenth of the time the ticket is current (lifetime - renewBefore) moves the
// renewal earlier, never later, so that codes applied together do not renew in the same second.
// The jitter is a hash of seed (the object's UID and the ticket): deterministic, so it is "chosen
// once" without storing it and recomputed identically after a restart or a renewBefore change,
// yet different for every ticket, so codes do not stay in lockstep across renewals.
// Whatever renewBefore says, a ticket serves at least a tenth of its lifetime, so a renewBefore
// almost equal to ttl cannot turn into a stream of create calls.
// The result is truncated to the second, as status stores it.
func renewalTime(issuedAt, expiresAt time.Time, renewBefore time.Duration, seed string) time.Time {
	lifetime := expiresAt.Sub(issuedAt)
	if renewBefore <= 0 || renewBefore >= lifetime {
		renewBefore = lifetime / 3
	}
	jitter := time.Duration(fraction(seed) * float64(lifetime-renewBefore) / 10)
	at := expiresAt.Add(-renewBefore - jitter)
	if floor := issuedAt.Add(lifetime / 10); at.Before(floor) {
		at = floor
	}
	return at.Truncate(time.Second)
}

func jitterSeed(code *v1alpha1.WeChatQRCode, salt string) string {
	return string(code.UID) + "/" + salt
}

// fraction maps seed to [0, 1) uniformly. SHA-256 rather than a faster non-cryptographic hash:
// FNV barely moves its high bits when only the last byte differs, and seeds differ exactly there.
func fraction(seed string) float64 {
	sum := sha256.Sum256([]byte(seed))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}
