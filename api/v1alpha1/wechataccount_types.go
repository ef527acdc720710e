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
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Kinds of account a code may refer to.
const (
	KindWeChatAccount        = "WeChatAccount"
	KindClusterWeChatAccount = "ClusterWeChatAccount"
)

// MaxPermanentCodes is how many permanent codes WeChat lets one account create, ever.
const MaxPermanentCodes = 100000

// SecretReference names a Secret holding an Official Account's credentials: a WeChatAccount's in
// its own namespace, a ClusterWeChatAccount's in the operator's namespace (the manager's
// --cluster-resource-namespace). Keys: appID, appSecret (unless tokens come from an external
// service), token, encodingAESKey and optionally previousEncodingAESKey (for event pushes).
type SecretReference struct {
	// Name of the Secret.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// TokenSourceType says where the operator gets the account's access tokens.
// +kubebuilder:validation:Enum=StableToken;Classic;External
type TokenSourceType string

const (
	// TokenSourceStableToken uses POST /cgi-bin/stable_token: a token that other callers of the
	// same AppID get too, so the operator can share an account with other applications.
	TokenSourceStableToken TokenSourceType = "StableToken"
	// TokenSourceClassic uses GET /cgi-bin/token: every fetch invalidates the token any other
	// application of the same AppID holds. Only for an account nothing else uses.
	TokenSourceClassic TokenSourceType = "Classic"
	// TokenSourceExternal takes tokens from a central token service that owns the AppID's token;
	// the Secret then needs no appSecret.
	TokenSourceExternal TokenSourceType = "External"
)

// TokenSource says where the access tokens come from. Unset means StableToken.
// +kubebuilder:validation:XValidation:rule="(self.type == 'External') == has(self.url)",message="tokenSource.url is required when tokenSource.type is External, and forbidden otherwise",fieldPath=".url"
type TokenSource struct {
	// Type is StableToken, Classic or External.
	// +required
	Type TokenSourceType `json:"type"`
	// URL of the central token service (type External): GET <url>?appid=<AppID> answers
	// {"access_token": ..., "expires_in": ...}. Credentials for it come from the manager's
	// --wechat-external-token-authorization-file flag, never from the URL.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="tokenSource.url must be an absolute http(s) URL"
	URL string `json:"url,omitempty"`
}

// RateLimit bounds the operator's qrcode/create calls for one account. Unset fields take the
// manager's --wechat-qps and --wechat-burst.
type RateLimit struct {
	// QPS is the sustained rate of qrcode/create calls per second, e.g. "1" or "0.5". WeChat's
	// daily quota (100,000 by default) averages 1.16 per second.
	// +optional
	QPS *resource.Quantity `json:"qps,omitempty"`
	// Burst is how many calls may go at once above the sustained rate.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	Burst *int32 `json:"burst,omitempty"`
}

// ServiceReference is a Service in the cluster that receives HTTP.
type ServiceReference struct {
	// Name of the Service.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Namespace of the Service. A WeChatAccount's must be its own (leave unset); a
	// ClusterWeChatAccount's defaults to the operator's namespace.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// Port of the Service; unset means 80.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port *int32 `json:"port,omitempty"`
	// Path of the request, e.g. /wx; unset means /.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern=`^/`
	Path string `json:"path,omitempty"`
}

// Forward is the application that already answered the account's pushes before the operator was
// put in front of it. Every push the operator does not answer itself goes on to it unchanged
// (method, query and body, so its own WeChat SDK verifies and decrypts it as if WeChat had
// called), and its reply goes back to WeChat as it is.
// +kubebuilder:validation:XValidation:rule="has(self.service) != has(self.url)",message="exactly one of forward.service and forward.url must be set"
type Forward struct {
	// Service in the cluster that runs the application.
	// +optional
	Service *ServiceReference `json:"service,omitempty"`
	// URL of the application, when it runs outside the cluster.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && (self.startsWith('https://') || self.startsWith('http://'))",message="forward.url must be an absolute http(s) URL"
	URL string `json:"url,omitempty"`

	// As ttl's (wechatqrcode_types.go): the pattern is checked by a rule of its own, with a
	// message, and before duration(), whose failure would add CEL's type-conversion error.

	// Timeout of a forwarded push, from 100ms to 4s; unset means 3s. WeChat waits 5 s for the
	// answer: a push the application has not answered in time gets "success" (the follower sees
	// nothing wrong), and its scan is counted all the same.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$')",messageExpression="'forward.timeout ' + self + ' is not a duration: write it in seconds or milliseconds, e.g. 3s or 500ms'"
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+([.][0-9]+)?(ns|us|µs|ms|s|m|h))+$') || (duration(self) >= duration('100ms') && duration(self) <= duration('4s'))",message="forward.timeout must be between 100ms and 4s (WeChat waits 5s for the whole answer)"
	Timeout *metav1.Duration `json:"timeout,omitempty"`
}

