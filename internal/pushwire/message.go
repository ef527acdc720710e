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

// Package pushwire is the bytes of WeChat's pushes and passive replies (docs/wechat-platform.md
// §5 and §6): reading the query parameters of a push, the <Encrypt> of its envelope and its
// fields, building a text, image or news reply and the encrypted envelope around it. It holds no server, so that fuzzing it instruments
// only the standard library and wxcrypto, not the Kubernetes client the callback server carries.
package pushwire

import (
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
)

// Message is a plaintext push body, or the plaintext inside an encrypted one. Compatible mode
// sends the plaintext fields beside Encrypt; only Encrypt is authenticated, so of an encrypted push
// only Encrypt is read (EnvelopeEncrypt).
type Message struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   string   `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	Event        string   `xml:"Event"`
	EventKey     string   `xml:"EventKey"`
	Ticket       string   `xml:"Ticket"`
}

// ErrMalformed is the error of a body that is not a push.
var ErrMalformed = errors.New("malformed push body")

// ParseMessage reads a push body's fields.
func ParseMessage(b []byte) (*Message, error) {
	m := &Message{}
	if scanFields(b, m.field) {
		return m, nil
	}
	// Outside the subset the scan reads (an entity or a carriage return in a field, a comment…):
	// encoding/xml decides.
	*m = Message{}
	if err := xml.Unmarshal(b, m); err != nil {
		return nil, ErrMalformed
	}
	return m, nil
}

// field is where scanFields stores the child of <xml> called name, nil for one not read.
func (m *Message) field(name []byte) *string {
	switch string(name) {
	case "ToUserName":
		return &m.ToUserName
	case "FromUserName":
		return &m.FromUserName
	case "CreateTime":
		return &m.CreateTime
	case "MsgType":
		return &m.MsgType
	case "Event":
		return &m.Event
	case "EventKey":
		return &m.EventKey
	case "Ticket":
		return &m.Ticket
	}
	return nil
}

// AppendTextReply appends a passive text reply (section "Passive user reply message" of WeChat's
// documentation) that answers the sender of m (the user) from the account m was sent to. The bytes
// of every Append…Reply are those encoding/xml makes of the same reply (the tests keep that
// builder, wxreply, as their oracle).
func AppendTextReply(dst []byte, m *Message, text string, now int64) []byte {
	dst = appendReplyHead(dst, m, "text", now)
	dst = append(dst, "<Content>"...)
	dst = appendCDATA(dst, text)
	return append(dst, "</Content></xml>"...)
}

// AppendImageReply appends a passive image reply to the sender of m: the picture of mediaID, a
// media_id of the account's material library.
func AppendImageReply(dst []byte, m *Message, mediaID string, now int64) []byte {
	dst = appendReplyHead(dst, m, "image", now)
	dst = append(dst, "<Image><MediaId>"...)
	dst = appendCDATA(dst, mediaID)
	return append(dst, "</MediaId></Image></xml>"...)
}

// Article is the one article of a news reply, a link card: WeChat shows one per passive reply.
type Article struct {
	Title       string
	Description string
	PicURL      string
	URL         string
}

// AppendNewsReply appends a passive news reply of one article to the sender of m. An empty field
// is an empty element, as encoding/xml writes it.
func AppendNewsReply(dst []byte, m *Message, a Article, now int64) []byte {
	dst = appendReplyHead(dst, m, "news", now)
	dst = append(dst, "<ArticleCount>1</ArticleCount><Articles><item><Title>"...)
	dst = appendCDATA(dst, a.Title)
	dst = append(dst, "</Title><Description>"...)
	dst = appendCDATA(dst, a.Description)
	dst = append(dst, "</Description><PicUrl>"...)
	dst = appendCDATA(dst, a.PicURL)
	dst = append(dst, "</PicUrl><Url>"...)
	dst = appendCDATA(dst, a.URL)
	return append(dst, "</Url></item></Articles></xml>"...)
}

// appendReplyHead opens a reply of msgType, a constant, from the account m was sent to, to its
// sender.
func appendReplyHead(dst []byte, m *Message, msgType string, now int64) []byte {
	dst = append(dst, "<xml><ToUserName>"...)
	dst = appendCDATA(dst, m.FromUserName)
	dst = append(dst, "</ToUserName><FromUserName>"...)
	dst = appendCDATA(dst, m.ToUserName)
	dst = append(dst, "</FromUserName><CreateTime>"...)
	dst = strconv.AppendInt(dst, now, 10)
	dst = append(dst, "</CreateTime><MsgType><![CDATA["...)
	dst = append(dst, msgType...)
	return append(dst, "]]></MsgType>"...)
}

// appendCDATA appends s as encoding/xml marshals a ",cdata" field: nothing when empty, else one
// CDATA section, split wherever s holds "]]>" so that the section cannot end early.
func appendCDATA(dst []byte, s string) []byte {
	if s == "" {
		return dst
	}
	dst = append(dst, "<![CDATA["...)
	for {
		before, after, ok := strings.Cut(s, "]]>")
		if !ok {
			break
		}
		dst = append(dst, before...)
		dst = append(dst, "]]]]><![CDATA[>"...)
		s = after
	}
	dst = append(dst, s...)
	return append(dst, "]]>"...)
}
