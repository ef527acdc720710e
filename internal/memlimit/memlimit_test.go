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

package memlimit

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/go-logr/logr"
)

func TestDecide(t *testing.T) {
	for _, c := range []struct {
		name, gomemlimit, container string
		want                        int64
		wantErr                     bool
	}{
		{"a container limit of 256Mi", "", "268435456", 241591910, false},
		{"GOMEMLIMIT set wins", "200MiB", "268435456", 0, false},
		{"no container limit", "", "", 0, false},
		{"not bytes", "", "256Mi", 0, true},
		{"zero", "", "0", 0, true},
	} {
		got, err := Decide(c.gomemlimit, c.container)
		if got != c.want || (err != nil) != c.wantErr {
			t.Errorf("%s: Decide(%q, %q) = %d, %v; want %d, error %v", c.name, c.gomemlimit, c.container, got, err, c.want, c.wantErr)
		}
	}
}

// TestFromEnvironmentSetsTheRuntimeLimit: the limit reaches the runtime, and nothing changes it
// when GOMEMLIMIT is set.
func TestFromEnvironmentSetsTheRuntimeLimit(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	t.Setenv("GOMEMLIMIT", "")
	t.Setenv(EnvContainerLimit, "104857600")
	if got := FromEnvironment(logr.Discard()); got != 94371840 {
		t.Fatalf("FromEnvironment() = %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != 94371840 {
		t.Errorf("runtime limit %d, want 94371840", got)
	}
	debug.SetMemoryLimit(math.MaxInt64)
	t.Setenv("GOMEMLIMIT", "1GiB")
	if got := FromEnvironment(logr.Discard()); got != 0 {
		t.Fatalf("with GOMEMLIMIT: FromEnvironment() = %d", got)
	}
	if got := debug.SetMemoryLimit(-1); got != math.MaxInt64 {
		t.Errorf("with GOMEMLIMIT the runtime limit moved to %d", got)
	}
}
