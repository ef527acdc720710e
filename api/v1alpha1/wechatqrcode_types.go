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
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// QRCodeType says whether WeChat expires the code.
// +kubebuilder:validation:Enum=Temporary;Permanent
type QRCodeType string

const (
	// Temporary codes expire after spec.ttl (at most 30 days) and are re-issued before they do.
	// WeChat allows many of them (100,000 create calls a day).
	Temporary QRCodeType = "Temporary"
	// Permanent codes never expire, but an account can create at most 100,000 of them, ever,
	// and nothing deletes one: the operator issues each permanent scene once and keeps it.
	Permanent QRCodeType = "Permanent"
)

// Bounds that the schema enforces, named so that the controller and the tests share them.
const (
	// MaxPermanentSceneID is WeChat's upper bound for QR_LIMIT_SCENE scene ids.
	MaxPermanentSceneID = 100000
	// MaxTemporarySceneID is the largest positive 32-bit integer. WeChat documents QR_SCENE ids
	// as "32-bit non-zero integers" without saying whether negative values are accepted, so the
	// schema admits only the range that is valid under both readings.
	MaxTemporarySceneID = 2147483647
	// MaxSceneStrBytes is WeChat's limit for scene_str, in bytes of UTF-8.
	MaxSceneStrBytes = 64
	// MaxPreviousTickets bounds status.previousTickets: the API server prices the scene rules of
	// every item, and an unbounded list exceeds its budget. A temporary code keeps at most about
	// ten live tickets (each serves at least a tenth of its lifetime); only a hundred changes of
	// a permanent code's scene reach the bound.
	MaxPreviousTickets = 100
)

// Keys of the account Secret (spec.secretRef of a WeChatAccount or ClusterWeChatAccount). The
// manager reads appID and appSecret; the callback server gets token, encodingAESKey and
// previousEncodingAESKey from the manager's projection, never the Secret itself.
const (
	AccountKeyAppID                  = "appID"
	AccountKeyAppSecret              = "appSecret"
	AccountKeyToken                  = "token"
	AccountKeyEncodingAESKey         = "encodingAESKey"
	AccountKeyPreviousEncodingAESKey = "previousEncodingAESKey"
)

