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

// Package fold counts each scan exactly once. The folder, elected among the callback server's
// replicas by a Lease (package election: a replica that loses it stops folding and campaigns
// again, it does not exit), reads the ledger's segments uncached every --fold-interval and parses
// each once per version (segment.go; an entry that does not parse is skipped and counted),
// counts each event (key: a short hash of FromUserName, CreateTime, Event and EventKey, WeChat's
// own deduplication key) once per code across every replica's segments, and adds it to the
// code's totals in a WeChatScanTally shard, writing in the same update how far it folded each
// segment: a folder killed between any two writes double counts nothing. Its dedupe memory is
// built from the entries below those marks when it takes the Lease and then kept, each round
// adding only what the segments gained (memory.go), until anything says it may disagree with the
// shards or the segments. Then it patches the
// count annotations of the codes whose annotations differ from their totals, so an overwritten
// code is restored by the next fold: at most --view-patch-rate codes a second, the longest stale
// first, so that the view's writes do not grow with the number of distinct codes scanned (the
// tally and the per-code metrics never wait). Segments are deleted once folded, once the
// deliverer is past their scan events, and once their last entry is older than --dedupe-window
// plus their 30 s growth bound: a retry within the window of its original counts once, at any
// rate, wherever it lands, even when the replica that took the original died before answering.
// Two distinct scans that share the key (the same user scanning the same code twice within one
// second) are one event to WeChat and to us.
package fold
