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

package fault

import (
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/callback"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/delivery"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/demoapp"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// sink is a CloudEvents sink over real HTTP: it reads every request with the SDK's HTTP binding
// (demoapp.ScanReceiver, the dev stack's sink), answers 202 after latency, as a sink that writes
// somewhere before it answers, and records every event by id and by the scanner its data names.
// Down, it refuses connections: its listener is closed, as when a sink's Pods are all gone.
type sink struct {
	t       *testing.T
	addr    string
	latency time.Duration

	mu  sync.Mutex
	srv *http.Server
	// ids counts the events received by CloudEvent id (the dedupe key); first is when each
	// scanner's event first arrived.
	ids      map[string]int
	first    map[string]time.Time
	received int
}

// sink starts a sink, stopped at the end of the test.
func (w *world) sink(latency time.Duration) *sink {
	w.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		w.t.Fatal(err)
	}
	sk := &sink{t: w.t, addr: l.Addr().String(), latency: latency, ids: map[string]int{}, first: map[string]time.Time{}}
	sk.serve(l)
	w.t.Cleanup(sk.down)
	return sk
}

func (sk *sink) url() string { return "http://" + sk.addr + "/" }

func (sk *sink) serve(l net.Listener) {
	receive := demoapp.ScanReceiver(sk.note)
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(sk.latency):
			receive.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	})}
	sk.mu.Lock()
	sk.srv = srv
	sk.mu.Unlock()
	go func() { _ = srv.Serve(l) }()
}

func (sk *sink) note(e cloudevents.Event, scan delivery.ScanEvent) {
	now := time.Now()
	sk.mu.Lock()
	defer sk.mu.Unlock()
	sk.received++
	sk.ids[e.ID()]++
	if _, ok := sk.first[scan.OpenID]; !ok {
		sk.first[scan.OpenID] = now
	}
}

// down closes the listener and every connection, requests in flight included.
func (sk *sink) down() {
	sk.mu.Lock()
	srv := sk.srv
	sk.srv = nil
	sk.mu.Unlock()
	if srv != nil {
		_ = srv.Close()
	}
}

// up listens again on the same address.
func (sk *sink) up() {
	l, err := net.Listen("tcp", sk.addr)
	if err != nil {
		sk.t.Fatalf("the sink's address %s, taken while it was down: %v", sk.addr, err)
	}
	sk.serve(l)
}

// count is how many events the sink has received, and how many of them were distinct.
func (sk *sink) count() (received, distinct int) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	return sk.received, len(sk.ids)
}

// arrived is when the event of the i-th scan first reached the sink; false if it has not.
func (sk *sink) arrived(i int) (time.Time, bool) {
	sk.mu.Lock()
	defer sk.mu.Unlock()
	at, ok := sk.first[scanner(i)]
	return at, ok
}

// sinkRate is the scans a second of every scenario but the killed deliverer's long version (and
// the re-created account's, at half).
const sinkRate = 200

// apiPoll is how often a test asks the API server while it waits.
const apiPoll = 50 * time.Millisecond

// sinkLatency is how long the sink takes to answer a request: one write to a database.
const sinkLatency = 50 * time.Millisecond

// deliveries is a delivery test's setup: codes of the world's account, whose spec.sink is a real
// sink, and the callback replicas that count their scans, one of them delivering them.
type deliveries struct {
	*scans
	sink     *sink
	replicas []*harness.Callback
}

// deliveries makes the test's codes and sink, sets the sink as the account's spec.sink (binary
// mode) and starts two callback replicas, which find it in the push config they start with.
func (w *world) deliveries() *deliveries {
	w.t.Helper()
	d := &deliveries{scans: w.scans(10), sink: w.sink(sinkLatency)}
	if err := harness.SetGateway(w.ctx, cp.Client, w.ns, w.acct, harness.Gateway{SinkURI: d.sink.url()}); err != nil {
		w.t.Fatal(err)
	}
	d.replicas = []*harness.Callback{w.callback("callback-a"), w.callback("callback-b")}
	return d
}

