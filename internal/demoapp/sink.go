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

package demoapp

import (
	"errors"
	"fmt"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
)

// NewSink returns a CloudEvents receiver that prints each scan event as one line: which code,
// which scene, who, and whether they followed by scanning.
func NewSink(log Printer) http.Handler {
	return ScanReceiver(func(e cloudevents.Event, scan callback.ScanEvent) {
		log.Printf("scan of %s/%s: scene=%s openID=%s event=%s id=%s", scan.Namespace, scan.Name, scan.Scene, scan.OpenID, scan.Event, e.ID())
	})
}

// ScanReceiver returns a CloudEvents receiver (binary or structured mode) that hands each scan
// event to got and answers 202; anything else is refused with a 400, which the operator does not
// retry. got may be called concurrently.
//
// Each request is read on its own (cehttp.NewEventFromHTTPRequest) rather than through the SDK's
// receive handler: that one hands requests to their callbacks through one channel shared by all,
// and a request whose sender gives up can leave another's event there unread, its connection
// hanging for good (cloudevents/sdk-go#1224, #1332).
func ScanReceiver(got func(cloudevents.Event, callback.ScanEvent)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		e, err := cehttp.NewEventFromHTTPRequest(r)
		if err != nil {
			http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
			return
		}
		var scan callback.ScanEvent
		switch {
		case e.Type() != callback.ScanEventType:
			err = fmt.Errorf("not a scan event: type %q", e.Type())
		case len(e.Data()) == 0:
			err = errors.New("a scan event without data")
		default:
			if err = e.DataAs(&scan); err != nil {
				err = fmt.Errorf("scan event data: %w", err)
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		got(*e, scan)
		w.WriteHeader(http.StatusAccepted)
	})
}
