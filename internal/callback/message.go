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
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"
)

// message is a plaintext push body, or the plaintext inside an encrypted one. Compatible mode
// sends the plaintext fields beside Encrypt; only Encrypt is authenticated, so of an encrypted push
// only Encrypt is read (envelopeEncrypt).
type message struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   string   `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	Event        string   `xml:"Event"`
	EventKey     string   `xml:"EventKey"`
	Ticket       string   `xml:"Ticket"`
}

var errMalformed = errors.New("malformed push body")

func parseMessage(b []byte) (*message, error) {
	m := &message{}
	if scanFields(b, m.field) {
		return m, nil
	}
	// Outside the subset the scan reads (an entity or a carriage return in a field, a comment…):
	// encoding/xml decides.
	*m = message{}
	if err := xml.Unmarshal(b, m); err != nil {
		return nil, errMalformed
	}
	return m, nil
}

// field is where scanFields stores the child of <xml> called name, nil for one not read.
func (m *message) field(name []byte) *string {
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

// Kinds of push, the kind label of the events metric.
const (
	kindQRSubscribe = "qr_subscribe" // a non-follower scanned a code and followed
	kindQRScan      = "qr_scan"      // a follower scanned a code
	kindSubscribe   = "subscribe"    // followed some other way (search, profile card)
	kindUnsubscribe = "unsubscribe"
	kindEvent       = "event" // any other event
	kindMessage     = "message"
)

// qrScenePrefix starts the EventKey of a subscribe event caused by a QR code.
const qrScenePrefix = "qrscene_"

// scan is a push that reports the scan of a parametric QR code.
type scan struct {
	kind   string
	scene  string
	ticket string
	// key identifies the event across WeChat's retries: a hash of WeChat's deduplication key.
	key string
}

// classify returns the scan a message reports, or nil and the kind of what it is instead.
func classify(m *message) (*scan, string) {
	if m.MsgType != "event" {
		return nil, kindMessage
	}
	s := &scan{ticket: m.Ticket}
	switch m.Event {
	case "subscribe":
		scene, ok := strings.CutPrefix(m.EventKey, qrScenePrefix)
		if !ok || scene == "" {
			return nil, kindSubscribe
		}
		s.kind, s.scene = kindQRSubscribe, scene
	case "SCAN":
		if m.EventKey == "" {
			return nil, kindEvent
		}
		s.kind, s.scene = kindQRScan, m.EventKey
	case "unsubscribe":
		return nil, kindUnsubscribe
	default:
		return nil, kindEvent
	}
	s.key = eventKey(m)
	return s, s.kind
}

// eventKey hashes FromUserName, CreateTime, Event and EventKey. 72 bits make a collision between
// two of the at most --recent-events keys kept per code negligible (about 2^-52 with 1024 keys),
// in 12 characters that need no escaping in an annotation.
func eventKey(m *message) string {
	h := sha256.New()
	for _, f := range []string{m.FromUserName, m.CreateTime, m.Event, m.EventKey} {
		// Length-prefixed, so that no two field lists hash the same bytes.
		h.Write(strconv.AppendInt(nil, int64(len(f)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(f))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}

// appendTextReply appends a passive reply (section "Passive user reply message" of WeChat's
// documentation) that answers the sender of m (the user) from the account m was sent to. The bytes
// are those encoding/xml made of it before (the tests keep that builder as their oracle).
func appendTextReply(dst []byte, m *message, text string, now int64) []byte {
	dst = append(dst, "<xml><ToUserName>"...)
	dst = appendCDATA(dst, m.FromUserName)
	dst = append(dst, "</ToUserName><FromUserName>"...)
	dst = appendCDATA(dst, m.ToUserName)
	dst = append(dst, "</FromUserName><CreateTime>"...)
	dst = strconv.AppendInt(dst, now, 10)
	dst = append(dst, "</CreateTime><MsgType><![CDATA[text]]></MsgType><Content>"...)
	dst = appendCDATA(dst, text)
	return append(dst, "</Content></xml>"...)
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
