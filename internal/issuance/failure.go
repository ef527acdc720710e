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
	"strconv"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechat"
)

// failureKind is what a failure means for the next attempt.
type failureKind int

const (
	// transient: WeChat busy or unreachable, or a token rejected even after the client's retry.
	transient failureKind = iota
	// quota: the account's daily qrcode/create quota is spent.
	quota
	// terminal: only a human can fix it (account, allowlist, spec); retrying soon is pointless.
	terminal
)

// failure is a failed attempt in the conditions' terms.
type failure struct {
	kind   failureKind
	reason string
	// message carries WeChat's errcode, errmsg and advice, as the client wrote it scrubbed of
	// credentials.
	message string
}

// failureOf reads an error of the WeChat client.
func failureOf(err error) failure {
	f := failure{kind: terminal, message: err.Error()}
	errcode := wechat.ErrCode(err)
	switch wechat.ClassOf(err) {
	case wechat.ClassQuota:
		f.kind, f.reason = quota, v1alpha1.ReasonQuotaExhausted
		return f
	case wechat.ClassRetryable, wechat.ClassToken:
		f.kind = transient
	}
	switch {
	case errcode != 0:
		f.reason = v1alpha1.ReasonWeChatError(errcode)
	case f.kind == transient && wechat.FromTokenService(err):
		f.reason = v1alpha1.ReasonTokenServiceUnreachable
	case f.kind == transient:
		f.reason = v1alpha1.ReasonWeChatUnreachable
	default:
		f.reason = v1alpha1.ReasonIssueFailed
	}
	return f
}

// Backoff bounds. Transient failures start at 5 s, well inside the shortest renewal window (a
// 1m ticket renews with 20 s left by default), and stop doubling at 5 min. Terminal ones start
// at an hour and stop at a day: a human has to act, and a change of the spec or the Secret retries
// at once anyway; an account that is not allowlisted must not burn its quota on thousands of
// codes retrying every few minutes.
const (
	transientBase = 5 * time.Second
	transientMax  = 5 * time.Minute
	terminalBase  = time.Hour
	terminalMax   = 24 * time.Hour
	// quotaSpread spreads the codes of an account over the first minutes after the quota resets.
	quotaSpread = 15 * time.Minute
)

// retryAt is when to try again after the attempt-th consecutive failure (attempt >= 1) at now.
// Exponential delays lose up to a fifth to a jitter (a hash of seed and attempt) so that codes
// that failed together do not retry together, and never exceed their maximum. A spent quota is
// retried after it resets, at midnight Beijing time.
func retryAt(kind failureKind, attempt int32, seed string, now time.Time) time.Time {
	f := fraction(seed + "/" + strconv.Itoa(int(attempt)))
	switch kind {
	case quota:
		return wechat.QuotaResetAfter(now).Add(time.Duration(f * float64(quotaSpread)))
	case terminal:
		return now.Add(exponential(terminalBase, terminalMax, attempt, f))
	default:
		return now.Add(exponential(transientBase, transientMax, attempt, f))
	}
}

func exponential(base, limit time.Duration, attempt int32, f float64) time.Duration {
	d := limit
	// Beyond 2^20 the delay is at its limit for any sane base; the bound keeps the shift finite.
	if attempt >= 1 && attempt <= 20 && base<<(attempt-1) < limit {
		d = base << (attempt - 1)
	}
	return d - time.Duration(f*float64(d)/5)
}

// Classify is what err, an error of the WeChat client, means in the conditions' terms: the
// reason, and whether only a human can fix it (Stalled) rather than time (Reconciling).
func Classify(err error) (reason string, stalled bool) {
	f := failureOf(err)
	return f.reason, f.kind == terminal
}
