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

package stack

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wechattest"
)

// ScanRequest asks the running stack's fake WeChat to push scans of a code.
type ScanRequest struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	Count     int    `json:"count"`
	// Plaintext pushes as an account in plaintext mode; the default is safe mode (encrypted).
	// The callback server accepts plaintext pushes only for an account whose Secret has no
	// encodingAESKey, so with the sample account a plaintext push is refused: a way to see a
	// refusal.
	Plaintext bool `json:"plaintext"`
}

// devAccountID is the dev account's original ID (gh_...), the ToUserName of its pushes.
const devAccountID = "gh_wechatqrcodedev"

// Scan asks the stack whose state is st to push r's scans, writes what the callback server
// answered to each and what the demo sink received to out, and fails if any push was not
// acknowledged.
func Scan(ctx context.Context, st *State, r ScanRequest, out io.Writer) error {
	return ask(ctx, st, st.ScanURL, r, out)
}

// MessageRequest asks the running stack's fake WeChat to push a text message from a follower.
type MessageRequest struct {
	Text string `json:"text"`
}

// Message asks the stack whose state is st to push a text message, and writes the reply the
// callback server relayed from the demo application to out.
func Message(ctx context.Context, st *State, r MessageRequest, out io.Writer) error {
	return ask(ctx, st, st.MessageURL, r, out)
}

// ask posts r to the stack's url and copies the answer to out.
func ask(ctx context.Context, st *State, url string, r any, out io.Writer) error {
	if url == "" {
		return errors.New("the stack runs against WeChat's real API: pushes come from WeChat itself, to the callback URL configured in the account")
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the dev stack does not answer (is `make dev` still running?): %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		// A refusal is one sentence saying why.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return errors.New(strings.TrimSpace(string(b)))
	}
	if _, err := io.Copy(out, resp.Body); err != nil {
		return err
	}
	// The status is sent before the pushes, so a failed push shows in the trailer.
	if failed := resp.Trailer.Get(trailerFailed); failed != "" && failed != "0" {
		return fmt.Errorf("%s push(es) not acknowledged", failed)
	}
	return nil
}

const trailerFailed = "Push-Failed"

// sinkWait is how long a scan waits for the demo sink to print its event: deliveries are
// asynchronous, a few milliseconds after the count on an idle machine.
const sinkWait = 5 * time.Second

// serveScans serves ScanRequests and MessageRequests on a free loopback port for as long as the
// stack runs.
func (s *Stack) serveScans(a Account) error {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /scan", func(w http.ResponseWriter, req *http.Request) { s.handleScan(w, req, a) })
	mux.HandleFunc("POST /message", func(w http.ResponseWriter, req *http.Request) { s.handleMessage(w, req, a) })
	mux.HandleFunc("POST /outage", func(w http.ResponseWriter, req *http.Request) { s.handleOutage(w, req, a) })
	base, err := s.serve(0, mux)
	if err != nil {
		return err
	}
	s.ScanURL, s.MessageURL, s.OutageURL = base+"/scan", base+"/message", base+"/outage"
	return nil
}

// pusher pushes as WeChat does for the account, in safe mode unless plaintext.
func (s *Stack) pusher(a Account, plaintext bool) *wechattest.Pusher {
	p := &wechattest.Pusher{
		URL:   s.CallbackURL + "/wechat/" + a.AppID,
		Token: a.Token, EncodingAESKey: a.EncodingAESKey, AppID: a.AppID, AccountID: devAccountID,
		Mode:   wechattest.PushSafe,
		Server: s.fake,
	}
	if plaintext {
		p.Mode = wechattest.PushPlaintext
	}
	return p
}

