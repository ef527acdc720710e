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
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Sender sends pushes from many concurrent connections, as WeChat's push fleet does, and retries
// a push that got no 200 the way WeChat does (3 tries in all), each try to the next target: a
// load balancer in front of several replicas.
//
// It keeps its connections from one Send to the next, and Sends may run concurrently. Its
// fields are read at the first Send; Close closes the connections left open.
//
// It writes HTTP/1.1 itself rather than through net/http's Client, because the Client was the
// load generator's bottleneck on the callback benchmark (0.5-0.6 of the machine's 2 cores at
// ~8,000 pushes/s). BenchmarkSender, against a server in another process answering "success",
// this process's CPU per push on a shared 2-core VM (2026-11-30, load average 4-8): at 64
// workers net/http's Client 52.7-58.5 µs, this sender 26.6-30.0 µs; at 1,024 workers 82-90 µs
// and 30-42 µs. Most of what is left is the write and read system calls. The request goes out
// in one write: writev of its parts measured 42-45 µs at 64 workers. Answers are still parsed
// by net/http, chunked ones included.
type Sender struct {
	// Targets are the base URLs of the replicas, http:// only.
	Targets []string
	// Workers is the number of concurrent senders.
	Workers int
	// Tries per push; WeChat makes 3.
	Tries int
	// Timeout of one try; WeChat waits 5 s.
	Timeout time.Duration
	// RetryAfter is the pause before a retry. WeChat waits out its timeout; a benchmark need not.
	RetryAfter time.Duration
	// Replies keeps each push's answer in its Outcome, for a caller that checks the replies
	// relayed from an application rather than only the status.
	Replies bool

	answered atomic.Int64
	once     sync.Once
	targets  []*target
}

// Answered counts the pushes that have got their final answer so far.
func (s *Sender) Answered() int64 { return s.answered.Load() }

// Send sends pushes and returns their outcomes, in the same order. Once ctx ends no push is
// started (those have Tries 0), but the ones under way finish, retries included: a push cut
// short would leave unknown whether it was counted.
func (s *Sender) Send(ctx context.Context, pushes []*Push) []Outcome {
	s.once.Do(s.open)
	out := make([]Outcome, len(pushes))
	_ = Parallel(len(pushes), s.Workers, func(i int) error {
		if ctx.Err() == nil {
			out[i] = s.send(i, pushes[i])
			s.answered.Add(1)
		}
		return nil
	})
	return out
}

// Close closes the idle connections. A Sender closed can send again, and opens new ones.
func (s *Sender) Close() {
	s.once.Do(s.open)
	closeIdle(s.targets)
}

func (s *Sender) open() {
	s.targets = make([]*target, len(s.Targets))
	for i, base := range s.Targets {
		s.targets[i] = newTarget(base)
	}
	// Callers that make a Sender per Send and never close it must not pile up connections.
	runtime.AddCleanup(s, closeIdle, s.targets)
}

func (s *Sender) send(i int, p *Push) Outcome {
	start := time.Now()
	var o Outcome
	head := requestHead(p)
	for o.Tries < s.Tries {
		if o.Tries > 0 && s.RetryAfter > 0 {
			time.Sleep(s.RetryAfter)
		}
		t := s.targets[(i+o.Tries)%len(s.targets)]
		o.Tries++
		at := time.Now()
		o.Status, o.Body = s.try(t, head, p.Body, at.Add(s.Timeout))
		o.Attempts = append(o.Attempts, Attempt{Start: at, Took: time.Since(at), Status: o.Status})
		if o.Status == http.StatusOK {
			break
		}
	}
	o.Latency = time.Since(start)
	return o
}

