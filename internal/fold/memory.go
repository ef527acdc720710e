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

package fold

import (
	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// event is what the fold counts once: a dedupe key within a code.
type event struct{ code, key string }

// memory is the fold's dedupe memory: the events folded, and how far into each segment they were
// taken. While the folder holds its Lease the memory lasts from round to round and each round
// adds only what the segments gained (segments only ever grow by appended batches), so a round
// costs what it folds, not what the dedupe window retains. It is built again from the entries
// below the shards' marks whenever it may disagree with them (see stale).
type memory struct {
	// known is, per event, the newest time (Unix ms) it is remembered from: an entry's time, or
	// the round's if the entry claims a later one (a writer's clock ahead must not keep it forever).
	known map[event]int64
	// queue is the events in the order remembered, each with the time it was remembered from:
	// forget pops its head. Times are nearly ordered (replicas' clocks and batches interleave);
	// an event behind a newer one is forgotten a little late, never early.
	queue []remembered
	// taken is, per segment, how far its entries are in the memory.
	taken map[string]taken
	// shards is the resourceVersion of each tally shard as the memory last agreed with it.
	shards [tallyShards]string
}

type remembered struct {
	event
	at int64
}

// taken is how far the memory took a segment's parsed entries: the first n, the last of them
// last, of the segment with this uid.
type taken struct {
	uid  types.UID
	n    int
	last event
}

// newMemory is an empty memory sized for the entries of segs: built from them at once, it would
// otherwise grow its map many times over (about 900,000 entries at 6,000 scans a second).
func newMemory(segs []*segment) *memory {
	n := 0
	for _, seg := range segs {
		n += len(seg.entries)
	}
	return &memory{known: make(map[event]int64, n), queue: make([]remembered, 0, n), taken: map[string]taken{}}
}

// The reasons a memory is built again, as the rebuilds metric counts them.
const (
	rebuildLease   = "lease"   // this replica has just taken the Lease
	rebuildError   = "error"   // the last round failed before the shards agreed with it
	rebuildShard   = "shard"   // a shard changed since (another folder wrote, or someone by hand)
	rebuildSegment = "segment" // a segment lost entries, was replaced, or changed below its end
)

// stale says why m may disagree with what the segments and shards say ("" when it agrees): the
// memory only ever grows by the entries appended to a segment since it took it, and only while
// this folder alone writes the shards.
func (m *memory) stale(segs []*segment, shards []*qrv1alpha1.WeChatScanTally) string {
	for i, sh := range shards {
		if sh.ResourceVersion != m.shards[i] {
			return rebuildShard
		}
	}
	for _, seg := range segs {
		t, ok := m.taken[seg.Name]
		if !ok {
			continue
		}
		if seg.UID != t.uid || len(seg.entries) < t.n ||
			(t.n > 0 && (event{seg.entries[t.n-1].Code, seg.entries[t.n-1].Key}) != t.last) {
			return rebuildSegment
		}
	}
	return ""
}

// fresh is seg's entries the memory has not taken yet.
func (m *memory) fresh(seg *segment) []entry {
	return seg.entries[m.taken[seg.Name].n:]
}

// knows says whether e was folded within the memory's horizon.
func (m *memory) knows(e event) bool {
	_, ok := m.known[e]
	return ok
}

// remember keeps e from at (Unix ms) on.
func (m *memory) remember(e event, at int64) {
	if prev, ok := m.known[e]; ok && prev >= at {
		return
	}
	m.known[e] = at
	m.queue = append(m.queue, remembered{e, at})
}

// forget drops the events remembered from before cutoff (Unix ms), unless remembered again since.
func (m *memory) forget(cutoff int64) {
	n := 0
	for _, r := range m.queue {
		if r.at >= cutoff {
			break
		}
		if m.known[r.event] == r.at {
			delete(m.known, r.event)
		}
		n++
	}
	m.queue = m.queue[n:]
}

// agree records that every entry of segs is in the memory and that the shards, as written, agree
// with it; segments gone are dropped (their events stay until forgotten).
func (m *memory) agree(segs []*segment, shards []*qrv1alpha1.WeChatScanTally) {
	next := make(map[string]taken, len(segs))
	for _, seg := range segs {
		t := taken{uid: seg.UID, n: len(seg.entries)}
		if t.n > 0 {
			last := seg.entries[t.n-1]
			t.last = event{last.Code, last.Key}
		}
		next[seg.Name] = t
	}
	m.taken = next
	for i, sh := range shards {
		m.shards[i] = sh.ResourceVersion
	}
}
