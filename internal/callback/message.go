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
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"strconv"
	"strings"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// message is a push body, or the plaintext inside an encrypted one. Compatible mode sends the
// plaintext fields and Encrypt side by side; only Encrypt is authenticated, so only it is used.
type message struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   string   `xml:"ToUserName"`
	FromUserName string   `xml:"FromUserName"`
	CreateTime   string   `xml:"CreateTime"`
	MsgType      string   `xml:"MsgType"`
	Event        string   `xml:"Event"`
	EventKey     string   `xml:"EventKey"`
	Ticket       string   `xml:"Ticket"`
	Encrypt      string   `xml:"Encrypt"`
}

var errMalformed = errors.New("malformed push body")

func parseMessage(b []byte) (*message, error) {
	var m message
	if err := xml.Unmarshal(b, &m); err != nil {
		return nil, errMalformed
	}
	return &m, nil
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

// cdata marshals as a CDATA section; encoding/xml splits any "]]>" inside it.
type cdata struct {
	Value string `xml:",cdata"`
}

// textReply is a passive reply (section "Passive user reply message" of WeChat's documentation).
type textReply struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   cdata    `xml:"ToUserName"`
	FromUserName cdata    `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      cdata    `xml:"MsgType"`
	Content      cdata    `xml:"Content"`
}

// encryptedReply wraps an encrypted passive reply in safe and compatible mode.
type encryptedReply struct {
	XMLName      xml.Name `xml:"xml"`
	Encrypt      cdata    `xml:"Encrypt"`
	MsgSignature cdata    `xml:"MsgSignature"`
	TimeStamp    string   `xml:"TimeStamp"`
	Nonce        cdata    `xml:"Nonce"`
}

// newTextReply answers the sender of m (the user) from the account m was sent to.
func newTextReply(m *message, text string, now int64) ([]byte, error) {
	return xml.Marshal(textReply{
		ToUserName:   cdata{m.FromUserName},
		FromUserName: cdata{m.ToUserName},
		CreateTime:   now,
		MsgType:      cdata{"text"},
		Content:      cdata{text},
	})
}

// seal encrypts and signs a passive reply (safe and compatible mode).
func seal(token string, c *wxcrypto.Cipher, reply []byte, now int64) ([]byte, error) {
	enc, err := c.Encrypt(reply)
	if err != nil {
		return nil, err
	}
	ts, nonce := strconv.FormatInt(now, 10), rand.Text()
	return xml.Marshal(encryptedReply{
		Encrypt:      cdata{enc},
		MsgSignature: cdata{wxcrypto.Signature(token, ts, nonce, enc)},
		TimeStamp:    ts,
		Nonce:        cdata{nonce},
	})
}