func (s *Stack) handleScan(w http.ResponseWriter, req *http.Request, a Account) {
	r, code, pushAs, ok := s.scanRequest(w, req, a)
	if !ok {
		return
	}
	w.Header().Set("Trailer", trailerFailed)
	// Only the stack's own account sends its scans to the demo sink.
	toSink := pushAs.AppID == a.AppID
	failed := s.pushScans(w, req, r, code, pushAs, func(openID string, follower bool) {
		if toSink {
			line, _ := s.sinkSaw(req.Context(), openID, sinkWait)
			s.tell(w, "  "+line)
		}
		if tagged(&code, follower) {
			s.tell(w, "  "+s.tagsSaw(req.Context(), &code, pushAs.AppID, openID))
		}
	})
	w.Header().Set(trailerFailed, fmt.Sprint(failed))
}

// scanRequest reads the ScanRequest of req and finds its code and the account that pushes for
// it, or answers why not.
func (s *Stack) scanRequest(w http.ResponseWriter, req *http.Request, a Account) (r ScanRequest, code qrv1alpha1.WeChatQRCode, pushAs Account, ok bool) {
	if err := json.NewDecoder(req.Body).Decode(&r); err != nil || r.Name == "" || r.Count < 1 {
		http.Error(w, "want a JSON ScanRequest with a name and a count of at least 1", http.StatusBadRequest)
		return r, code, pushAs, false
	}
	if r.Namespace == "" {
		r.Namespace = SamplesNamespace
	}
	if err := s.admin.Get(req.Context(), types.NamespacedName{Namespace: r.Namespace, Name: r.Name}, &code); apierrors.IsNotFound(err) {
		http.Error(w, s.noSuchCode(req.Context(), r), http.StatusNotFound)
		return r, code, pushAs, false
	} else if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return r, code, pushAs, false
	}
	if code.Status.Ticket == "" {
		http.Error(w, fmt.Sprintf("%s/%s has no ticket yet (Ready: %s)", r.Namespace, r.Name, readyReason(&code)), http.StatusConflict)
		return r, code, pushAs, false
	}
	// A code of another sample account (config/samples/namespaced) is pushed as WeChat would:
	// to that account's callback path, signed and encrypted with its token and key.
	pushAs = a
	if f := code.Status.IssuedFor; f != nil && f.AppID != a.AppID {
		other, known := s.others[f.AppID]
		if !known {
			http.Error(w, fmt.Sprintf("%s/%s was issued for AppID %s, an account the stack's fake WeChat does not know", r.Namespace, r.Name, f.AppID), http.StatusConflict)
			return r, code, pushAs, false
		}
		pushAs = other
	}
	return r, code, pushAs, true
}

// pushScans pushes r's scans of code as WeChat would for pushAs, tells what each push was
// answered, calls acked with the scanner of each acknowledged one and whether they followed
// before, and returns how many were not.
func (s *Stack) pushScans(w http.ResponseWriter, req *http.Request, r ScanRequest, code qrv1alpha1.WeChatQRCode, pushAs Account, acked func(openID string, follower bool)) (failed int) {
	p := s.pusher(pushAs, r.Plaintext)
	for i := range r.Count {
		// Every other scan is by a follower, so that both subscribes and SCAN events are seen.
		follower := i%2 == 1
		openID := fmt.Sprintf("o-dev-%08x", rand.Uint32())
		res, err := p.Scan(req.Context(), code.Status.Ticket, openID, follower)
		s.tell(w, r.Namespace+"/"+r.Name+" "+describePush(fmt.Sprintf("scan %d/%d: %s by %s", i+1, r.Count, scanEvent(follower), openID), res, err))
		if err != nil {
			failed++
			continue
		}
		acked(openID, follower)
	}
	return failed
}

// noSuchCode says that r names no code, and which codes there are: most often the code is in
// another namespace than the one scanned.
func (s *Stack) noSuchCode(ctx context.Context, r ScanRequest) string {
	msg := fmt.Sprintf("no WeChatQRCode %s/%s", r.Namespace, r.Name)
	var list qrv1alpha1.WeChatQRCodeList
	if err := s.admin.List(ctx, &list); err != nil || len(list.Items) == 0 {
		return msg + "; the stack has no codes"
	}
	names := make([]string, len(list.Items))
	for i, c := range list.Items {
		names[i] = c.Namespace + "/" + c.Name
	}
	slices.Sort(names)
	return fmt.Sprintf("%s; the codes are %s (name one with NAME=, its namespace with NAMESPACE=)", msg, strings.Join(names, ", "))
}

