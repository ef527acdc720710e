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

package tagging

import (
	"context"
	"errors"
	"net/http"
	"strings"

	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
)

// Handler is the tagging endpoint: POST a batch of scan events (batched CloudEvents mode, as
// the deliverer sends them). It answers 204 once every scanner is tagged or skipped for good,
// and 503 for anything to try again (the deliverer backs off and sends the request again); the
// body of a 503 says why, without an OpenID.
func (t *Tagger) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST a batch of scan events", http.StatusMethodNotAllowed)
			return
		}
		scans, err := scansOf(r)
		if err != nil {
			requests.WithLabelValues("retry").Inc()
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if err := t.Tag(r.Context(), scans); err != nil {
			requests.WithLabelValues("retry").Inc()
			if !errors.Is(err, context.Canceled) {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
			}
			return
		}
		requests.WithLabelValues("ok").Inc()
		w.WriteHeader(http.StatusNoContent)
	})
}

// scansOf reads the scans of a batch of scan events.
func scansOf(r *http.Request) ([]Scan, error) {
	events, err := cehttp.NewEventsFromHTTPRequest(r)
	if err != nil {
		return nil, errors.New("not a batch of CloudEvents")
	}
	scans := make([]Scan, 0, len(events))
	for _, e := range events {
		var d delivery.ScanEvent
		if e.Type() != delivery.EventType {
			return nil, errors.New("an event of another type than " + delivery.EventType)
		}
		if err := e.DataAs(&d); err != nil || d.OpenID == "" || d.Namespace == "" || d.Name == "" {
			return nil, errors.New("a scan event without its code or its scanner")
		}
		scans = append(scans, Scan{Namespace: d.Namespace, Name: d.Name, OpenID: strings.TrimSpace(d.OpenID), At: e.Time()})
	}
	return scans, nil
}
