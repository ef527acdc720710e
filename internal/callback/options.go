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
	"errors"
	"fmt"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/fold"
)

// Options is how the server treats pushes; see the package comment for what each one bounds.
type Options struct {
	// MaxClockSkew is how far a push's timestamp may be from our clock, either way.
	MaxClockSkew time.Duration
	// MaxBodyBytes caps a push's body.
	MaxBodyBytes int64
	// ReplyDeadline is how long a push may wait for its count to be persisted.
	ReplyDeadline time.Duration
	// CommitWindow is the group-commit window: at most one ledger write per replica per window.
	CommitWindow time.Duration
	// Namespace is the callback server's own namespace, the operator's: where the push config
	// Secret, the ledger, the tally and the push records live.
	Namespace string
	// Identity names this replica's ledger segments (the Pod's name): unique among the replicas.
	Identity string
	// RecordInterval is how often this replica writes its push record, when it changed.
	RecordInterval time.Duration
	// Fold is the elected folder's, which counts the ledger's scans into the codes' counts
	// (Namespace is filled in).
	Fold fold.Options
	// Delivery is the elected deliverer's, which sends the ledger's scan events to the sinks.
	Delivery delivery.Options
	// AccountGrace is how long an account that left the push config is still served with its
	// last keys; 0 refuses its pushes at once.
	AccountGrace time.Duration
}

// DefaultOptions are the flags' defaults.
func DefaultOptions() Options {
	return Options{
		MaxClockSkew:   5 * time.Minute,
		MaxBodyBytes:   64 << 10,
		ReplyDeadline:  3 * time.Second,
		CommitWindow:   50 * time.Millisecond,
		RecordInterval: 10 * time.Second,
		Fold:           fold.DefaultOptions(),
		Delivery:       delivery.DefaultOptions(),
		// WeChat tries a push three times about 5 s apart; an account deleted and created again
		// (a GitOps prune and re-sync, kubectl replace --force) is back in the push config once
		// it and its Secret exist again and the manager projected them, which a sync wave or a
		// busy manager can delay by minutes.
		AccountGrace: 10 * time.Minute,
	}
}

func (o Options) validate() error {
	switch {
	case o.RecordInterval <= 0, o.MaxClockSkew <= 0, o.MaxBodyBytes <= 0, o.CommitWindow < 0:
		return errors.New("durations and sizes must be positive")
	case o.ReplyDeadline <= o.CommitWindow || o.ReplyDeadline >= 5*time.Second:
		return errors.New("the reply deadline must be longer than the commit window and shorter than WeChat's 5 s")
	case o.Namespace == "" || o.Identity == "":
		return errors.New("the namespace and the identity of the replica are required (POD_NAMESPACE and POD_NAME)")
	case o.AccountGrace < 0:
		return fmt.Errorf("--account-grace must not be negative, got %s; 0 refuses a departed account's pushes at once", o.AccountGrace)
	}
	if err := o.folding().Validate(); err != nil {
		return err
	}
	return o.delivering().Validate()
}

// folding is the fold's options, in the callback server's namespace.
func (o Options) folding() fold.Options {
	f := o.Fold
	f.Namespace = o.Namespace
	return f
}

// delivering is the deliverer's options, in the callback server's namespace.
func (o Options) delivering() delivery.Options {
	d := o.Delivery
	d.Namespace = o.Namespace
	return d
}
