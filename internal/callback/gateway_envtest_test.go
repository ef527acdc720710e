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
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/forward"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushwire"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scantest"
)

// gatewayTimeout is the forward timeout of TestGatewayReplica: short, real, and far inside
// WeChat's 5 s.
const gatewayTimeout = 200 * time.Millisecond

// TestGatewayReplica: a real callback replica (its own manager and cache, the accounts from the
// projected push config Secret, the ledger on the API server) in front of an application that never answers in time, with a sink. WeChat gets
// "success" once the forward times out, well within its 5 s; the scan is counted once in the
// API server; the application was told which code and that the scan is new; the sink gets one
// event, whose id is the scan's dedupe key, even though the account and the code name the same
// sink and WeChat retries the push.
func TestGatewayReplica(t *testing.T) {
	f := newFixture(t)
	p := f.account("a", "wxgateway", "tok-gateway", testKey, "")
	app := newApplication(t, p.token, p.cipher)
	app.hold = make(chan struct{})
	t.Cleanup(func() { close(app.hold) })
	sink := newReceiver(t)
	// What the manager projects of the account's spec.forward and spec.sink.
	f.accounts[0].ForwardURL, f.accounts[0].ForwardTimeout, f.accounts[0].SinkURI = app.srv.URL+"/wx", gatewayTimeout, sink.url
	f.writeAccounts()
	r := f.replica(Options{})
	code := scantest.NewCode("", "login", p.appID, "TICKET-GW", 77, "")
	code.Status.SinkURI = sink.url
	f.Code(code)
	waitIndexed(t, []*replica{r}, p.appID, "TICKET-GW")

	createTime := time.Now().Unix()
	push := p.build(t, scanXML("o-login", createTime, "subscribe", "qrscene_77", "TICKET-GW"))
	timeouts := forwardCount(t, "timeout")
	for try := range 2 { // WeChat's retry: the same push again
		start := time.Now()
		status, body := push.send(t, r.url)
		took := time.Since(start)
		wantOK(t, status, body, "success")
		if took < gatewayTimeout || took >= 5*time.Second {
			t.Fatalf("try %d answered after %s: not by the forward's timeout of %s", try+1, took, gatewayTimeout)
		}
		<-app.arrived
	}
	if got := forwardCount(t, "timeout") - timeouts; got != 2 {
		t.Errorf("%v forwards timed out, want 2", got)
	}
	key := eventKey(&pushwire.Message{FromUserName: "o-login", CreateTime: strconv.FormatInt(createTime, 10), Event: "subscribe", EventKey: "qrscene_77"})
	got := app.requests()
	for i, scan := range []string{"new", "duplicate"} {
		h := got[i].header
		if got[i].problem != "" || h.Get(forward.HeaderCodeName) != "login" || h.Get(forward.HeaderCodeNamespace) != f.NS || h.Get(forward.HeaderScan) != scan || h.Get(forward.HeaderEventID) != key {
			t.Errorf("forward %d: %q, headers %v", i+1, got[i].problem, h)
		}
	}
	f.wantCounts(code, "1", "1")

	// The deliverer (elected among the replicas) reads the event from the ledger: one event,
	// although the account and the code name the same sink and WeChat retried the push.
	scantest.WaitFor(t, "the sink's event", func() bool { return len(sink.received()) > 0 })
	events := sink.received()
	if len(events) != 1 || events[0].ID() != key {
		t.Fatalf("the sink got %v, want one event with id %s", events, key)
	}
	var data delivery.ScanEvent
	if err := events[0].DataAs(&data); err != nil || data.OpenID != "o-login" || data.Name != "login" || data.Event != "subscribe" || data.Ticket != "TICKET-GW" || data.Scene != "77" {
		t.Errorf("event data %+v (%v)", data, err)
	}
	if pk, _ := events[0].Extensions()[delivery.PartitionKeyExtension].(string); len(pk) != 16 || strings.Contains(pk, "o-login") {
		t.Errorf("partitionkey %q: want the scanner's hash in 16 hex digits", pk)
	}
	// The segments record that the sink has it, so that the folder may delete them.
	f.WaitDelivered()
	if len(sink.received()) != 1 {
		t.Errorf("the sink got %d events, want 1", len(sink.received()))
	}
}
