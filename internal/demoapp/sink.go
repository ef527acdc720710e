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
	"context"
	"net/http"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/protocol"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
)

// NewSink returns a CloudEvents receiver that prints each scan event as one line: which code,
// which scene, who, and whether they followed by scanning. Any other event is refused with a 400,
// which the operator does not retry.
func NewSink(log Printer) (http.Handler, error) {
	p, err := cloudevents.NewHTTP()
	if err != nil {
		return nil, err
	}
	return cloudevents.NewHTTPReceiveHandler(context.Background(), p, func(e cloudevents.Event) protocol.Result {
		var scan callback.ScanEvent
		if e.Type() != callback.ScanEventType {
			return cloudevents.NewHTTPResult(http.StatusBadRequest, "not a scan event: type %q", e.Type())
		}
		if err := e.DataAs(&scan); err != nil {
			return cloudevents.NewHTTPResult(http.StatusBadRequest, "scan event data: %v", err)
		}
		log.Printf("scan of %s/%s: scene=%s openID=%s event=%s id=%s", scan.Namespace, scan.Name, scan.Scene, scan.OpenID, scan.Event, e.ID())
		return nil
	})
}
