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

package devstack

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strings"
	"time"

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
// answered to each to out, and fails if any push was not acknowledged.
func Scan(ctx context.Context, st *State, r ScanRequest, out io.Writer) error {
	if st.ScanURL == "" {
		return errors.New("the stack runs against WeChat's real API: scans come from WeChat itself, to the callback URL configured in the account")
	}
	body, err := json.Marshal(r)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.ScanURL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the dev stack does not answer (is `make dev` still running?): %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	if _, err := io.Copy(out, resp.Body); err != nil {
		return err
	}
	// The status is sent before the pushes, so a failed push shows in the trailer.
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if failed := resp.Trailer.Get(trailerFailed); failed != "" && failed != "0" {
		return fmt.Errorf("%s of %d pushes not acknowledged", failed, r.Count)
	}
	return nil
}

const trailerFailed = "Scan-Failed"

// serveScans serves ScanRequests on a free loopback port for as long as the stack runs.
func (s *Stack) serveScans(a Account) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		s.handleScan(w, req, a)
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	s.scans = srv
	s.ScanURL = "http://" + l.Addr().String() + "/scan"
	return nil
}

func (s *Stack) handleScan(w http.ResponseWriter, req *http.Request, a Account) {
	var r ScanRequest
	if err := json.NewDecoder(req.Body).Decode(&r); err != nil || r.Name == "" || r.Count < 1 {
		http.Error(w, "want a JSON ScanRequest with a name and a count of at least 1", http.StatusBadRequest)
		return
	}
	if r.Namespace == "" {
		r.Namespace = SamplesNamespace
	}
	var code qrv1alpha1.WeChatQRCode
	if err := s.admin.Get(req.Context(), types.NamespacedName{Namespace: r.Namespace, Name: r.Name}, &code); err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if code.Status.Ticket == "" {
		http.Error(w, fmt.Sprintf("%s/%s has no ticket yet (Ready: %s)", r.Namespace, r.Name, readyReason(&code)), http.StatusConflict)
		return
	}
	p := &wechattest.Pusher{
		URL:   s.CallbackURL + "/wechat/" + a.AppID,
		Token: a.Token, EncodingAESKey: a.EncodingAESKey, AppID: a.AppID, AccountID: devAccountID,
		Mode:   wechattest.PushSafe,
		Server: s.fake,
	}
	if r.Plaintext {
		p.Mode = wechattest.PushPlaintext
	}
	w.Header().Set("Trailer", trailerFailed)
	failed := 0
	for i := range r.Count {
		// Every other scan is by a follower, so that both subscribes and SCAN events are seen.
		follower := i%2 == 1
		openID := fmt.Sprintf("o-dev-%08x", rand.Uint32())
		res, err := p.Scan(req.Context(), code.Status.Ticket, openID, follower)
		line := describePush(i+1, r.Count, openID, follower, res, err)
		if err != nil {
			failed++
		}
		_, _ = fmt.Fprintln(w, line)
		s.log.Printf("%s/%s %s", r.Namespace, r.Name, line)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	w.Header().Set(trailerFailed, fmt.Sprint(failed))
}

func describePush(i, n int, openID string, follower bool, res wechattest.PushResult, err error) string {
	event := "subscribe (a new follower)"
	if follower {
		event = "SCAN (a follower)"
	}
	line := fmt.Sprintf("scan %d/%d: %s by %s: ", i, n, event, openID)
	switch {
	case err != nil && res.Body != "":
		return line + fmt.Sprintf("%v (answered %q)", err, strings.TrimSpace(res.Body))
	case err != nil:
		return line + err.Error()
	case res.Acknowledged():
		return line + "acknowledged, no reply"
	}
	var reply struct {
		Content string `xml:"Content"`
	}
	_ = xml.Unmarshal([]byte(res.Reply), &reply)
	how := "plaintext"
	if res.Encrypted {
		how = "encrypted"
	}
	return line + fmt.Sprintf("replied (%s) %q", how, reply.Content)
}
