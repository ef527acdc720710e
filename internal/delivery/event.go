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

package delivery

import (
	"encoding/binary"
	"encoding/hex"
	"strings"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
)

// EventType is the CloudEvents type of a counted scan.
const EventType = "io.qrcode-operator.wechat.qrcode.scanned"

// PartitionKeyExtension is the CloudEvents partitioning extension: a Kafka-backed Knative Broker
// or KafkaSink keys its records by it, so one scanner's events keep their order.
const PartitionKeyExtension = "partitionkey"

// ScanEvent is the data of a scan event.
type ScanEvent struct {
	// Namespace and Name of the WeChatQRCode scanned.
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Scene of the code as WeChat reports it: the scene id in decimal, or the scene string.
	Scene string `json:"scene"`
	// Ticket scanned, when WeChat says.
	Ticket string `json:"ticket,omitempty"`
	// OpenID of the user who scanned, for this account.
	OpenID string `json:"openID"`
	// Event is "subscribe" (the user followed by scanning) or "SCAN" (a follower scanned).
	Event string `json:"event"`
}

// eventOf is the CloudEvent of a counted scan, from its ledger entry alone (which must have its
// event's data): id the dedupe key, which WeChat's retries keep, so that a sink dedupes by source
// and id; source the account's push path and the code; partitionkey the scanner's hash (not the
// OpenID: a broker logs keys).
func eventOf(e qrv1alpha1.LedgerEntry) (cloudevents.Event, error) {
	ns, name, _ := strings.Cut(e.Code, "/")
	ev := cloudevents.NewEvent()
	ev.SetID(e.Key)
	ev.SetType(EventType)
	ev.SetSource("/wechat/" + e.Event.AppID + "/namespaces/" + ns + "/wechatqrcodes/" + name)
	ev.SetSubject(e.Code)
	ev.SetTime(time.Unix(e.Event.CreateTime, 0).UTC())
	ev.SetExtension(PartitionKeyExtension, partitionKey(e.Scanner))
	kind := "SCAN"
	if e.Subscribe {
		kind = "subscribe"
	}
	err := ev.SetData(cloudevents.ApplicationJSON, ScanEvent{
		Namespace: ns, Name: name, Scene: e.Event.Scene, Ticket: e.Event.Ticket, OpenID: e.Event.OpenID, Event: kind,
	})
	return ev, err
}

// partitionKey spells a scanner's hash as 16 hex digits.
func partitionKey(scanner int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(scanner))
	return hex.EncodeToString(b[:])
}
