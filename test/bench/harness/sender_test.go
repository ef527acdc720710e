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

package harness

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
)

// answerOnEnv makes the test binary the benchmark's server, listening on its value.
const answerOnEnv = "HARNESS_TEST_ANSWER_ON"

func TestMain(m *testing.M) {
	if addr := os.Getenv(answerOnEnv); addr != "" {
		// In a process of its own, so that its CPU is not counted as the sender's.
		fmt.Fprintln(os.Stderr, http.ListenAndServe(addr, http.HandlerFunc(answerSuccess)))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

// answerSuccess answers as the callback server does a scan of a code without a reply.
func answerSuccess(w http.ResponseWriter, r *http.Request) {
	_, _ = io.Copy(io.Discard, r.Body)
	_, _ = w.Write([]byte("success"))
}

func testPushes(t testing.TB, n int) []*Push {
	t.Helper()
	p, err := NewPusher(credentials.Account{AppID: "wx0123456789abcdef", Token: "token", EncodingAESKey: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"})
	if err != nil {
		t.Fatal(err)
	}
	pushes := make([]*Push, n)
	for i := range pushes {
		ev := Event{OpenID: fmt.Sprintf("o-sender-%d", i), CreateTime: time.Now().Unix(), Scene: "7", Ticket: "ticket"}
		if pushes[i], err = p.Push(ev.XML(), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	return pushes
}

// received is what a server got: each request's method, path, query, headers and body.
type received struct {
	mu   sync.Mutex
	reqs []*http.Request
	body [][]byte
}

func (rc *received) record(r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.reqs, rc.body = append(rc.reqs, r), append(rc.body, b)
}

func (rc *received) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.reqs)
}

// answering is a net/http server that records every request and answers status.
func answering(t *testing.T, status int) (*httptest.Server, *received) {
	rc := &received{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc.record(r)
		w.WriteHeader(status)
		_, _ = w.Write([]byte("success"))
	}))
	t.Cleanup(srv.Close)
	return srv, rc
}

func sendOne(t *testing.T, s *Sender, p *Push) Outcome {
	t.Helper()
	t.Cleanup(s.Close)
	return s.Send(context.Background(), []*Push{p})[0]
}

func statuses(o Outcome) []int {
	out := make([]int, len(o.Attempts))
	for i, a := range o.Attempts {
		out[i] = a.Status
	}
	return out
}

func TestSenderPostsWhatNetHTTPReads(t *testing.T) {
	srv, rc := answering(t, http.StatusOK)
	p := testPushes(t, 1)[0]
	o := sendOne(t, &Sender{Targets: []string{srv.URL + "/"}, Workers: 1, Tries: 3, Timeout: 5 * time.Second}, p)
	if o.Status != http.StatusOK || o.Tries != 1 || o.Body != nil {
		t.Fatalf("status %d after %d tries, body %q; want 200 after 1, no body kept", o.Status, o.Tries, o.Body)
	}
	r := rc.reqs[0]
	if r.Method != http.MethodPost || r.URL.Path != p.Path || r.Host != srv.Listener.Addr().String() || r.Header.Get("Content-Type") != "text/xml" {
		t.Errorf("got %s %s, Host %s, Content-Type %q; want POST %s to %s, text/xml", r.Method, r.URL.Path, r.Host, r.Header.Get("Content-Type"), p.Path, srv.Listener.Addr())
	}
	if !maps.EqualFunc(r.URL.Query(), p.Query, func(a, b []string) bool { return fmt.Sprint(a) == fmt.Sprint(b) }) {
		t.Errorf("query %v, want %v", r.URL.Query(), p.Query)
	}
	if !bytes.Equal(rc.body[0], p.Body) {
		t.Errorf("body %q, want %q", rc.body[0], p.Body)
	}
}

func TestSenderTriesEveryTimeWithoutA200(t *testing.T) {
	srv, rc := answering(t, http.StatusForbidden)
	o := sendOne(t, &Sender{Targets: []string{srv.URL}, Workers: 1, Tries: 3, Timeout: 5 * time.Second}, testPushes(t, 1)[0])
	if got := statuses(o); fmt.Sprint(got) != "[403 403 403]" || o.Status != http.StatusForbidden || rc.count() != 3 {
		t.Fatalf("tries answered %v, last %d, server got %d; want 3 tries answered 403", got, o.Status, rc.count())
	}
}

func TestSenderRetriesOnTheNextTarget(t *testing.T) {
	hangUp := func(t *testing.T) (*httptest.Server, *received) {
		rc := &received{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rc.record(r)
			c, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				_ = c.Close()
			}
		}))
		t.Cleanup(srv.Close)
		return srv, rc
	}
	for name, first := range map[string]func(*testing.T) (*httptest.Server, *received){
		"503":               func(t *testing.T) (*httptest.Server, *received) { return answering(t, http.StatusServiceUnavailable) },
		"closed connection": hangUp,
	} {
		t.Run(name, func(t *testing.T) {
			a, ra := first(t)
			b, rb := answering(t, http.StatusOK)
			p := testPushes(t, 1)[0]
			o := sendOne(t, &Sender{Targets: []string{a.URL, b.URL}, Workers: 1, Tries: 3, Timeout: 5 * time.Second}, p)
			want := map[string]string{"503": "[503 200]", "closed connection": "[0 200]"}[name]
			if got := fmt.Sprint(statuses(o)); got != want || o.Status != http.StatusOK {
				t.Fatalf("tries answered %s, last %d; want %s", got, o.Status, want)
			}
			if ra.count() != 1 || rb.count() != 1 || !bytes.Equal(rb.body[0], p.Body) {
				t.Fatalf("first target got %d pushes, second %d; want one each, the same", ra.count(), rb.count())
			}
		})
	}
}