// requestHead is what follows a target's "POST <base path>" in every try of p, serialised once
// for all of them: the rest of the request line and the headers but Host.
func requestHead(p *Push) []byte {
	path, query := (&url.URL{Path: p.Path}).EscapedPath(), p.Query.Encode()
	b := make([]byte, 0, len(path)+len(query)+64)
	b = append(b, path...)
	if query != "" {
		b = append(b, '?')
		b = append(b, query...)
	}
	b = append(b, " HTTP/1.1\r\nContent-Type: text/xml\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(p.Body)), 10)
	return append(b, "\r\n"...)
}

// try sends one try and returns the answer's status, 0 if it got none by deadline, and, when the
// Sender keeps replies, the answer.
func (s *Sender) try(t *target, head, body []byte, deadline time.Time) (int, []byte) {
	c := t.idleConn()
	reused := c != nil
	for {
		if c == nil {
			var err error
			if c, err = t.dial(deadline); err != nil {
				return 0, nil
			}
		}
		status, answer, err := s.roundTrip(c, t, head, body, deadline)
		switch {
		case err == nil:
			return status, answer
		case reused && err == errNoAnswer:
			// The server closed the kept connection while it was idle (its idle timeout, a
			// restart), which shows only now: net/http's Transport notices it between requests and
			// dials anew, and so does this. Should the server have read the push and died before
			// answering, this is a retry to the same target, as a load balancer may send it.
			c, reused = nil, false
		default:
			return 0, nil
		}
	}
}

// errNoAnswer: the connection ended before the first byte of an answer.
var errNoAnswer = errors.New("no answer")

// roundTrip writes one request on c and reads its answer. Whatever the outcome, c is either put
// back idle in t or closed.
func (s *Sender) roundTrip(c *conn, t *target, head, body []byte, deadline time.Time) (status int, answer []byte, err error) {
	if err := c.SetDeadline(deadline); err != nil {
		_ = c.Close()
		return 0, nil, err
	}
	c.w = append(append(append(append(c.w[:0], t.post...), head...), t.host...), body...)
	_, writeErr := c.Write(c.w)
	// A server may answer before it has read the whole request (413 for a body too large) and
	// hang up: its answer counts, as with net/http.
	if _, err := c.r.Peek(1); err != nil {
		_ = c.Close()
		if isTimeout(err) {
			return 0, nil, err
		}
		return 0, nil, errNoAnswer
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		_ = c.Close()
		return 0, nil, err
	}
	if s.Replies {
		answer, err = io.ReadAll(resp.Body)
	} else {
		_, err = io.Copy(io.Discard, resp.Body)
	}
	if err != nil || writeErr != nil || resp.Close {
		_ = c.Close()
	} else {
		t.putIdle(c)
	}
	return resp.StatusCode, answer, err
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// target is one replica: the parts of a request to it that are the same for every push, and its
// idle connections.
type target struct {
	addr string
	// post starts the request line: the method and the base URL's path.
	post []byte
	// host is the last header and the blank line that ends the head.
	host []byte

	mu   sync.Mutex
	idle []*conn
}

// conn is a connection and the reader that parses its answers.
type conn struct {
	net.Conn
	r *bufio.Reader
	w []byte
}

func newTarget(base string) *target {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		panic(fmt.Sprintf("harness.Sender: target %q is not an http:// base URL", base))
	}
	addr := u.Host
	if u.Port() == "" {
		addr = net.JoinHostPort(u.Hostname(), "80")
	}
	return &target{
		addr: addr,
		post: []byte("POST " + strings.TrimSuffix(u.EscapedPath(), "/")),
		host: []byte("Host: " + u.Host + "\r\n\r\n"),
	}
}

func (t *target) dial(deadline time.Time) (*conn, error) {
	c, err := (&net.Dialer{Deadline: deadline}).Dial("tcp", t.addr)
	if err != nil {
		return nil, err
	}
	return &conn{Conn: c, r: bufio.NewReader(c)}, nil
}

// idleConn takes an idle connection, the one last put back (the likeliest still open); nil if
// there is none.
func (t *target) idleConn() *conn {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(t.idle)
	if n == 0 {
		return nil
	}
	c := t.idle[n-1]
	t.idle = t.idle[:n-1]
	return c
}

func (t *target) putIdle(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.idle = append(t.idle, c)
}

func closeIdle(targets []*target) {
	for _, t := range targets {
		t.mu.Lock()
		for _, c := range t.idle {
			_ = c.Close()
		}
		t.idle = nil
		t.mu.Unlock()
	}
}