// sinkSaw is the demo sink's line about the scan by openID, or why there is none within wait,
// and whether there is one.
func (s *Stack) sinkSaw(ctx context.Context, openID string, wait time.Duration) (string, bool) {
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	if line, ok := s.sinkLines.waitFor(ctx, "openID="+openID); ok {
		return "sink got: " + line, true
	}
	return fmt.Sprintf("sink got nothing within %s (a refused or duplicate scan is not sent; see the callback's log)", wait), false
}

// tagged: the scan should tag the scanner with the code's tags.
func tagged(code *qrv1alpha1.WeChatQRCode, follower bool) bool {
	return len(code.Spec.Tags) > 0 && (!follower || code.Spec.TagOnOrDefault() == qrv1alpha1.TagOnAllScanners)
}

// tagWait is how long a scan waits for its scanner to carry the code's tags at the fake WeChat:
// the manager tags in batches, within seconds.
const tagWait = 10 * time.Second

// tagsSaw is the line about the tags the fake WeChat shows on openID: every tag of the code, or
// what it carries once tagWait has passed.
func (s *Stack) tagsSaw(ctx context.Context, code *qrv1alpha1.WeChatQRCode, appID, openID string) string {
	ctx, cancel := context.WithTimeout(ctx, tagWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		carried := s.fake.FollowerTags(appID, openID)
		names := make([]string, len(carried))
		for i, t := range carried {
			names[i] = fmt.Sprintf("%s (%d)", t.Name, t.ID)
		}
		all := true
		for _, want := range code.Spec.Tags {
			all = all && slices.ContainsFunc(carried, func(t wechattest.Tag) bool { return t.Name == string(want) })
		}
		if all {
			return "tagged at WeChat: " + strings.Join(names, ", ")
		}
		select {
		case <-ctx.Done():
			if len(names) == 0 {
				names = []string{"none"}
			}
			return fmt.Sprintf("not tagged with all of the code's tags within %s (tags at WeChat: %s; see the code's Tagging condition)", tagWait, strings.Join(names, ", "))
		case <-tick.C:
		}
	}
}

func (s *Stack) handleMessage(w http.ResponseWriter, req *http.Request, a Account) {
	var r MessageRequest
	if err := json.NewDecoder(req.Body).Decode(&r); err != nil || r.Text == "" {
		http.Error(w, "want a JSON MessageRequest with a text", http.StatusBadRequest)
		return
	}
	openID := fmt.Sprintf("o-dev-%08x", rand.Uint32())
	w.Header().Set("Trailer", trailerFailed)
	res, err := s.pusher(a, false).Text(req.Context(), openID, r.Text)
	s.tell(w, describePush(fmt.Sprintf("text %q by %s", r.Text, openID), res, err))
	failed := 0
	if err != nil {
		failed = 1
	}
	w.Header().Set(trailerFailed, fmt.Sprint(failed))
}

// tell writes line to the client at once, and to the dev log.
func (s *Stack) tell(w http.ResponseWriter, line string) {
	_, _ = fmt.Fprintln(w, line)
	s.log.Printf("%s", line)
	if f, ok := w.(http.Flusher); ok {
		f.Flush()
	}
}

func scanEvent(follower bool) string {
	if follower {
		return "SCAN (a follower)"
	}
	return "subscribe (a new follower)"
}

// describePush is what became of the push what describes.
func describePush(what string, res wechattest.PushResult, err error) string {
	line := what + ": "
	switch {
	case err != nil && res.Body != "":
		return line + fmt.Sprintf("%v (answered %q)", err, strings.TrimSpace(res.Body))
	case err != nil:
		return line + err.Error()
	case res.Acknowledged():
		return line + "acknowledged, no reply"
	}
	how := "plaintext"
	if res.Encrypted {
		how = "encrypted"
	}
	return line + fmt.Sprintf("replied (%s) %s", how, res.Message)
}