func TestSenderTimeoutIsNoAnswer(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-release }))
	t.Cleanup(slow.Close)
	t.Cleanup(func() { close(release) })
	fast, _ := answering(t, http.StatusOK)
	const timeout = 100 * time.Millisecond
	o := sendOne(t, &Sender{Targets: []string{slow.URL, fast.URL}, Workers: 1, Tries: 3, Timeout: timeout}, testPushes(t, 1)[0])
	if got := fmt.Sprint(statuses(o)); got != "[0 200]" || o.Attempts[0].Took < timeout {
		t.Fatalf("tries answered %s, the first after %s; want [0 200], the first given up after %s", got, o.Attempts[0].Took, timeout)
	}
}

// rawServer is an HTTP/1.1 server written by hand, to answer in ways net/http's server chooses
// for itself: it reads each request and writes answer; hangUp closes the connection after each
// answer without saying so, as a server does at its idle timeout. It counts the connections it
// accepted and reports on ended each one that ended.
type rawServer struct {
	URL      string
	accepted atomic.Int64
	requests atomic.Int64
	ended    chan struct{}
}

func newRawServer(t *testing.T, answer string, hangUp bool) *rawServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	s := &rawServer{URL: "http://" + ln.Addr().String(), ended: make(chan struct{}, 1024)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go s.serve(c, answer, hangUp)
		}
	}()
	return s
}

func (s *rawServer) serve(c net.Conn, answer string, hangUp bool) {
	defer func() { s.ended <- struct{}{} }()
	defer func() { _ = c.Close() }()
	r := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(r)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err != nil {
			return
		}
		s.requests.Add(1)
		if _, err := io.WriteString(c, answer); err != nil || hangUp {
			return
		}
	}
}

// awaitEnded waits for n connections to end.
func (s *rawServer) awaitEnded(t *testing.T, n int) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for i := range n {
		select {
		case <-s.ended:
		case <-deadline:
			t.Fatalf("%d of %d connections ended", i, n)
		}
	}
}

func TestSenderReadsChunkedRepliesWhole(t *testing.T) {
	const reply = "<xml><Encrypt><![CDATA[abc]]></Encrypt></xml>"
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+
		fmt.Sprintf("%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n", 20, reply[:20], len(reply)-20, reply[20:]), false)
	s := &Sender{Targets: []string{srv.URL}, Workers: 1, Tries: 1, Timeout: 5 * time.Second, Replies: true}
	t.Cleanup(s.Close)
	for i, o := range s.Send(context.Background(), testPushes(t, 3)) {
		if o.Status != http.StatusOK || string(o.Body) != reply {
			t.Errorf("push %d: status %d, reply %q; want 200, %q", i, o.Status, o.Body, reply)
		}
	}
	// The chunked body was read to its end: the next answers on the same connection parsed.
	if n := srv.accepted.Load(); n != 1 {
		t.Errorf("%d connections for 3 pushes one after the other, want 1", n)
	}
}

