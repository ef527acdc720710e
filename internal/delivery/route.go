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

package delivery

import (
	"hash/fnv"
	"strconv"
	"time"

	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// Target is a sink as events are sent to it: its URL and spec.sink.batch.maxEvents, 0 for
// binary mode.
type Target struct {
	URI       string
	MaxEvents int32
	// Tagging marks the elected manager's tagging endpoint, which tags the scanners of codes with
	// spec.tags (package tagging): its requests go over TLS trusting CA alone (the certificate
	// the manager made at its start) and carry the callback server's ServiceAccount token, and
	// any answer but a 2xx is tried again (what the manager will never tag it answers 2xx: a 4xx
	// is a misconfiguration to fix, RBAC or a token, not an event to drop).
	Tagging bool
	CA      string
}

// TaggingMaxEvents is how many events a request to the tagging endpoint carries at most. The
// endpoint answers a request once all its scanners are tagged, up to --tag-batch-wait later, so
// the requests in flight (--sink-workers, 32) hold every scanner that waits for its tag's call to
// fill: 200 scans a second waiting 15 s are 3,000. At 50 (one call's worth) they could hold only
// 1,600 and the tag's calls went out part full.
const TaggingMaxEvents = 500

// TaggingRequestTimeout bounds one try of a request to the tagging endpoint: the longest batch
// wait (package tagging keeps it 15 s shorter) and the batchtagging calls.
const TaggingRequestTimeout = 45 * time.Second

// taggingID names the tagging endpoint in the segments' offsets whatever its URL: a manager
// elected after another serves at its own Pod IP, and takes over the same offsets.
const taggingID = "tagging"

// id names a target in a segment's committed offsets: short, and without the URL, which may
// carry a token.
func (t Target) id() string {
	if t.Tagging {
		return taggingID
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(t.URI))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(strconv.Itoa(int(t.MaxEvents))))
	return strconv.FormatUint(h.Sum64(), 36)
}

// Sink is an account's or a code's spec.sink as it stands now.
type Sink struct {
	// Declared is whether spec.sink is set.
	Declared bool
	// Target is where it resolved to; its URI is empty while it does not resolve.
	Target Target
	// Retention is how long an event waits for it.
	Retention time.Duration
}

// Routes tells where a scan's event goes now: the sink of the account the push came to, and the
// scanned code's.
type Routes interface {
	// AccountSink is the sink of the account served at appID; undeclared once the account is gone.
	AccountSink(appID string) Sink
	// CodeSink is the sink of the code namespace/name if it still is the code of uid; undeclared
	// once it is gone.
	CodeSink(code string, uid types.UID) Sink
	// CodeTagging is the tagging endpoint as a sink (a Tagging target, its URI empty while no
	// manager publishes it) if the code namespace/name of uid tags the scanner of a scan that
	// is a subscribe or not; undeclared if it does not.
	CodeTagging(code string, uid types.UID, subscribe bool) Sink
	// Declarations are the accounts and codes that have spec.sink now: whose status reports
	// the delivery of their events.
	Declarations() []Declaration
}

// Declaration is an account or a code with spec.sink.
type Declaration struct {
	// Kind is WeChatAccount, ClusterWeChatAccount or WeChatQRCode; Namespace is empty for a
	// ClusterWeChatAccount.
	Kind, Namespace, Name string
	// AppID is an account's: its events are those pushed to it.
	AppID string
	Sink  Sink
}

// route is where one event goes: the targets resolved, and until when it waits for a sink
// declared but not resolved yet (zero: none is).
type route struct {
	targets []routed
	wait    time.Time
}

type routed struct {
	Target
	expires time.Time
}

// routeOf is e's route: the account's sink, then the code's unless it is the same URL (one event
// per address, as one sink), then the tagging endpoint if the code tags its scanner. An event
// waits for an unresolved sink rather than go to the other alone and be forgotten by the
// unresolved one: resolution takes seconds, retention an hour.
func routeOf(r Routes, e qrv1alpha1.LedgerEntry) route {
	at := time.UnixMilli(e.At)
	var rt route
	for _, s := range []Sink{r.AccountSink(e.Event.AppID), r.CodeSink(e.Code, e.UID), r.CodeTagging(e.Code, e.UID, e.Subscribe)} {
		switch {
		case !s.Declared:
		case s.Target.URI == "":
			rt.wait = maxTime(rt.wait, at.Add(s.Retention))
		case !rt.has(s.Target.URI):
			rt.targets = append(rt.targets, routed{s.Target, at.Add(s.Retention)})
		}
	}
	return rt
}

func (rt route) has(uri string) bool {
	for _, t := range rt.targets {
		if t.URI == uri {
			return true
		}
	}
	return false
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