// AccountReference names the Official Account a code is issued by: a WeChatAccount in the code's
// namespace or a ClusterWeChatAccount.
type AccountReference struct {
	// Kind is WeChatAccount or ClusterWeChatAccount; unset means WeChatAccount (the default is
	// applied by the operator, not written into the spec, so GitOps tools see no drift).
	// +optional
	// +kubebuilder:validation:Enum=WeChatAccount;ClusterWeChatAccount
	Kind string `json:"kind,omitempty"`
	// Name of the account.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// KindOrDefault returns the kind, WeChatAccount when unset.
func (r AccountReference) KindOrDefault() string {
	if r.Kind == "" {
		return KindWeChatAccount
	}
	return r.Kind
}

// Scene is the parameter WeChat hands back in the push when someone scans the code.
// Exactly one of id and str is set.
// +kubebuilder:validation:XValidation:rule="has(self.id) != has(self.str)",message="exactly one of scene.id and scene.str must be set"
type Scene struct {
	// ID is an integer scene (QR_SCENE / QR_LIMIT_SCENE): 1..100000 for Permanent codes,
	// 1..2147483647 for Temporary codes.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=2147483647
	ID *int64 `json:"id,omitempty"`

	// Str is a string scene (QR_STR_SCENE / QR_LIMIT_STR_SCENE) of 1 to 64 bytes of UTF-8:
	// WeChat's "1 to 64" counts bytes, so a CJK character takes 3 of them. MaxLength (characters)
	// is implied by the byte limit; it bounds the cost of the rule for the API server.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="bytes(self).size() <= 64",message="scene.str must be at most 64 bytes of UTF-8 (WeChat's limit; a CJK character takes 3 bytes, so at most 21 of them)"
	Str *string `json:"str,omitempty"`
}

// Key is the scene as WeChat writes it in a push's EventKey (after the "qrscene_" prefix of a
// subscribe event): the decimal id, or the string.
func (s Scene) Key() string {
	if s.ID != nil {
		return strconv.FormatInt(*s.ID, 10)
	}
	if s.Str != nil {
		return *s.Str
	}
	return ""
}

// Equal reports whether two scenes name the same WeChat scene parameter.
func (s Scene) Equal(o Scene) bool {
	if (s.ID == nil) != (o.ID == nil) || (s.Str == nil) != (o.Str == nil) {
		return false
	}
	return (s.ID == nil || *s.ID == *o.ID) && (s.Str == nil || *s.Str == *o.Str)
}

// WeChatQRCodeSpec is what the user declares. Every field may change after creation: a change of
// accountRef, type or scene issues a new ticket (the old one stays valid at WeChat until it expires
// and its scans keep counting); a change of ttl or renewBefore takes effect at the next renewal;
// a change of reply takes effect at the next scan.
//
// +kubebuilder:validation:XValidation:rule="self.type != 'Permanent' || !has(self.scene.id) || self.scene.id <= 100000",message="a Permanent code's scene.id must be between 1 and 100000 (WeChat's QR_LIMIT_SCENE range)",fieldPath=".scene.id",reason=FieldValueInvalid
// +kubebuilder:validation:XValidation:rule="self.type != 'Permanent' || !has(self.ttl)",message="ttl must not be set on a Permanent code: it never expires",fieldPath=".ttl",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.type != 'Permanent' || !has(self.renewBefore)",message="renewBefore must not be set on a Permanent code: it is never renewed",fieldPath=".renewBefore",reason=FieldValueForbidden
// +kubebuilder:validation:XValidation:rule="self.type != 'Temporary' || has(self.ttl)",message="ttl is required for a Temporary code (1m to 720h)",fieldPath=".ttl",reason=FieldValueRequired
// +kubebuilder:validation:XValidation:rule="!has(self.renewBefore) || !has(self.ttl) || !self.ttl.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || !self.renewBefore.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self.renewBefore) < duration(self.ttl)",message="renewBefore must be shorter than ttl",fieldPath=".renewBefore",reason=FieldValueInvalid
type WeChatQRCodeSpec struct {
	// AccountRef names the Official Account that issues the code.
	// +required
	AccountRef AccountReference `json:"accountRef"`

	// Type is Temporary or Permanent.
	// +required
	Type QRCodeType `json:"type"`

	// Scene is the parameter the code carries.
	// +required
	Scene Scene `json:"scene"`

	// ttl and renewBefore: a value that is not a duration is refused by their first rule alone,
	// with a message saying what is accepted. Every rule that calls duration() first checks the
	// same pattern: duration() of a non-duration fails the rule with CEL's type-conversion error
	// (a protobuf type name) added to the message. Not a schema pattern either: its message is
	// the bare regular expression.

	// TTL is how long each ticket of a Temporary code lives, from 1m to 720h (30 days, WeChat's
	// maximum), in hours, minutes or seconds (168h, 90m, 1h30m; not days). Required for Temporary
	// codes, forbidden for Permanent ones. The minimum keeps a ticket alive long enough to be
	// renewed: WeChat's own default lifetime is 30 to 60 seconds.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",messageExpression="'ttl ' + self + ' is not a duration: write it in hours, minutes or seconds, e.g. 168h, 90m or 1h30m; days are not accepted (30 days is 720h)'"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('1m') && duration(self) <= duration('720h'))",message="ttl must be between 1m and 720h (30 days, WeChat's maximum for temporary codes)"
	TTL *metav1.Duration `json:"ttl,omitempty"`

	// RenewBefore is how long before expiry a Temporary code's ticket is re-issued. It must be
	// shorter than ttl. Unset means a third of ttl; the default is applied by the controller, not
	// written into the spec, so GitOps tools see no drift.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",messageExpression="'renewBefore ' + self + ' is not a duration: write it in hours, minutes or seconds, e.g. 24h, 90m or 1h30m; days are not accepted (1 day is 24h)'"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || duration(self) >= duration('1s')",message="renewBefore must be at least 1s"
	RenewBefore *metav1.Duration `json:"renewBefore,omitempty"`

	// Reply, when set, is sent to whoever scans the code: a text, an image or a link card, the
	// same for everyone or one for new followers and another for followers. A
	// code with a reply is answered by the operator alone: its scans are not forwarded to the
	// account's spec.forward application.
	// +optional
	Reply *Reply `json:"reply,omitempty"`

	// Sink receives this code's counted scans as CloudEvents, besides the account's sink.
	// +optional
	Sink *Destination `json:"sink,omitempty"`

	// CodeTagging: spec.tags and spec.tagOn (tags_types.go).
	CodeTagging `json:",inline"`
}

// IssuedFor records what a ticket was issued for, so that a change of account, type or scene is
// noticed and a new ticket issued, and so that the callback server can attribute scans to the
// right account.
type IssuedFor struct {
	// AppID of the Official Account that issued the ticket.
	AppID string `json:"appID"`
	// Type of the code the ticket is for.
	Type QRCodeType `json:"type"`
	// Scene the ticket carries.
	Scene Scene `json:"scene"`
}

// PreviousTicket is an earlier ticket of this code that still works: posters printed with it
// still work and their scans still count for this code. A temporary one is kept until it expires.
// A permanent one never expires: it is kept until another code of the same AppID claims its
// scene, because WeChat would answer that code with this very ticket.
type PreviousTicket struct {
	// Ticket as WeChat issued it.
	Ticket string `json:"ticket"`
	// AppID of the account that issued it: after a change of spec.accountRef, pushes for the old
	// account's tickets still reach the callback server under that account.
	AppID string `json:"appID"`
	// Scene the ticket carries.
	Scene Scene `json:"scene"`
	// ExpiresAt is when WeChat stops honouring it; unset for a permanent ticket, which never
	// expires.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`
}

// WeChatQRCodeStatus is what the operator observed and did.
type WeChatQRCodeStatus struct {
	// ObservedGeneration is the spec generation the status describes. It defaults to 0, so that
	// a code the operator has not reconciled yet reads as InProgress to kstatus (Flux, Argo CD)
	// rather than as Current, which is what an object without any status reads as.
	// +optional
	// +kubebuilder:default=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, with reasons such as Issued, Renewing, AccountNotReady,
	// WeChatError<errcode>, QuotaExhausted, SceneConflict; Reconciling and Stalled (kstatus) while
	// they hold; SinkResolved and SinkDelivering while spec.sink is set (not part of Ready: the
	// ticket works whatever becomes of the scan events).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Ticket is WeChat's ticket for the current QR code.
	// +optional
	Ticket string `json:"ticket,omitempty"`

	// URL is the content the QR image encodes; any QR library can render the image from it.
	// +optional
	URL string `json:"url,omitempty"`

	// ImageURL is WeChat's showqrcode address for the image, ticket URL-encoded.
	// +optional
	ImageURL string `json:"imageURL,omitempty"`

	// IssuedFor is the account, type and scene the current ticket was issued for.
	// +optional
	IssuedFor *IssuedFor `json:"issuedFor,omitempty"`

	// IssuedAt is when the current ticket was issued.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// ExpiresAt is when the current ticket expires, from the lifetime WeChat answered. Unset for
	// Permanent codes.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// RenewalTime is when the operator will next ask WeChat for a ticket: ahead of a Temporary
	// code's expiry or, after a failed attempt, at the end of the backoff.
	// +optional
	RenewalTime *metav1.Time `json:"renewalTime,omitempty"`

	// PreviousTickets are earlier tickets of this code that still work: temporary ones until
	// they expire, permanent ones until another code of the same AppID claims their scene. At most
	// MaxPreviousTickets, the oldest dropped first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	PreviousTickets []PreviousTicket `json:"previousTickets,omitempty"`

	// FailedAttempts counts consecutive failed issuance attempts; reset by a success.
	// +optional
	FailedAttempts int32 `json:"failedAttempts,omitempty"`

	// LastFailureTime is when the last issuance attempt failed.
	// +optional
	LastFailureTime *metav1.Time `json:"lastFailureTime,omitempty"`

	// LastFailureSecretVersion is the resourceVersion of the account Secret the last failed
	// attempt used: once the Secret changes, the next attempt is made at once instead of at the
	// end of the backoff.
	// +optional
	LastFailureSecretVersion string `json:"lastFailureSecretVersion,omitempty"`

	// SinkURI is spec.sink resolved to a URL, where the callback server sends this code's scan
	// events; empty while it does not resolve (SinkResolved False says why).
	// +optional
	SinkURI string `json:"sinkURI,omitempty"`

	// SinkMaxEvents is spec.sink.batch.maxEvents as sent to SinkURI (see the account's); 0
	// (unset): binary mode, one event per request.
	// +optional
	SinkMaxEvents int32 `json:"sinkMaxEvents,omitempty"`

	// SinkDelivery is how the code's scan events reach spec.sink, written by the callback
	// server's deliverer.
	// +optional
	SinkDelivery *SinkDeliveryStatus `json:"sinkDelivery,omitempty"`

	// Tagging is what became of the code's scanners at WeChat (spec.tags), written by the
	// manager that tags them.
	// +optional
	Tagging *TaggingStatus `json:"tagging,omitempty"`

	// ObservedRenewRequest is the value of the renew-requested-at annotation last acted on
	// (re-issued, or refused with an Event), so that each request is handled once.
	// +optional
	ObservedRenewRequest string `json:"observedRenewRequest,omitempty"`
}

// Annotations the callback server writes on a WeChatQRCode: a view of the WeChatScanTally it
// folds the scan ledger into, restored by the next fold when overwritten. They live in metadata,
// not status, because the callback server is a separate writer: it may patch metadata, never
// status.
const (
	// AnnotationScans is the total number of scans (subscribe and SCAN events) attributed to the code.
	AnnotationScans = "wechat.qrcode-operator.io/scans"
	// AnnotationSubscribes is the number of scans that brought a new follower (subscribe events).
	AnnotationSubscribes = "wechat.qrcode-operator.io/subscribes"
	// AnnotationExistingFollowers is the number of scans by users who already followed the
	// account (SCAN events).
	AnnotationExistingFollowers = "wechat.qrcode-operator.io/existing-followers"
	// AnnotationUniqueScanners estimates the distinct users who scanned the code (HyperLogLog,
	// about 0.8% standard error). No OpenID is ever stored on the code.
	AnnotationUniqueScanners = "wechat.qrcode-operator.io/unique-scanners"
	// AnnotationLastScanTime is the RFC 3339 time of the most recent counted scan.
	AnnotationLastScanTime = "wechat.qrcode-operator.io/last-scan-time"
	// AnnotationRecentEvents is the ring of recently counted event keys that earlier versions
	// kept on each code. No longer written: the ledger's fold recognises retries. Named so that
	// the manager's cache still drops it from codes counted before.
	AnnotationRecentEvents = "wechat.qrcode-operator.io/recent-events"
)

// AnnotationRenewRequestedAt asks for an early re-issue of a Temporary code (`kubectl wechat
// renew` writes it). Its value is the RFC 3339 time of the request; the controller re-issues once
// when that time is later than status.issuedAt, so the annotation may stay where it is. Permanent
// codes are never re-issued: the request is refused with an Event.
const AnnotationRenewRequestedAt = "wechat.qrcode-operator.io/renew-requested-at"

// WeChatQRCode is a WeChat Official Account parametric QR code (带参数二维码).
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wxqr;wqr,categories=wechat
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.spec.type`
// +kubebuilder:printcolumn:name="Scene",type=string,JSONPath=`.spec.scene.*`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Scans",type=string,JSONPath=`.metadata.annotations.wechat\.qrcode-operator\.io/scans`
// +kubebuilder:printcolumn:name="Followers",type=string,description="new followers",JSONPath=`.metadata.annotations.wechat\.qrcode-operator\.io/subscribes`
// +kubebuilder:printcolumn:name="Unique",type=string,description="distinct scanners (estimate)",JSONPath=`.metadata.annotations.wechat\.qrcode-operator\.io/unique-scanners`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Image",type=string,priority=1,JSONPath=`.status.imageURL`
// +kubebuilder:printcolumn:name="Sink",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="SinkDelivering")].reason`
// +kubebuilder:printcolumn:name="Backlog",type=integer,priority=1,JSONPath=`.status.sinkDelivery.backlog`
type WeChatQRCode struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WeChatQRCodeSpec `json:"spec"`
	// +kubebuilder:default={}
	Status WeChatQRCodeStatus `json:"status,omitempty"`
}

// WeChatQRCodeList is a list of WeChatQRCode.
// +kubebuilder:object:root=true
type WeChatQRCodeList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WeChatQRCode `json:"items"`
}

func init() {
	register(&WeChatQRCode{}, &WeChatQRCodeList{})
}