func TestSenderKeepsConnectionsAcrossSends(t *testing.T) {
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsuccess", false)
	const workers = 4
	s := &Sender{Targets: []string{srv.URL}, Workers: workers, Tries: 1, Timeout: 5 * time.Second}
	pushes := testPushes(t, 100)
	var wg sync.WaitGroup
	for range 2 { // concurrently, then once more
		wg.Go(func() {
			for _, o := range s.Send(context.Background(), pushes) {
				if o.Status != http.StatusOK {
					t.Errorf("status %d, want 200", o.Status)
				}
			}
		})
	}
	wg.Wait()
	s.Send(context.Background(), pushes)
	accepted := srv.accepted.Load()
	if accepted > 2*workers || srv.requests.Load() != 300 {
		t.Fatalf("%d connections for %d requests by %d workers in 2 concurrent Sends and one more; want at most %d", accepted, srv.requests.Load(), workers, 2*workers)
	}
	s.Close()
	srv.awaitEnded(t, int(accepted))
}

func TestSenderDialsAgainWhenTheServerHungUp(t *testing.T) {
	srv := newRawServer(t, "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nsuccess", true)
	s := &Sender{Targets: []string{srv.URL}, Workers: 1, Tries: 1, Timeout: 5 * time.Second}
	t.Cleanup(s.Close)
	for i, o := range s.Send(context.Background(), testPushes(t, 5)) {
		if o.Status != http.StatusOK {
			t.Errorf("push %d: status %d, want 200 on a connection dialled anew", i, o.Status)
		}
	}
	if a, r := srv.accepted.Load(), srv.requests.Load(); a != 5 || r != 5 {
		t.Errorf("%d connections, %d requests; want 5 of each", a, r)
	}
}

// BenchmarkSender is the CPU of this process per push sent (cpu-µs/push) by the Sender and by
// net/http's Client as the Sender used it before, against a server in another process answering
// like the callback server. Run it alone: go test ./test/bench/harness -run '^$' -bench Sender
// -benchtime 20000x.
func BenchmarkSender(b *testing.B) {
	addr, err := FreeAddr()
	if err != nil {
		b.Fatal(err)
	}
	srv, err := StartProcess("answerer", os.Args[0], nil, []string{answerOnEnv + "=" + addr}, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(srv.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.WaitReady(ctx, "http://"+addr+"/"); err != nil {
		b.Fatal(err)
	}
	distinct := testPushes(b, 256)
	base := "http://" + addr
	// 64 workers, and 1,024 as in the callback benchmark.
	for _, workers := range []int{64, 1024} {
		for _, sender := range []struct {
			name string
			send func(pushes []*Push) int
		}{
			{"net-http", func(pushes []*Push) int { return netHTTPSend(base, workers, pushes) }},
			{"lean", func(pushes []*Push) int {
				s := &Sender{Targets: []string{base}, Workers: workers, Tries: 1, Timeout: 5 * time.Second}
				defer s.Close()
				return Summarize(s.Send(context.Background(), pushes)).Acked
			}},
		} {
			b.Run(fmt.Sprintf("%s/workers=%d", sender.name, workers), func(b *testing.B) {
				pushes := make([]*Push, b.N)
				for i := range pushes {
					pushes[i] = distinct[i%len(distinct)]
				}
				before := cpuTime(b)
				b.ResetTimer()
				acked := sender.send(pushes)
				b.StopTimer()
				if acked != b.N {
					b.Fatalf("%d of %d pushes answered 200", acked, b.N)
				}
				b.ReportMetric(float64((cpuTime(b)-before).Microseconds())/float64(b.N), "cpu-µs/push")
			})
		}
	}
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// netHTTPSend is how the Sender sent pushes before it wrote HTTP itself: the baseline of
// BenchmarkSender. It returns how many were answered 200.
func netHTTPSend(base string, workers int, pushes []*Push) int {
	hc := &http.Client{
		Timeout:   5 * time.Second,
		Transport: &http.Transport{MaxIdleConns: workers, MaxIdleConnsPerHost: workers, DisableCompression: true},
	}
	defer hc.CloseIdleConnections()
	var acked atomic.Int64
	_ = Parallel(len(pushes), workers, func(i int) error {
		p := pushes[i]
		req, err := http.NewRequest(http.MethodPost, base+p.Path+"?"+p.Query.Encode(), bytes.NewReader(p.Body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "text/xml")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode == http.StatusOK {
			acked.Add(1)
		}
		return nil
	})
	return int(acked.Load())
}