// KReference is an object in the cluster that receives HTTP: a Service, or any Addressable (a
// Knative Broker, Channel or Service: whatever has status.address.url), as Knative's sinks.
type KReference struct {
	// APIVersion of the object, e.g. v1 or eventing.knative.dev/v1.
	// +required
	// +kubebuilder:validation:MinLength=1
	APIVersion string `json:"apiVersion"`
	// Kind of the object, e.g. Service or Broker.
	// +required
	// +kubebuilder:validation:MinLength=1
	Kind string `json:"kind"`
	// Name of the object.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// Namespace of the object: unset means the referrer's own (the operator's for a
	// ClusterWeChatAccount).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// Destination is where scan events go, as CloudEvents over HTTP: an object, a URI, or a URI
// relative to the object's address (Knative's duckv1.Destination).
// +kubebuilder:validation:XValidation:rule="has(self.ref) || has(self.uri)",message="a sink needs ref, uri or both"
type Destination struct {
	// Ref is the object whose address receives the events.
	// +optional
	Ref *KReference `json:"ref,omitempty"`
	// URI is an absolute URL, or a path relative to ref's address.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	URI string `json:"uri,omitempty"`
	// Batch sends the events in CloudEvents batched content mode, several to a request, for a
	// receiver that reads batches; unset means binary mode, one event per request, which every
	// receiver reads (a Knative Broker reads nothing else).
	// +optional
	Batch *Batch `json:"batch,omitempty"`
	// Retention is how long a scan event waits for this sink while it is unreachable, failing
	// or not resolved yet, before it expires (counted, and shown in status.sinkDelivery): the
	// ledger segments holding it stay in the API server meanwhile. A duration of 1m to 24h;
	// unset, 1h.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern=`^([0-9]+h)?([0-9]+m)?([0-9]+s)?$`
	// +kubebuilder:validation:XValidation:rule="!self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') || self == '' || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",message="retention must be between 1m and 24h, written like 90m or 2h"
	Retention *metav1.Duration `json:"retention,omitempty"`
}

// DefaultSinkRetention is how long a scan event waits for a sink whose spec.sink.retention is
// unset.
const DefaultSinkRetention = time.Hour

// RetentionOf is how long scan events wait for d.
func (d *Destination) RetentionOf() time.Duration {
	if d == nil || d.Retention == nil || d.Retention.Duration <= 0 {
		return DefaultSinkRetention
	}
	return d.Retention.Duration
}

// Batch is CloudEvents batched content mode (application/cloudevents-batch+json: a JSON array
// of structured events): under load one request carries what has queued meanwhile, so sender
// and receiver pay for fewer requests; a quiet sink still gets each event at once, alone.
type Batch struct {
	// MaxEvents is the most events one request carries.
	// +required
	// +kubebuilder:validation:Minimum=2
	// +kubebuilder:validation:Maximum=1000
	MaxEvents int32 `json:"maxEvents"`
}

// MaxEvents is the most events a request to d carries in batched mode, 0 for binary mode (no
// batch, or no d).
func (d *Destination) MaxEvents() int32 {
	if d == nil || d.Batch == nil {
		return 0
	}
	return d.Batch.MaxEvents
}

// WeChatAccountSpec declares an Official Account. WeChatAccount and ClusterWeChatAccount share it.
type WeChatAccountSpec struct {
	// SecretRef names the Secret with the account's credentials.
	// +required
	SecretRef SecretReference `json:"secretRef"`

	// TokenSource says where access tokens come from; unset means StableToken.
	// +optional
	TokenSource *TokenSource `json:"tokenSource,omitempty"`

	// RateLimit bounds this account's qrcode/create calls; unset fields take the manager's flags.
	// +optional
	RateLimit *RateLimit `json:"rateLimit,omitempty"`

	// PermanentCodeLimit is how many Permanent codes this cluster may hold for the account, below
	// WeChat's 100,000: WeChat never gives one back, so a code that would exceed the budget is
	// refused with a condition and WeChat is not called. Unset means 100,000.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	PermanentCodeLimit *int32 `json:"permanentCodeLimit,omitempty"`

	// Forward is the application behind the account's one server URL: pushes the operator does
	// not answer go on to it, and its replies back to WeChat.
	// +optional
	Forward *Forward `json:"forward,omitempty"`

	// Sink receives every counted scan of the account's codes as a CloudEvent.
	// +optional
	Sink *Destination `json:"sink,omitempty"`
}

// AccountCallbackStatus is what the callback server sees of the account's pushes.
type AccountCallbackStatus struct {
	// Path is where WeChat must push the account's events: the callback server's address plus
	// this path is the "server URL" of the account's basic configuration.
	// +optional
	Path string `json:"path,omitempty"`
	// LastVerifiedPushTime is when the last push whose signature verified arrived.
	// +optional
	LastVerifiedPushTime *metav1.Time `json:"lastVerifiedPushTime,omitempty"`
	// Refused counts the pushes refused in the last hour, by reason. A wrong token in the Secret
	// shows here as bad_signature, a wrong encodingAESKey as decrypt_failed: WeChat then tells
	// every follower "该公众号暂时无法提供服务".
	// +optional
	// +listType=map
	// +listMapKey=reason
	// +kubebuilder:validation:MaxItems=32
	Refused []RefusedPushes `json:"refused,omitempty"`
	// ObservedTime is when the callback server last wrote this.
	// +optional
	ObservedTime *metav1.Time `json:"observedTime,omitempty"`
}

// RefusedPushes is a count of refused pushes of one reason.
type RefusedPushes struct {
	// Reason is the refusal's reason, as in the metric wechat_qrcode_callback_refused_total.
	Reason string `json:"reason"`
	// Count of pushes refused for that reason in the last hour.
	Count int64 `json:"count"`
}

// QRCodeQuota is WeChat's own count of today's qrcode/create calls (cgi-bin/openapi/quota/get).
type QRCodeQuota struct {
	// DailyLimit is the account's daily allowance.
	DailyLimit int64 `json:"dailyLimit"`
	// Used is how many calls were made today, by anyone using the account.
	Used int64 `json:"used"`
	// Remain is how many are left today.
	Remain int64 `json:"remain"`
	// ObservedTime is when WeChat was last asked, successfully or not.
	ObservedTime metav1.Time `json:"observedTime"`
	// Error is why the last read failed (WeChat's errcode and what to do); the numbers are then
	// those of the last read that worked.
	// +optional
	Error string `json:"error,omitempty"`
}

// PermanentCodeUsage is how much of the permanent-code budget this cluster holds.
type PermanentCodeUsage struct {
	// Used is the number of Permanent codes of this account that hold a ticket or are being issued.
	Used int32 `json:"used"`
	// Limit is spec.permanentCodeLimit, or 100,000.
	Limit int32 `json:"limit"`
}

// AccountCodes counts the codes that use the account.
type AccountCodes struct {
	// Total number of codes that refer to the account.
	Total int32 `json:"total"`
	// Ready is how many of them are Ready.
	Ready int32 `json:"ready"`
}

// WeChatAccountStatus is what the operator observed of the account. The manager writes every
// field but callback, which the callback server writes (path aside).
type WeChatAccountStatus struct {
	// ObservedGeneration is the spec generation the status describes; 0 before the first
	// reconcile, so kstatus reads InProgress.
	// +optional
	// +kubebuilder:default=0
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready (credentials present and a token obtained), with reasons such as
	// TokenObtained, SecretMissing, SecretInvalid, DuplicateAppID, WeChatError<errcode>;
	// Reconciling and Stalled (kstatus) while they hold; ForwardResolved, SinkResolved and
	// SinkDelivering while spec.forward and spec.sink are set (not part of Ready).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// AppID of the account, read from the Secret.
	// +optional
	AppID string `json:"appID,omitempty"`

	// ObservedSecretVersion is the resourceVersion of the Secret the Ready condition was decided
	// with: a token is fetched again only when the spec or the Secret changes.
	// +optional
	ObservedSecretVersion string `json:"observedSecretVersion,omitempty"`

	// TokenCheckTime is when the operator last asked for an access token to check the account:
	// once per change of the spec or the Secret, and again later only after a failure that time
	// may cure (a network error at once with backoff, an IP allowlist hourly).
	// +optional
	TokenCheckTime *metav1.Time `json:"tokenCheckTime,omitempty"`

	// Callback is what the callback server sees of the account's pushes.
	// +optional
	Callback *AccountCallbackStatus `json:"callback,omitempty"`

	// Quota is WeChat's count of today's qrcode/create calls.
	// +optional
	Quota *QRCodeQuota `json:"quota,omitempty"`

	// PermanentCodes is the permanent-code budget and how much of it is used.
	// +optional
	PermanentCodes *PermanentCodeUsage `json:"permanentCodes,omitempty"`

	// Codes counts the codes that use the account.
	// +optional
	Codes *AccountCodes `json:"codes,omitempty"`

	// Tags is the account's tag registry: tags used of WeChat's limit, and which codes use
	// which tag (tags_types.go). Present while codes of the account name tags.
	// +optional
	Tags *AccountTags `json:"tags,omitempty"`

	// ForwardURL is spec.forward resolved to a URL.
	// +optional
	ForwardURL string `json:"forwardURL,omitempty"`

	// SinkURI is spec.sink resolved to a URL.
	// +optional
	SinkURI string `json:"sinkURI,omitempty"`

	// SinkMaxEvents is spec.sink.batch.maxEvents as sent to SinkURI: recorded with the URL it
	// was resolved with, so that the callback server never sends batches to an address that
	// spec.sink no longer batches for. 0 (unset): binary mode, one event per request.
	// +optional
	SinkMaxEvents int32 `json:"sinkMaxEvents,omitempty"`

	// SinkDelivery is how the account's scan events reach spec.sink, written by the callback
	// server's deliverer.
	// +optional
	SinkDelivery *SinkDeliveryStatus `json:"sinkDelivery,omitempty"`
}

// WeChatAccount is an Official Account that the WeChatQRCodes of its namespace use.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=wxaccount;wxa,categories=wechat
// +kubebuilder:printcolumn:name="AppID",type=string,JSONPath=`.status.appID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Quota Used",type=integer,JSONPath=`.status.quota.used`
// +kubebuilder:printcolumn:name="Quota Limit",type=integer,JSONPath=`.status.quota.dailyLimit`
// +kubebuilder:printcolumn:name="Permanent",type=integer,JSONPath=`.status.permanentCodes.used`
// +kubebuilder:printcolumn:name="Permanent Limit",type=integer,JSONPath=`.status.permanentCodes.limit`
// +kubebuilder:printcolumn:name="Last Push",type=date,JSONPath=`.status.callback.lastVerifiedPushTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Path",type=string,priority=1,JSONPath=`.status.callback.path`
// +kubebuilder:printcolumn:name="Sink",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="SinkDelivering")].reason`
// +kubebuilder:printcolumn:name="Backlog",type=integer,priority=1,JSONPath=`.status.sinkDelivery.backlog`
type WeChatAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WeChatAccountSpec `json:"spec"`
	// +kubebuilder:default={}
	Status WeChatAccountStatus `json:"status,omitempty"`
}

