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

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// WeChat's limits on user tags (docs/wechat-platform.md §9), named so that the schema, the
// controller and the tests share them.
const (
	// MaxTagNameBytes bounds a tag name in bytes of UTF-8: 10 CJK characters.
	MaxTagNameBytes = 30
	// MaxAccountTags is how many tags WeChat lets an account create.
	MaxAccountTags = 100
	// MaxCodeTags bounds spec.tags: WeChat lets a follower carry at most 20 tags, so a code
	// naming more could never give a scanner all of them.
	MaxCodeTags = 20
	// MaxTagCodeNames bounds status.tags[].codeNames: an account may have 100,000 codes.
	MaxTagCodeNames = 3
	// MaxStatusTags bounds status.tags.tags: the account's 100 tags and as many names its codes
	// want beyond WeChat's limit.
	MaxStatusTags = 200
)

// TagName is the name of one of the account's user tags (用户标签), as WeChat's console shows it.
// WeChat's limit is 30 bytes of UTF-8, so a CJK character takes 3 of them; MaxLength
// (characters) is implied by the byte limit and bounds the rule's cost for the API server.
// +kubebuilder:validation:MinLength=1
// +kubebuilder:validation:MaxLength=30
// +kubebuilder:validation:XValidation:rule="size(bytes(self)) <= 30",message="a tag name must be at most 30 bytes of UTF-8 (WeChat's limit; a CJK character takes 3 bytes, so at most 10 of them)"
// +kubebuilder:validation:XValidation:rule="self.matches('[^ ]')",message="a tag name must not be blank"
type TagName string

// TagOn says which scans of a code tag the scanner.
// +kubebuilder:validation:Enum=AllScanners;NewFollowers
type TagOn string

const (
	// TagOnAllScanners tags everyone who scans the code: new followers (subscribe through the
	// code) and existing ones (SCAN). A code is a channel, whoever comes through it.
	TagOnAllScanners TagOn = "AllScanners"
	// TagOnNewFollowers tags only those who follow the account through the code.
	TagOnNewFollowers TagOn = "NewFollowers"
)

// CodeTagging is how a code tags its scanners; inline in WeChatQRCodeSpec.
type CodeTagging struct {
	// Tags are the names of the account's user tags that the code's scanners get, at most 20
	// (WeChat's limit per follower), each at most 30 bytes of UTF-8, no name twice. The operator
	// creates the tags the account lacks at WeChat; it never renames or deletes one, so a name
	// removed from here stays at WeChat (with its followers) until deleted in WeChat's console.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MaxItems=20
	Tags []TagName `json:"tags,omitempty"`

	// TagOn is AllScanners (the default: subscribe through the code and scans by followers) or
	// NewFollowers (subscribe through the code only). Unset means AllScanners; the default is
	// applied by the operator, not written into the spec, so GitOps tools see no drift.
	// +optional
	TagOn TagOn `json:"tagOn,omitempty"`
}

// TagOnOrDefault is spec.tagOn, AllScanners when unset.
func (t CodeTagging) TagOnOrDefault() TagOn {
	if t.TagOn == "" {
		return TagOnAllScanners
	}
	return t.TagOn
}

// TagsScan is whether a scan, a subscribe through the code or a follower's scan, tags its
// scanner.
func (t CodeTagging) TagsScan(subscribe bool) bool {
	return len(t.Tags) > 0 && (subscribe || t.TagOnOrDefault() == TagOnAllScanners)
}

// AccountTags is the account's tag registry as the operator last read it from WeChat.
type AccountTags struct {
	// Used is how many tags the account has created at WeChat (the operator's and any other's;
	// WeChat's reserved tags aside).
	Used int32 `json:"used"`
	// Limit is WeChat's maximum per account: 100.
	Limit int32 `json:"limit"`
	// Wanted is how many distinct tag names the account's codes name.
	Wanted int32 `json:"wanted"`
	// ReadTime is when the account's tags were last read from WeChat (cgi-bin/tags/get).
	// +optional
	ReadTime *metav1.Time `json:"readTime,omitempty"`
	// Tags are the tags the account's codes name, by name: at most 200, the first by name.
	// +optional
	// +listType=map
	// +listMapKey=name
	// +kubebuilder:validation:MaxItems=200
	Tags []TagUsage `json:"tags,omitempty"`
}

// TagUsage is one tag the account's codes name.
type TagUsage struct {
	// Name of the tag.
	Name string `json:"name"`
	// ID is WeChat's id of the tag, what batchtagging takes; unset while the tag does not exist
	// at WeChat (not created yet, or the account is at its limit).
	// +optional
	ID int64 `json:"id,omitempty"`
	// Codes is how many codes name the tag.
	Codes int32 `json:"codes"`
	// CodeNames are the first of them by namespace/name, at most 3.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	CodeNames []string `json:"codeNames,omitempty"`
}

// TaggingStatus is what the manager that leads did with a code's scanners since it started
// leading (Since): figures of one term, so that no two managers add to the same ones.
type TaggingStatus struct {
	// Since is when the manager that wrote the figures started tagging.
	Since metav1.Time `json:"since"`
	// Tagged is how many scanners were given the code's tags (a scanner once per tag).
	Tagged int64 `json:"tagged"`
	// InvalidOpenID, ForeignOpenID and FollowerTagLimit are the scanners skipped for good: not
	// a user of the account (40003), another AppID's (49003), carrying 20 tags already (45059).
	// +optional
	InvalidOpenID int64 `json:"invalidOpenID,omitempty"`
	// +optional
	ForeignOpenID int64 `json:"foreignOpenID,omitempty"`
	// +optional
	FollowerTagLimit int64 `json:"followerTagLimit,omitempty"`
	// LastError is the last reason the code's scans were tried again (a WeChat errcode and what
	// to do), and LastErrorTime when.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// +optional
	LastErrorTime *metav1.Time `json:"lastErrorTime,omitempty"`
}

// Conditions and reasons of tagging.
const (
	// ConditionTagsReady is on an account while its codes name tags: True when every tag they
	// name exists at WeChat, False with why not (TagLimitReached, a WeChat errcode), Unknown
	// while the account is not Ready. Not part of Ready: codes work without their tags.
	ConditionTagsReady = "TagsReady"
	// ConditionTagging is on a code while spec.tags is set: True when all its tags exist at
	// WeChat and no batchtagging error a human must end is current (status.tagging), False or
	// Unknown with why its scanners are not tagged.
	ConditionTagging = "Tagging"

	// ReasonTagsCreated: every tag the codes name exists at WeChat.
	ReasonTagsCreated = "TagsCreated"
	// ReasonTagLimitReached: the account has WeChat's 100 tags and a name is still missing.
	ReasonTagLimitReached = "TagLimitReached"
	// ReasonTagsPending: the account has not read or created the tags yet (it is not Ready, or
	// has not synced since the code named them).
	ReasonTagsPending = "TagsPending"
	// ReasonTagsNotCreated: a code's tag is missing at WeChat for a reason the account's
	// TagsReady condition gives (a WeChat errcode, WeChat unreachable).
	ReasonTagsNotCreated = "TagsNotCreated"

	// EventTagCreated: the operator created a tag at WeChat (normal, on the account).
	EventTagCreated = "TagCreated"
)
