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

package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// WeChatScanLedger is one segment of a callback replica's append-only scan ledger, in the
// callback server's own namespace. Only the replica named in spec.replica appends to it, so its
// writes never conflict; the elected folder reads it, folds it into the WeChatScanTally objects
// and deletes it once folded, older than the dedupe window and delivered to every sink (or
// expired). It is also the outbox of the scan events: the elected deliverer reads it and records
// in its status how far each sink has it. Internal to the operator: not in the wechat or all
// categories, never cached by the push path, readable only by the callback server.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wxledger
// +kubebuilder:printcolumn:name="Replica",type=string,JSONPath=`.spec.replica`
// +kubebuilder:printcolumn:name="Delivered",type=integer,JSONPath=`.status.delivered`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WeChatScanLedger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WeChatScanLedgerSpec `json:"spec"`
	// +optional
	Status WeChatScanLedgerStatus `json:"status,omitempty"`
}

// WeChatScanLedgerStatus is the deliverer's committed progress through a segment, as a Kafka
// consumer's offsets: positions count the segment's entries (lines of its batches) from 0.
type WeChatScanLedgerStatus struct {
	// Delivered is how many leading entries are done with for every sink: delivered, refused by
	// the sink, expired, or with no sink to reach. The folder deletes a segment only once it
	// covers every entry.
	// +optional
	Delivered int64 `json:"delivered,omitempty"`
	// Sinks is, per sink (a hash of its URL and mode), how many leading entries are done with
	// for that sink: a deliverer that takes over sends each sink what follows its own offset, so
	// a sink that was down holds up no other.
	// +optional
	Sinks map[string]int64 `json:"sinks,omitempty"`
}

// WeChatScanLedgerSpec is what a segment holds.
type WeChatScanLedgerSpec struct {
	// Replica is the identity of the callback replica that appends to this segment.
	Replica string `json:"replica"`
	// Batches are the scans in the order they were made durable, one string per write (a
	// commit window's scans), only ever appended to. Each line of a batch is one scan, version 1:
	// `1 <key> <namespace>/<name> <uid> <s|n> <unix-ms> <openid-hash>` (FormatLedgerBatch).
	// A segment is created with its first batch; required so that a callback server older than
	// this form (entries as objects, which the API server would prune) is refused and WeChat
	// retries its scans, instead of acknowledging scans that were never stored.
	// +kubebuilder:validation:MinItems=1
	Batches []string `json:"batches"`
}

// WeChatScanLedgerList is a list of ledger segments.
// +kubebuilder:object:root=true
type WeChatScanLedgerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WeChatScanLedger `json:"items"`
}

// WeChatScanTally is one shard of the per-code totals folded from the ledger: the source of truth
// the codes' count annotations are a view of. It lives in the callback server's namespace, so a
// `kubectl replace` or GitOps sync of a code cannot touch it. Codes are spread over the shards
// by a hash of namespace/name; the fold progress in the same object makes each shard's write
// atomic with the totals it adds.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=wxtally
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WeChatScanTally struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WeChatScanTallySpec `json:"spec"`
}

// WeChatScanTallySpec is one shard's totals and fold progress.
type WeChatScanTallySpec struct {
	// Codes are the totals per code, keyed by namespace/name.
	// +optional
	Codes map[string]CodeTally `json:"codes,omitempty"`
	// Folded is, per ledger segment name, how many of its entries this shard has folded.
	// +optional
	Folded map[string]int64 `json:"folded,omitempty"`
}

// CodeTally is the folded totals of one code.
type CodeTally struct {
	// UID is the code's UID the totals belong to.
	UID types.UID `json:"uid"`
	// Scans counts every scan, each event once.
	Scans int64 `json:"scans"`
	// Subscribes counts the scans that brought a new follower.
	// +optional
	Subscribes int64 `json:"subscribes,omitempty"`
	// LastScanTime is the latest scan's time, in Unix milliseconds.
	// +optional
	LastScanTime int64 `json:"lastScanTime,omitempty"`
	// Scanners is the HyperLogLog sketch (precision 14, github.com/axiomhq/hyperloglog binary
	// form) of the scanners' OpenID hashes: sparse, a few bytes a scanner, while small; 16 KiB
	// once dense (beyond a few thousand scanners). Its standard error is about 0.8%.
	// +optional
	Scanners []byte `json:"scanners,omitempty"`
	// UniqueScanners is the sketch's estimate of the distinct scanners.
	// +optional
	UniqueScanners int64 `json:"uniqueScanners,omitempty"`
}

// WeChatScanTallyList is a list of tally shards.
// +kubebuilder:object:root=true
type WeChatScanTallyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WeChatScanTally `json:"items"`
}

func init() {
	register(&WeChatScanLedger{}, &WeChatScanLedgerList{}, &WeChatScanTally{}, &WeChatScanTallyList{})
}

// WeChatPushRecord is what one callback replica saw of each account's pushes: when the last
// verified one arrived, and the refused ones in time buckets. Only the replica named in
// spec.replica writes it, at most once per interval and only when it changed, so a push costs
// no write; the elected folder sums the records of every replica over the last hour into each
// account's status.callback. Internal to the operator, in the callback server's namespace.
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=wxpushrecord
// +kubebuilder:printcolumn:name="Replica",type=string,JSONPath=`.spec.replica`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type WeChatPushRecord struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WeChatPushRecordSpec `json:"spec"`
}

// WeChatPushRecordSpec is one replica's record.
type WeChatPushRecordSpec struct {
	// Replica is the identity of the callback replica that writes this record.
	Replica string `json:"replica"`
	// Updated is when the replica last wrote the record: it writes at least every quarter hour
	// while it lives, so the folder deletes the records of replicas gone for longer than an hour.
	Updated metav1.Time `json:"updated"`
	// Accounts are the pushes per AppID.
	// +optional
	Accounts map[string]AccountPushes `json:"accounts,omitempty"`
}

// AccountPushes is what a replica saw of one account's pushes.
type AccountPushes struct {
	// LastVerifiedPush is when the last push whose signature verified arrived, in Unix
	// milliseconds; 0 for none.
	// +optional
	LastVerifiedPush int64 `json:"lastVerifiedPush,omitempty"`
	// Refused are the refused pushes in time buckets, oldest first, each bucket only while it
	// can still fall within the last hour.
	// +optional
	Refused []RefusedBucket `json:"refused,omitempty"`
}

// RefusedBucket counts the refused pushes of one time bucket by reason.
type RefusedBucket struct {
	// Start of the bucket, in Unix milliseconds.
	Start int64 `json:"start"`
	// Reasons: the count per reason of the refusal metric.
	Reasons map[string]int64 `json:"reasons"`
}

// WeChatPushRecordList is a list of push records.
// +kubebuilder:object:root=true
type WeChatPushRecordList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WeChatPushRecord `json:"items"`
}

func init() {
	register(&WeChatPushRecord{}, &WeChatPushRecordList{})
}
