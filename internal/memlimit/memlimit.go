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

// Package memlimit gives the Go runtime a soft memory limit derived from the container's memory
// limit. Without one, the collector lets the heap grow to twice what the last collection left,
// whatever the container allows: a burst of work (a renewal storm, 100,000 codes applied at
// once) can take a process past its limit and get it killed while most of its heap is garbage.
// With one, the collector runs harder as the limit nears instead.
package memlimit

import (
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/go-logr/logr"
)

// EnvContainerLimit names the variable that holds the container's memory limit in bytes, as the
// downward API writes it (resourceFieldRef limits.memory): set by config/manager and the chart.
const EnvContainerLimit = "MEMORY_LIMIT"

// Ratio is the share of the container's limit given to the runtime: the rest is what the process
// holds outside the runtime's accounting (the binary's pages) and a margin, as automemlimit and
// most operators leave.
const Ratio = 0.9

// Decide is the soft limit to set, in bytes: none (0) when GOMEMLIMIT is set (the runtime has
// applied it; an explicit setting wins) or when no container limit is given; else Ratio of the
// container's limit. A container limit that is not a positive number of bytes is an error.
func Decide(gomemlimit, containerLimit string) (int64, error) {
	if strings.TrimSpace(gomemlimit) != "" || strings.TrimSpace(containerLimit) == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(strings.TrimSpace(containerLimit), 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("$%s=%q: want the container's memory limit in bytes", EnvContainerLimit, containerLimit)
	}
	return int64(float64(n) * Ratio), nil
}

// FromEnvironment sets the runtime's soft limit as Decide says from this process's environment,
// logs what it did, and returns what it set (0: nothing). A malformed container limit is logged
// and leaves the runtime as it was: the process runs as it would have without one.
func FromEnvironment(log logr.Logger) int64 {
	limit, err := Decide(os.Getenv("GOMEMLIMIT"), os.Getenv(EnvContainerLimit))
	switch {
	case err != nil:
		log.Error(err, "no Go memory limit set")
	case limit > 0:
		debug.SetMemoryLimit(limit)
		log.Info("Go memory limit set from the container's", "bytes", limit, "ratio", Ratio)
	}
	return limit
}