// stream is WeChat pushing rate distinct scans a second, open loop, until End: each push to the
// next replica and tried again like WeChat (3 tries, 5 s apart, each to the next replica).
func (d *deliveries) stream(rate int) *harness.Stream {
	return d.w.stream(d.replicas, rate, d.good)
}

// stream is WeChat pushing rate events a second, the i-th more(i), open loop, until End: each
// push to the next of replicas and tried again like WeChat (3 tries, 5 s apart, each to the next
// replica).
func (w *world) stream(replicas []*harness.Callback, rate int, more func(i int) *harness.Push) *harness.Stream {
	targets := make([]string, len(replicas))
	for i, r := range replicas {
		targets[i] = r.URL
	}
	st := &harness.Stream{Per: rate / 10, Tick: 100 * time.Millisecond, More: more, Senders: []*harness.Sender{
		{Targets: targets, Workers: rate / 10, Tries: 3, Timeout: 5 * time.Second, RetryAfter: weChatRetry},
	}}
	st.Start(w.ctx)
	return st
}

// sendFor lets st go on until it has started n more events.
func (d *deliveries) sendFor(st *harness.Stream, n int) {
	d.w.t.Helper()
	until := st.Sent() + int64(n)
	eventually(d.w.t, time.Minute, "scans sent", func() bool { return st.Sent() >= until })
}

// receiving waits until the sink has received at least n events.
func (d *deliveries) receiving(n int) {
	d.w.t.Helper()
	eventually(d.w.t, foldLag, "the sink receiving scan events", func() bool {
		received, _ := d.sink.count()
		return received >= n
	})
}

// holder is the replica that holds the delivery's Lease, once one of among does, and the
// Lease's holderIdentity: the replica's identity and a suffix of its life (internal/election).
func (d *deliveries) holder(among []*harness.Callback) (*harness.Callback, string) {
	d.w.t.Helper()
	var holder *harness.Callback
	var identity string
	poll(d.w.t, 2*foldLag, apiPoll, "a replica holding the delivery Lease", func() bool {
		var l coordinationv1.Lease
		if err := cp.Client.Get(d.w.ctx, types.NamespacedName{Namespace: d.w.ns, Name: callback.DeliveryLease}, &l); err != nil || l.Spec.HolderIdentity == nil {
			return false
		}
		identity = *l.Spec.HolderIdentity
		for _, r := range among {
			if strings.HasPrefix(identity, r.Name+"_") {
				holder = r
				return true
			}
		}
		return false
	})
	return holder, identity
}

// catchUp bounds how long the sink may take, after the stream ended, to receive the events of n
// acknowledged scans: a killed deliverer's Lease running out (17 s), a sink's longest backoff
// (30 s), and the events at a third of what the default 32 workers send to a sink answering in
// 50 ms (640 a second), with room for a loaded machine.
func catchUp(n int) time.Duration {
	return 90*time.Second + time.Duration(n)*time.Second/200
}

// check waits, at most catchUp, until the sink has received the event of every scan WeChat got a
// 200 for (durable in the ledger: counted), then logs the scenario's result in one line and fails
// the test if any is lost. Duplicates are allowed (at least once; the CloudEvent id is the dedupe
// key) and reported. faultEnded is when the fault ended: the time to catch up runs from it, and
// includes WeChat's 5 s before a retry of what was refused meanwhile; the longest wait of one
// scan, from its 200 to its event at the sink, is the deliverer's alone.
func (d *deliveries) check(st *harness.Stream, outcomes [][]harness.Outcome, faultEnded time.Time) {
	t := d.w.t
	t.Helper()
	acked := map[int]time.Time{}
	for i, waves := range outcomes {
		for _, o := range waves {
			for _, at := range o.Attempts {
				end := at.Start.Add(at.Took)
				if first, ok := acked[i]; at.Status == http.StatusOK && (!ok || end.Before(first)) {
					acked[i] = end
				}
			}
		}
	}
	var missing []int
	var last time.Time
	var longest time.Duration
	reach := func() {
		missing, last, longest = missing[:0], time.Time{}, 0
		for i, ackedAt := range acked {
			at, ok := d.sink.arrived(i)
			if !ok {
				missing = append(missing, i)
				continue
			}
			if at.After(last) {
				last = at
			}
			longest = max(longest, at.Sub(ackedAt))
		}
	}
	for deadline := time.Now().Add(catchUp(len(acked))); ; time.Sleep(100 * time.Millisecond) {
		if reach(); len(missing) == 0 || time.Now().After(deadline) {
			break
		}
	}
	received, distinct := d.sink.count()
	t.Logf("%.0f scans/s offered for %s, %d scans, %d acknowledged; sink: %d delivered, %d lost, %d duplicates (%d events, %d ids); caught up %s after the fault ended, longest wait from a 200 to the sink %s",
		float64(len(outcomes))/st.Sending().Seconds(), st.Sending().Round(100*time.Millisecond), len(outcomes), len(acked),
		len(acked)-len(missing), len(missing), received-distinct, received, distinct,
		last.Sub(faultEnded).Round(100*time.Millisecond), longest.Round(100*time.Millisecond))
	if len(missing) > 0 {
		slices.Sort(missing)
		t.Errorf("%d of %d acknowledged scans never reached the sink, e.g. scans %v (logs in %s)", len(missing), len(acked), missing[:min(len(missing), 10)], logDir)
	}
}