// WeChatAccountList is a list of WeChatAccount.
// +kubebuilder:object:root=true
type WeChatAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []WeChatAccount `json:"items"`
}

// ClusterWeChatAccount is an Official Account that WeChatQRCodes of every namespace may use. Its
// Secret lives in the operator's namespace.
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=cwxaccount;cwxa,categories=wechat
// +kubebuilder:printcolumn:name="AppID",type=string,JSONPath=`.status.appID`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Quota Used",type=integer,JSONPath=`.status.quota.used`
// +kubebuilder:printcolumn:name="Quota Limit",type=integer,JSONPath=`.status.quota.dailyLimit`
// +kubebuilder:printcolumn:name="Permanent",type=integer,JSONPath=`.status.permanentCodes.used`
// +kubebuilder:printcolumn:name="Permanent Limit",type=integer,JSONPath=`.status.permanentCodes.limit`
// +kubebuilder:printcolumn:name="Last Push",type=date,JSONPath=`.status.callback.lastVerifiedPushTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:printcolumn:name="Reason",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Path",type=string,priority=1,JSONPath=`.status.callback.path`
// +kubebuilder:printcolumn:name="Sink",type=string,priority=1,JSONPath=`.status.conditions[?(@.type=="SinkDelivering")].reason`
// +kubebuilder:printcolumn:name="Backlog",type=integer,priority=1,JSONPath=`.status.sinkDelivery.backlog`
type ClusterWeChatAccount struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec WeChatAccountSpec `json:"spec"`
	// +kubebuilder:default={}
	Status WeChatAccountStatus `json:"status,omitempty"`
}

