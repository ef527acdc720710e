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

// Bounds of a passive reply's fields (docs/wechat-platform.md §10), named so that the schema and
// the tests share them. WeChat documents no length for a link card's fields or a media_id: the
// bounds are those its console and sibling APIs enforce, so that WeChat never truncates a
// greeting the schema accepted.
const (
	// MaxReplyText bounds a text in characters: an all-CJK text of 600 takes 1800 of WeChat's
	// 2048 bytes.
	MaxReplyText = 600
	// MaxReplyTextBytes is WeChat's limit for a text message, in bytes of UTF-8.
	MaxReplyTextBytes = 2048
	// MaxMediaID bounds image.mediaID: WeChat's ids are 43 (permanent) or 64 (temporary)
	// characters.
	MaxMediaID = 128
	// MaxLinkTitle is the console's limit for an article title (64 characters).
	MaxLinkTitle = 64
	// MaxLinkDescription is the console's limit for an article's digest (120 characters).
	MaxLinkDescription = 120
	// MaxLinkURL is the longest url or picURL: 2048 bytes, what WeCom's news message documents
	// for both.
	MaxLinkURL = 2048
)

// Reply is the passive reply the callback server sends to whoever scans the code: one message
// (text, image or link) for every scanner, and optionally another for new followers (subscribe
// through the code) or for followers (SCAN). A scan whose kind has no message is acknowledged
// without one; a code with a reply is never forwarded to the account's application.
// +kubebuilder:validation:XValidation:rule="(has(self.text) ? 1 : 0) + (has(self.image) ? 1 : 0) + (has(self.link) ? 1 : 0) <= 1",message="set at most one of reply.text, reply.image and reply.link (the message for every scanner); newFollowers and followers each take their own"
// +kubebuilder:validation:XValidation:rule="has(self.text) || has(self.image) || has(self.link) || has(self.newFollowers) || has(self.followers)",message="reply needs a message: text, image or link for every scanner, or newFollowers or followers"
type Reply struct {
	// ReplyMessage is the message for every scanner whose kind has none of its own; empty when
	// only newFollowers or followers is set.
	ReplyMessage `json:",inline"`

	// NewFollowers is the message for a scanner who follows the account through the code (a
	// subscribe push), instead of the one for every scanner.
	// +optional
	// +kubebuilder:validation:XValidation:rule="(has(self.text) ? 1 : 0) + (has(self.image) ? 1 : 0) + (has(self.link) ? 1 : 0) == 1",message="set exactly one of text, image and link"
	NewFollowers *ReplyMessage `json:"newFollowers,omitempty"`

	// Followers is the message for a scanner who already follows the account (a SCAN push),
	// instead of the one for every scanner.
	// +optional
	// +kubebuilder:validation:XValidation:rule="(has(self.text) ? 1 : 0) + (has(self.image) ? 1 : 0) + (has(self.link) ? 1 : 0) == 1",message="set exactly one of text, image and link"
	Followers *ReplyMessage `json:"followers,omitempty"`
}

// ReplyMessage is one passive reply: a text, an image or a link card. The schema admits exactly
// one where it is a message of its own (newFollowers, followers), at most one inline in Reply.
type ReplyMessage struct {
	// Text of the reply, 1 to 600 characters and at most 2048 bytes of UTF-8 (WeChat's limit
	// for a text message): 600 CJK characters take 1800 bytes, 600 emoji would take 2400.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=600
	// +kubebuilder:validation:XValidation:rule="bytes(self).size() <= 2048",message="text must be at most 2048 bytes of UTF-8 (WeChat's limit for a text message)"
	Text string `json:"text,omitempty"`

	// Image replies with a picture of the account's material library.
	// +optional
	Image *ReplyImage `json:"image,omitempty"`

	// Link replies with a link card: one news article, which WeChat shows with its title,
	// description and picture and opens url when tapped.
	// +optional
	Link *ReplyLink `json:"link,omitempty"`
}

// Empty reports whether m holds no message.
func (m *ReplyMessage) Empty() bool {
	return m == nil || m.Text == "" && m.Image == nil && m.Link == nil
}

// ReplyImage is an image reply.
type ReplyImage struct {
	// MediaID of a permanent image material (material/add_material, or the console's material
	// library): a temporary one expires after 3 days, and WeChat then sends nothing.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[!-~]+$')",message="image.mediaID is a media_id as WeChat returns it: printable ASCII without spaces"
	MediaID string `json:"mediaID"`
}

// ReplyLink is a link card: the one article WeChat shows for a passive news reply.
type ReplyLink struct {
	// Title of the card, 1 to 64 characters (the console's limit for an article title).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=64
	Title string `json:"title"`

	// Description under the title, at most 120 characters (the console's limit for a digest).
	// +optional
	// +kubebuilder:validation:MaxLength=120
	Description string `json:"description,omitempty"`

	// URL the card opens: http or https, at most 2048 characters.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="link.url must be an absolute http or https URL"
	URL string `json:"url"`

	// PicURL is the card's picture, JPG or PNG (WeChat shows it best at 360×200): http or https,
	// at most 2048 characters. Unset: a card without a picture.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['http', 'https'] && url(self).getHostname() != ''",message="link.picURL must be an absolute http or https URL"
	PicURL string `json:"picURL,omitempty"`
}
