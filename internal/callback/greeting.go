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

package callback

import (
	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
)

// greeting is the message a scan of kind (kindQRSubscribe or kindQRScan) gets from a code's
// reply: the one for its kind of scanner (newFollowers, followers), else the one for every
// scanner; nil when the reply has none for it, and the scan is acknowledged without a message.
func greeting(r *qrv1alpha1.Reply, kind string) *qrv1alpha1.ReplyMessage {
	if r == nil {
		return nil
	}
	own := r.Followers
	if kind == kindQRSubscribe {
		own = r.NewFollowers
	}
	switch {
	case !own.Empty():
		return own
	case !r.ReplyMessage.Empty():
		return &r.ReplyMessage
	}
	return nil
}

// appendGreeting appends msg as the passive reply to the sender of m. The schema admits one kind
// of message; should a stale object hold more, the image wins, then the link.
func appendGreeting(dst []byte, m *pushwire.Message, msg *qrv1alpha1.ReplyMessage, now int64) []byte {
	switch {
	case msg.Image != nil:
		return pushwire.AppendImageReply(dst, m, msg.Image.MediaID, now)
	case msg.Link != nil:
		l := msg.Link
		return pushwire.AppendNewsReply(dst, m, pushwire.Article{Title: l.Title, Description: l.Description, PicURL: l.PicURL, URL: l.URL}, now)
	}
	return pushwire.AppendTextReply(dst, m, msg.Text, now)
}
