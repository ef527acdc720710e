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
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
	"time"
)

// Outage asks the stack whose state is st to show what becomes of scan events through a sink
// outage and a crash: the demo sink goes down, r's scans are counted meanwhile, the callback
// server is killed with SIGKILL while they are undelivered and started again, the sink comes
// back, and the restarted server delivers them. It writes each step to out and fails if any
// push was not acknowledged or any event did not arrive.
func Outage(ctx context.Context, st *State, r ScanRequest, out io.Writer) error {
	return ask(ctx, st, st.OutageURL, r, out)
}

// outageWait is how long the demonstration waits for the callback server to try the sink that
// is down, and then for each event once it is up again: the restarted server reads the ledger
// and sends within a second or two on an idle machine.
const outageWait = 20 * time.Second

// switchable is the demo sink with a switch: while down it answers 503, as a sink in an outage
// does, and counts the deliveries it refused.
type switchable struct {
	http.Handler
	down    atomic.Bool
	refused atomic.Int64
}

func (s *switchable) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.down.Load() {
		s.refused.Add(1)
		http.Error(w, "the demo sink is down (make outage)", http.StatusServiceUnavailable)
		return
	}
	s.Handler.ServeHTTP(w, r)
}

func (s *Stack) handleOutage(w http.ResponseWriter, req *http.Request, a Account) {
	r, code, pushAs, ok := s.scanRequest(w, req, a)
	if !ok {
		return
	}
	if pushAs.AppID != a.AppID {
		http.Error(w, fmt.Sprintf("%s/%s belongs to another account than the stack's %s, whose spec.sink is the demo sink: pick one of its codes (config/samples)", r.Namespace, r.Name, s.Account), http.StatusConflict)
		return
	}
	ctx := req.Context()
	w.Header().Set("Trailer", trailerFailed)
	s.sink.down.Store(true)
	defer s.sink.down.Store(false)
	refused := s.sink.refused.Load()
	s.tell(w, "the demo sink is down: it answers 503 to every delivery")
	var scanners []string
	failed := s.pushScans(w, req, r, code, pushAs, func(openID string, _ bool) { scanners = append(scanners, openID) })
	if s.waitRefused(ctx, refused) {
		s.tell(w, fmt.Sprintf("the sink refused the callback server's deliveries: the %d counted scans wait in the ledger, tried again with backoff", len(scanners)))
	} else {
		s.tell(w, fmt.Sprintf("the callback server did not try the sink within %s (see its log)", outageWait))
	}
	pid, err := s.killCallback()
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	s.tell(w, fmt.Sprintf("callback server (pid %d) killed with SIGKILL, its events undelivered", pid))
	s.sink.down.Store(false)
	s.tell(w, "the demo sink is up again")
	if pid, err = s.restartCallback(ctx); err != nil {
		s.tell(w, "the callback server did not start again: "+err.Error())
		w.Header().Set(trailerFailed, fmt.Sprint(failed+len(scanners)))
		return
	}
	s.tell(w, fmt.Sprintf("callback server started again (pid %d): the same replica (--identity), it takes the delivery Lease back and resumes from the offsets committed in the ledger", pid))
	for _, openID := range scanners {
		line, seen := s.sinkSaw(ctx, openID, outageWait)
		if !seen {
			failed++
		}
		s.tell(w, "  "+line)
	}
	w.Header().Set(trailerFailed, fmt.Sprint(failed))
}

// waitRefused waits until the sink has refused a delivery since it had refused before.
func (s *Stack) waitRefused(ctx context.Context, before int64) bool {
	ctx, cancel := context.WithTimeout(ctx, outageWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for s.sink.refused.Load() == before {
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
	return true
}
