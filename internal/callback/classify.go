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
	"strconv"
	"strings"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
)

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
func classify(m *pushwire.Message) (*scan, string) {
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
func eventKey(m *pushwire.Message) string {
	h := sha256.New()
	for _, f := range []string{m.FromUserName, m.CreateTime, m.Event, m.EventKey} {
		// Length-prefixed, so that no two field lists hash the same bytes.
		h.Write(strconv.AppendInt(nil, int64(len(f)), 10))
		h.Write([]byte{':'})
		h.Write([]byte(f))
	}
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)[:9])
}
