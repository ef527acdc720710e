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

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
)

// NewSink returns a CloudEvents receiver that prints each scan event as one line: which code,
// which scene, who, and whether they followed by scanning.
func NewSink(log Printer) http.Handler {
	return ScanReceiver(func(e cloudevents.Event, scan delivery.ScanEvent) {
		log.Printf("scan of %s/%s: scene=%s openID=%s event=%s id=%s", scan.Namespace, scan.Name, scan.Scene, scan.OpenID, scan.Event, e.ID())
	})
}

// ScanReceiver returns a CloudEvents receiver (binary, structured or batched mode) that hands
// each scan event to got and answers 202; anything else is refused with a 400, which the operator
// does not retry. A batch is taken whole or refused whole: got sees none of a batch that holds
// anything but scan events. got may be called concurrently.
//
// Each request is read on its own (cehttp.NewEventFromHTTPRequest, NewEventsFromHTTPRequest for
// a batch) rather than through the SDK's receive handler: that one hands requests to their
// callbacks through one channel shared by all, and a request whose sender gives up can leave
// another's event there unread, its connection hanging for good (cloudevents/sdk-go#1224, #1332).
func ScanReceiver(got func(cloudevents.Event, delivery.ScanEvent)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		events, err := readEvents(r)
		if err != nil {
			http.Error(w, "not a CloudEvent: "+err.Error(), http.StatusBadRequest)
			return
		}
		scans := make([]delivery.ScanEvent, len(events))
		for i, e := range events {
			if scans[i], err = scanOf(e); err != nil {
				http.Error(w, fmt.Sprintf("event %d of %d: %v", i+1, len(events), err), http.StatusBadRequest)
				return
			}
		}
		for i, e := range events {
			got(e, scans[i])
		}
		w.WriteHeader(http.StatusAccepted)
	})
}

// readEvents reads the events of a request in any of the HTTP binding's modes.
func readEvents(r *http.Request) ([]cloudevents.Event, error) {
	if cehttp.IsHTTPBatch(r.Header) {
		events, err := cehttp.NewEventsFromHTTPRequest(r)
		if err == nil && len(events) == 0 {
			err = errors.New("an empty batch")
		}
		return events, err
	}
	e, err := cehttp.NewEventFromHTTPRequest(r)
	if err != nil {
		return nil, err
	}
	return []cloudevents.Event{*e}, nil
}

// scanOf is e's data if e is a scan event.
func scanOf(e cloudevents.Event) (delivery.ScanEvent, error) {
	var scan delivery.ScanEvent
	switch {
	case e.Type() != delivery.EventType:
		return scan, fmt.Errorf("not a scan event: type %q", e.Type())
	case len(e.Data()) == 0:
		return scan, errors.New("a scan event without data")
	}
	if err := e.DataAs(&scan); err != nil {
		return scan, fmt.Errorf("scan event data: %w", err)
	}
	return scan, nil
}