// ClusterWeChatAccountList is a list of ClusterWeChatAccount.
// +kubebuilder:object:root=true
type ClusterWeChatAccountList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ClusterWeChatAccount `json:"items"`
}

// Account is what WeChatAccount and ClusterWeChatAccount have in common, so that controllers
// and the callback server handle both kinds with one code path.
// +kubebuilder:object:generate=false
type Account interface {
	metav1.Object
	runtime.Object
	AccountSpec() *WeChatAccountSpec
	AccountStatus() *WeChatAccountStatus
	// Ref is how a code refers to this account.
	Ref() AccountReference
}

// NewAccount is an empty account of the kind an AccountReference names (KindOrDefault), to read
// it into.
func NewAccount(kind string) Account {
	if kind == KindClusterWeChatAccount {
		return &ClusterWeChatAccount{}
	}
	return &WeChatAccount{}
}

// AccountSpec implements Account.
func (a *WeChatAccount) AccountSpec() *WeChatAccountSpec { return &a.Spec }

// AccountStatus implements Account.
func (a *WeChatAccount) AccountStatus() *WeChatAccountStatus { return &a.Status }

// Ref implements Account.
func (a *WeChatAccount) Ref() AccountReference {
	return AccountReference{Kind: KindWeChatAccount, Name: a.Name}
}