// TestDeliveryDelivererKilled streams scans (1,000 a second for 30 s; 200 a second for 3 s in the
// short version) to two replicas with a binary sink answering in 50 ms, and kills the replica
// that holds the delivery Lease (read from the Lease's holderIdentity) with SIGKILL halfway,
// while it is delivering. Proves: the other replica takes the Lease over once it runs out,
// resumes from the offsets committed in the segments (its own and the killed replica's) and
// delivers every acknowledged scan, those the killed deliverer had in flight or had delivered
// without committing at worst twice.
func TestDeliveryDelivererKilled(t *testing.T) {
	w := newWorld(t, false)
	d := w.deliveries()
	rate, n := size(sinkRate, 1000), size(3*sinkRate, 30*1000)
	st := d.stream(rate)
	d.sendFor(st, n/2)
	d.receiving(1)
	holder, _ := d.holder(d.replicas)
	received, _ := d.sink.count()
	holder.Kill()
	killed := time.Now()
	d.sendFor(st, n-int(st.Sent()))
	outcomes := st.End()
	other := d.replicas[0]
	if other == holder {
		other = d.replicas[1]
	}
	d.holder([]*harness.Callback{other})
	t.Logf("%s killed holding the delivery Lease, %d events at the sink; %s took it over", holder.Name, received, other.Name)
	d.check(st, outcomes, killed)
}

// TestDeliverySinkDown takes the sink down (connection refused) for 60 s (5 s in the short
// version) under 200 scans a second, then up again. Proves: the deliverer backs off and tries
// again, holds the events meanwhile, and once the sink is back delivers every acknowledged scan.
func TestDeliverySinkDown(t *testing.T) {
	w := newWorld(t, false)
	d := w.deliveries()
	st := d.stream(sinkRate)
	d.receiving(sinkRate / 2)
	d.sink.down()
	time.Sleep(time.Duration(size(5, 60)) * time.Second) // the fault itself: how long the sink stays down
	d.sink.up()
	up := time.Now()
	d.sendFor(st, sinkRate)
	outcomes := st.End()
	var tries float64
	for _, r := range d.replicas {
		n, err := harness.Metric(r.Metrics, "wechat_qrcode_operator_callback_sink_retries_total")
		if err != nil {
			t.Fatal(err)
		}
		tries += n
	}
	if tries == 0 {
		t.Error("no try failed while the sink was down: the test proved nothing")
	}
	t.Logf("%v failed tries to deliver while the sink was down", tries)
	d.check(st, outcomes, up)
}

