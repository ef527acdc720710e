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

// Package clocked holds the callback server's two helpers that run on an injected clock
// (k8s.io/utils/clock), so that tests step time instead of waiting for it: a context deadline
// and a log sampler.
package clocked

import (
	"context"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// WithDeadline is context.WithDeadline on clk, so that a test steps a deadline instead of waiting
// for it. The context ends with cause context.DeadlineExceeded. It does not report the deadline
// through Deadline(): a dialer or a client would compare that with the real time.
func WithDeadline(parent context.Context, clk clock.WithDelayedExecution, deadline time.Time) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	left := deadline.Sub(clk.Now())
	if left <= 0 {
		cancel(context.DeadlineExceeded)
		return ctx, func() {}
	}
	t := clk.AfterFunc(left, func() { cancel(context.DeadlineExceeded) })
	return ctx, func() {
		t.Stop()
		cancel(context.Canceled)
	}
}

// Sampler lets one log line per key through per second, so that a flood (hostile requests, a
// dead application) does not become a flood of logs; the metrics still count every one.
type Sampler struct {
	clock clock.PassiveClock

	mu   sync.Mutex
	last map[string]time.Time
}

// NewSampler samples on clk.
func NewSampler(clk clock.PassiveClock) *Sampler {
	return &Sampler{clock: clk, last: map[string]time.Time{}}
}

// Allow is whether a line for key may be logged now.
func (s *Sampler) Allow(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.clock.Now()
	if now.Sub(s.last[key]) < time.Second {
		return false
	}
	s.last[key] = now
	return true
}
