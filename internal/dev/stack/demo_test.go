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

package stack

import (
	"context"
	"testing"
)

type lines []string

func (l *lines) Printf(format string, _ ...any) { *l = append(*l, format) }

// TestSightingsWaitFor: a scan finds the sink's line about it whether the sink printed it before
// the scan asked or after, and gives up when its context ends.
func TestSightingsWaitFor(t *testing.T) {
	printed := &lines{}
	s := &sightings{out: printed, changed: make(chan struct{})}
	s.Printf("scan of default/a: openID=o-1 event=subscribe")
	if line, ok := s.waitFor(context.Background(), "openID=o-1"); !ok || line != "scan of default/a: openID=o-1 event=subscribe" {
		t.Errorf("a line printed before: %q %v", line, ok)
	}
	got := make(chan string)
	go func() {
		line, _ := s.waitFor(context.Background(), "openID=o-2")
		got <- line
	}()
	s.Printf("scan of default/a: openID=o-3 event=SCAN")
	s.Printf("scan of default/b: openID=o-2 event=SCAN")
	if line := <-got; line != "scan of default/b: openID=o-2 event=SCAN" {
		t.Errorf("a line printed after: %q", line)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if line, ok := s.waitFor(ctx, "openID=o-4"); ok {
		t.Errorf("found %q for a scan the sink never printed", line)
	}
	if len(*printed) != 3 {
		t.Errorf("the console got %d lines, want every one of the 3", len(*printed))
	}
}
