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
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/go-logr/logr"
	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
)

// The benchmarks below are the measurements behind the sinks' sizes (issue 12: a healthy sink
// fell behind the hot load and the queue overflowed). Run them one at a time on a quiet machine:
//
//	go test ./internal/callback/ -run '^$' -bench 'SinkDelivery|SinkSend' -benchtime 2000x

// benchSink is a sink that takes service to answer each event, as a sink that stores it does,
// and counts the events it accepted.
func benchSink(b *testing.B, service time.Duration) (url string, accepted *atomic.Int64) {
	accepted = &atomic.Int64{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := cehttp.NewEventFromHTTPRequest(r); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if service > 0 {
			// The sink's own work, not a synchronisation: nothing waits on it but its sender.
			time.Sleep(service)
		}
		accepted.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	b.Cleanup(srv.Close)
	return srv.URL, accepted
}

func benchEvents(b *testing.B, n int) []cloudevents.Event {
	code := newCode("ns", "hot", "wxbench", "T", 1, "")
	events := make([]cloudevents.Event, n)
	for i := range events {
		var err error
		events[i], err = scanEvent("wxbench", code, &scan{kind: kindQRScan, scene: "1", key: "bench-" + strconv.Itoa(i)},
			&pushwire.Message{FromUserName: "o-bench", CreateTime: "1700000000"})
		if err != nil {
			b.Fatal(err)
		}
	}
	return events
}

// BenchmarkSinkDelivery: events per second one sink gets through the queue, by workers and by
// how long the sink takes per event. Each worker waits for its event's answer before the next,
// so the rate is at most workers / (round trip + service): the workers, not the SDK nor the
// connections, set it once the sink does any work.
func BenchmarkSinkDelivery(b *testing.B) {
	for _, service := range []time.Duration{0, time.Millisecond, 5 * time.Millisecond} {
		for _, workers := range []int{4, 16, 64} {
			b.Run(fmt.Sprintf("service=%s/workers=%d", service, workers), func(b *testing.B) {
				url, accepted := benchSink(b, service)
				events := benchEvents(b, b.N)
				// A queue as long as the run: the rate is the delivery's, with nothing dropped.
				s := newSinks(clock.RealClock{}, workers, b.N, logr.Discard())
				b.ResetTimer()
				for _, e := range events {
					s.publish(e, sinkTarget{uri: url})
				}
				for !s.idle() {
					<-s.exited
				}
				b.StopTimer()
				if got := accepted.Load(); got != int64(b.N) {
					b.Fatalf("the sink accepted %d of %d events", got, b.N)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
			})
		}
	}
}

// BenchmarkSinkSend: the cost of one delivery through the CloudEvents SDK against the same
// binary-mode request written by hand with net/http, one at a time, to a sink that does nothing:
// what the SDK adds per event.
func BenchmarkSinkSend(b *testing.B) {
	url, _ := benchSink(b, 0)
	events := benchEvents(b, 1)
	e := events[0]
	transport := sinkTransport(1)
	b.Run("sdk", func(b *testing.B) {
		c, err := cloudevents.NewClientHTTP(cehttp.WithRoundTripper(transport))
		if err != nil {
			b.Fatal(err)
		}
		ctx := cloudevents.ContextWithTarget(context.Background(), url)
		b.ReportAllocs()
		for b.Loop() {
			if res := c.Send(ctx, e); !cloudevents.IsACK(res) {
				b.Fatal(res)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		c := &http.Client{Transport: transport}
		b.ReportAllocs()
		for b.Loop() {
			req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(e.Data()))
			if err != nil {
				b.Fatal(err)
			}
			req.Header = http.Header{
				"Content-Type": {e.DataContentType()}, "Ce-Specversion": {e.SpecVersion()}, "Ce-Id": {e.ID()}, "Ce-Type": {e.Type()},
				"Ce-Source": {e.Source()}, "Ce-Subject": {e.Subject()}, "Ce-Time": {e.Time().Format(time.RFC3339Nano)},
			}
			resp, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusAccepted {
				b.Fatal(resp.Status)
			}
		}
	})
}