// AccountSpec implements Account.
func (a *ClusterWeChatAccount) AccountSpec() *WeChatAccountSpec { return &a.Spec }

// AccountStatus implements Account.
func (a *ClusterWeChatAccount) AccountStatus() *WeChatAccountStatus { return &a.Status }

// Ref implements Account.
func (a *ClusterWeChatAccount) Ref() AccountReference {
	return AccountReference{Kind: KindClusterWeChatAccount, Name: a.Name}
}

// TokenSourceType returns the token source, StableToken when unset.
func (s *WeChatAccountSpec) TokenSourceType() TokenSourceType {
	if s.TokenSource == nil {
		return TokenSourceStableToken
	}
	return s.TokenSource.Type
}

// PermanentLimit returns the permanent-code budget, WeChat's own limit when unset.
func (s *WeChatAccountSpec) PermanentLimit() int32 {
	if s.PermanentCodeLimit == nil {
		return MaxPermanentCodes
	}
	return *s.PermanentCodeLimit
}

// Condition returns the condition of that type, or nil.
func (s *WeChatAccountStatus) Condition(conditionType string) *metav1.Condition {
	return findCondition(s.Conditions, conditionType)
}

func init() {
	register(&WeChatAccount{}, &WeChatAccountList{}, &ClusterWeChatAccount{}, &ClusterWeChatAccountList{})
}
