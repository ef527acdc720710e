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
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// foldLease is the Lease the replicas compete for; its holder folds.
const foldLease = "wechat-qrcode-callback-fold"

// The Lease's timing, controller-runtime's defaults.
const (
	leaseDuration = 15 * time.Second
	renewDeadline = 10 * time.Second
	retryPeriod   = 2 * time.Second
)

// foldLeader runs the folder while this replica holds the fold's Lease, and campaigns again once
// it lost it. controller-runtime's own election ends the process when the Lease is lost, which an
// API server unavailable for about the renew deadline (10 s) does: the replica would then drop
// every push it holds and serve none until restarted, for the sake of a side job that any
// replica can pick up. Losing the Lease only stops the fold here.
type foldLeader struct {
	lock   resourcelock.Interface
	folder *folder
	log    logr.Logger
}

// newFoldLeader campaigns for the Lease in namespace as identity (made unique: a restarted
// replica keeps its name, and must not take its previous life's Lease for its own).
func newFoldLeader(rc *rest.Config, namespace, identity string, f *folder, log logr.Logger) (*foldLeader, error) {
	rc = rest.AddUserAgent(rest.CopyConfig(rc), "fold-leader-election")
	// One hung request must not use up the renew deadline by itself.
	rc.Timeout = renewDeadline / 2
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, foldLease, cs.CoreV1(), cs.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: identity + "_" + string(uuid.NewUUID())})
	if err != nil {
		return nil, err
	}
	return &foldLeader{lock: lock, folder: f, log: log.WithName("fold")}, nil
}

// Start campaigns until ctx ends, folding whenever it leads; it hands the Lease back on the way
// out, so that another replica folds at once.
func (l *foldLeader) Start(ctx context.Context) error {
	for ctx.Err() == nil {
		// Run starts the fold in a goroutine of its own, which may not have begun when Run
		// returns: the fold begins only if this round of the campaign has not ended, and then
		// the campaign waits for it to end before the next round.
		var (
			mu            sync.Mutex
			folding, over bool
			folded        = make(chan struct{})
		)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: l.lock, Name: foldLease, ReleaseOnCancel: true,
			LeaseDuration: leaseDuration, RenewDeadline: renewDeadline, RetryPeriod: retryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					defer close(folded)
					mu.Lock()
					folding = !over
					mu.Unlock()
					if !folding {
						return
					}
					l.log.Info("holding the fold's Lease: folding")
					_ = l.folder.Start(ctx) // it returns nil once ctx ends
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		mu.Lock()
		over = true
		led := folding
		mu.Unlock()
		if !led {
			continue // ctx ended while campaigning
		}
		// Run has ended the fold's context; its round ends at its next write. A round cut short
		// counts nothing twice (shards are written with their resourceVersion), and the next
		// leader folds on from the shards.
		<-folded
		if ctx.Err() == nil {
			l.log.Info("lost the fold's Lease; campaigning again")
		}
	}
	return nil
}

// NeedLeaderElection is false: the fold is led by its own Lease, every replica campaigns.
func (l *foldLeader) NeedLeaderElection() bool { return false }
