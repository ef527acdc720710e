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

// Package election runs the callback server's elected loops (the fold, the delivery of scan
// events), each under a Lease of its own, on whichever replica holds it.
//
// controller-runtime's own election ends the process when the Lease is lost, which an API
// server unavailable for about the renew deadline (10 s) does: the replica would then drop every
// push it holds and serve none until restarted, for the sake of a side job that any replica can
// pick up. Losing a Lease here only stops that loop, and the replica campaigns again.
package election

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
	"sigs.k8s.io/controller-runtime/pkg/manager"
)

// The Lease's timing, controller-runtime's defaults: a holder killed without handing the Lease
// back is replaced after LeaseDuration plus up to RetryPeriod, 15 to 17 s (more on a busy API
// server).
const (
	LeaseDuration = 15 * time.Second
	RenewDeadline = 10 * time.Second
	RetryPeriod   = 2 * time.Second
)

// Leader runs a loop while this replica holds a Lease. It is a manager Runnable that every
// replica runs.
type Leader struct {
	name string
	lock resourcelock.Interface
	loop manager.Runnable
	log  logr.Logger
}

// New campaigns for the Lease name in namespace as identity (made unique: a restarted replica
// keeps its name, and must not take its previous life's Lease for its own), to run loop.
func New(rc *rest.Config, namespace, name, identity string, loop manager.Runnable, log logr.Logger) (*Leader, error) {
	rc = rest.AddUserAgent(rest.CopyConfig(rc), name+"-leader-election")
	// One hung request must not use up the renew deadline by itself.
	rc.Timeout = RenewDeadline / 2
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, err
	}
	lock, err := resourcelock.New(resourcelock.LeasesResourceLock, namespace, name, cs.CoreV1(), cs.CoordinationV1(),
		resourcelock.ResourceLockConfig{Identity: identity + "_" + string(uuid.NewUUID())})
	if err != nil {
		return nil, err
	}
	return &Leader{name: name, lock: lock, loop: loop, log: log}, nil
}

// Start campaigns until ctx ends, running the loop whenever it leads; it hands the Lease back on
// the way out, so that another replica takes over at once.
func (l *Leader) Start(ctx context.Context) error {
	for ctx.Err() == nil {
		// Run starts the loop in a goroutine of its own, which may not have begun when Run
		// returns: the loop begins only if this round of the campaign has not ended, and then
		// the campaign waits for it to end before the next round.
		var (
			mu           sync.Mutex
			running, end bool
			done         = make(chan struct{})
		)
		le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: l.lock, Name: l.name, ReleaseOnCancel: true,
			LeaseDuration: LeaseDuration, RenewDeadline: RenewDeadline, RetryPeriod: RetryPeriod,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(ctx context.Context) {
					defer close(done)
					mu.Lock()
					running = !end
					mu.Unlock()
					if !running {
						return
					}
					l.log.Info("holding the Lease", "lease", l.name)
					if err := l.loop.Start(ctx); err != nil {
						l.log.Error(err, "elected loop ended", "lease", l.name)
					}
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			return err
		}
		le.Run(ctx)
		mu.Lock()
		end = true
		led := running
		mu.Unlock()
		if !led {
			continue // ctx ended while campaigning
		}
		// Run has ended the loop's context; wait for it to return before campaigning again, so
		// that two of its lives never overlap on this replica.
		<-done
		if ctx.Err() == nil {
			l.log.Info("lost the Lease; campaigning again", "lease", l.name)
		}
	}
	return nil
}

// NeedLeaderElection is false: the loop is led by its own Lease, every replica campaigns.
func (l *Leader) NeedLeaderElection() bool { return false }