// TestDeliveryAPIServerPaused stops the kube-apiserver (SIGSTOP) for 10 s (3 s in the short
// version) while 200 scans a second arrive, then resumes it. The replicas answer 503 to what they
// cannot make durable meanwhile and WeChat tries again 5 s later; the deliverer can commit no
// offset and, past the Lease's renew deadline (10 s), loses the Lease. Proves: every scan
// acknowledged before, during or after the outage reaches the sink.
func TestDeliveryAPIServerPaused(t *testing.T) {
	w := newWorld(t, false)
	d := w.deliveries()
	st := d.stream(sinkRate)
	d.receiving(sinkRate)
	resume, err := cp.PauseAPIServer()
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Duration(size(3, 10)) * time.Second) // the fault itself: how long the API server stays stopped
	if err := resume(); err != nil {
		t.Fatal(err)
	}
	resumed := time.Now()
	d.sendFor(st, 2*sinkRate)
	d.check(st, st.End(), resumed)
}

// TestDeliveryRollingRestart restarts both replicas one after the other (SIGTERM, then started
// again once it exited; the next once the first is ready), as a rolling update does, under 200
// scans a second (once; three times in the long version). A replica stopping hands the delivery
// Lease back on its way out, after committing its offsets. Proves: every acknowledged scan
// reaches the sink.
func TestDeliveryRollingRestart(t *testing.T) {
	w := newWorld(t, false)
	d := w.deliveries()
	st := d.stream(sinkRate)
	d.receiving(sinkRate)
	for range size(1, 3) {
		for _, r := range d.replicas {
			_, was := d.holder(d.replicas)
			if err := r.Roll(w.ctx, 30*time.Second); err != nil {
				t.Fatal(err)
			}
			_, is := d.holder(d.replicas)
			t.Logf("%s restarted; the delivery Lease was %s's, is %s's", r.Name, was, is)
		}
	}
	rolled := time.Now()
	d.sendFor(st, sinkRate)
	d.check(st, st.End(), rolled)
}

// TestDeliveryAccountRecreated deletes the account, whose spec.sink is the sink, and creates it
// again (as a GitOps prune and re-sync, or kubectl replace --force, does) under 100 scans a
// second (once; three times in the long version), with a manager projecting the accounts into
// the push config. The callback's --account-grace (10 min) serves the departed account's
// pushes, and routes its scans to its last sink; the account created again has its spec.sink
// resolved again by the manager (its projection may show it unresolved at first). Proves: every
// acknowledged scan reaches the sink.
func TestDeliveryAccountRecreated(t *testing.T) {
	w := newWorld(t, true)
	d := w.deliveries()
	w.manager(harness.ManagerConfig{ManagerArgs: proc.ManagerArgs{ClusterResourceNamespace: w.ns}})
	d.projected(true)
	const rate = sinkRate / 2
	st := d.stream(rate)
	d.receiving(rate)
	key := types.NamespacedName{Namespace: w.ns, Name: harness.AccountName}
	for range size(1, 3) {
		var account qrv1alpha1.WeChatAccount
		if err := cp.Client.Get(w.ctx, key, &account); err != nil {
			t.Fatal(err)
		}
		if err := cp.Client.Delete(w.ctx, &account); err != nil {
			t.Fatal(err)
		}
		d.projected(false)
		d.sendFor(st, rate)
		again := &qrv1alpha1.WeChatAccount{}
		again.Namespace, again.Name, again.Spec = key.Namespace, key.Name, account.Spec
		if err := cp.Client.Create(w.ctx, again); err != nil {
			t.Fatal(err)
		}
		d.projected(true)
	}
	recreated := time.Now()
	d.sendFor(st, rate)
	d.check(st, st.End(), recreated)
}

// projected waits until the manager's push config holds the account with its sink resolved
// (present), or no longer holds it.
func (d *deliveries) projected(present bool) {
	d.w.t.Helper()
	poll(d.w.t, foldLag, apiPoll, "the push config to follow the account", func() bool {
		var sec corev1.Secret
		if err := cp.Client.Get(d.w.ctx, types.NamespacedName{Namespace: d.w.ns, Name: pushconfig.SecretName}, &sec); err != nil {
			return false
		}
		accounts, _ := pushconfig.Decode(sec.Data)
		for _, a := range accounts {
			if a.AppID == d.w.acct.AppID {
				// Sink is set by the manager's projection only, not by harness.SetGateway's.
				return present && a.Sink && a.SinkURI == d.sink.url()
			}
		}
		return !present
	})
}
