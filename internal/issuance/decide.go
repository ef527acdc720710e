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

// Package issuance holds the decisions of the WeChatQRCode controller as pure functions of the
// object (spec and status), the account's AppID and the time: whether WeChat must be asked for a
// ticket, when the next renewal is due, how long to back off after a failure, which earlier
// tickets are still worth keeping, and what status records each outcome. Nothing here does I/O,
// so every rule is table-tested without an API server or a WeChat.
package issuance

import (
	"crypto/sha256"
	"encoding/binary"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Trigger says why a code needs a new ticket.
type Trigger string

const (
	// Current means the ticket in status fits the spec and the account and is not due for renewal.
	Current        Trigger = ""
	First          Trigger = "First"
	AccountChanged Trigger = "AccountChanged"
	TypeChanged    Trigger = "TypeChanged"
	SceneChanged   Trigger = "SceneChanged"
	// Renewal: a Temporary code reached its renewal time (or expired unrenewed).
	Renewal Trigger = "Renewal"
)

// Needed says why the code needs a new ticket at now, given the AppID of its account Secret.
// Only what WeChat's ticket depends on counts: annotations, reply, ttl and renewBefore never make
// a ticket stale by themselves (ttl and renewBefore take effect at the next renewal).
func Needed(code *v1alpha1.WeChatQRCode, appID string, now time.Time) Trigger {
	st, spec := &code.Status, &code.Spec
	switch {
	case st.Ticket == "" || st.IssuedFor == nil || st.IssuedAt == nil:
		return First
	case st.IssuedFor.AppID != appID:
		return AccountChanged
	case st.IssuedFor.Type != spec.Type:
		return TypeChanged
	case !st.IssuedFor.Scene.Equal(spec.Scene):
		return SceneChanged
	case spec.Type == v1alpha1.Temporary:
		if at, ok := ScheduledRenewal(code); !ok || !now.Before(at) {
			return Renewal
		}
	}
	return Current
}

// Decision is what one reconcile does about WeChat.
type Decision struct {
	Trigger Trigger
	// Issue asks WeChat for a ticket now. A Trigger without Issue means an earlier attempt failed
	// and its backoff has not run out.
	Issue bool
}

// Decide combines Needed with the backoff of the last failure. secretVersion is the account
// Secret's resourceVersion: a failure made with other credentials, or for another generation of
// the spec, says nothing about the next attempt, which is then made at once.
func Decide(code *v1alpha1.WeChatQRCode, appID, secretVersion string, now time.Time) Decision {
	t := Needed(code, appID, now)
	return Decision{Trigger: t, Issue: t != Current && !backingOff(code, secretVersion, now)}
}

func backingOff(code *v1alpha1.WeChatQRCode, secretVersion string, now time.Time) bool {
	st := &code.Status
	return st.FailedAttempts > 0 &&
		st.ObservedGeneration == code.Generation &&
		st.LastFailureSecretVersion == secretVersion &&
		st.RenewalTime != nil && now.Before(st.RenewalTime.Time)
}

// ScheduledRenewal is when the current ticket of a Temporary code is due for renewal, recomputed
// from what status recorded at issuance and the spec's current renewBefore; false when status
// lacks the times to compute it.
func ScheduledRenewal(code *v1alpha1.WeChatQRCode) (time.Time, bool) {
	st := &code.Status
	if st.IssuedAt == nil || st.ExpiresAt == nil || !st.ExpiresAt.After(st.IssuedAt.Time) {
		return time.Time{}, false
	}
	var renewBefore time.Duration
	if code.Spec.RenewBefore != nil {
		renewBefore = code.Spec.RenewBefore.Duration
	}
	return RenewalTime(st.IssuedAt.Time, st.ExpiresAt.Time, renewBefore, jitterSeed(code, st.Ticket)), true
}

// RenewalTime places the renewal of a ticket that lives from issuedAt to expiresAt.
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
func RenewalTime(issuedAt, expiresAt time.Time, renewBefore time.Duration, seed string) time.Time {
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
