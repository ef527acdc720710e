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

package fold

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Options is the fold's.
type Options struct {
	// Namespace holds the ledger and the tally: the callback server's own.
	Namespace string
	// Interval is how often the elected replica folds the ledger into the codes' counts; 0
	// keeps a replica out of the election. It is also how often the accounts' status.callback is
	// brought up to date.
	Interval time.Duration
	// DedupeWindow is how long after an event its retries are still recognised.
	DedupeWindow time.Duration
	// ViewPatchRate is how many codes' count annotations the folder patches per second, at most,
	// with a burst of one fold interval's worth: the view's writes then stay bounded however many
	// distinct codes are scanned.
	ViewPatchRate float64
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{Interval: 5 * time.Second, DedupeWindow: 2 * time.Minute, ViewPatchRate: 20}
}

// minDedupeWindow covers WeChat's three tries about 5 s apart with a wide margin for the clock
// skew between replicas.
const minDedupeWindow = time.Minute

// Validate says what is wrong with o, in the flags' terms.
func (o Options) Validate() error {
	switch {
	case o.Namespace == "":
		return errors.New("the fold needs the namespace of the ledger and the tally (POD_NAMESPACE)")
	case o.DedupeWindow < minDedupeWindow:
		return fmt.Errorf("the dedupe window must be at least %s", minDedupeWindow)
	case o.Interval < 0:
		return errors.New("the fold interval must not be negative")
	case !(o.ViewPatchRate > 0) || math.IsInf(o.ViewPatchRate, 1):
		return fmt.Errorf("--view-patch-rate must be a positive number of annotation patches per second, got %v; the default is %v", o.ViewPatchRate, DefaultOptions().ViewPatchRate)
	}
	return nil
}
