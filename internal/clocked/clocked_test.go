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

package clocked

import (
	"context"
	"errors"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestWithDeadline(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	ctx, cancel := WithDeadline(context.Background(), clk, clk.Now().Add(time.Second))
	defer cancel()
	clk.Step(time.Second - time.Nanosecond)
	if ctx.Err() != nil {
		t.Fatal("ended before its deadline")
	}
	clk.Step(time.Nanosecond)
	<-ctx.Done()
	if !errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
		t.Errorf("cause %v, want the deadline", context.Cause(ctx))
	}
	if _, ok := ctx.Deadline(); ok {
		t.Error("reports a deadline: a dialer would compare it with the real time")
	}
	past, cancel := WithDeadline(context.Background(), clk, clk.Now())
	defer cancel()
	if !errors.Is(context.Cause(past), context.DeadlineExceeded) {
		t.Error("a deadline already passed does not end the context at once")
	}
}

func TestSampler(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Now())
	s := NewSampler(clk)
	for i, step := range []struct {
		after time.Duration
		key   string
		want  bool
	}{
		{0, "a", true},
		{0, "a", false},
		{0, "b", true}, // each key on its own
		{999 * time.Millisecond, "a", false},
		{time.Millisecond, "a", true},
	} {
		clk.Step(step.after)
		if got := s.Allow(step.key); got != step.want {
			t.Errorf("step %d: Allow(%q) = %v, want %v", i, step.key, got, step.want)
		}
	}
}
