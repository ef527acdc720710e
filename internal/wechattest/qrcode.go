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

package wechattest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"image/jpeg"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"
	"unicode/utf8"

	qrcode "github.com/skip2/go-qrcode"
)

// Code is an issued QR code as the fake remembers it.
type Code struct {
	AppID         string
	Ticket, URL   string
	Action        string // action_name
	SceneID       int64  // integer actions
	SceneStr      string // string actions
	ExpireSeconds int64  // as answered; 0 for permanent codes
	IssuedAt      time.Time
	ExpiresAt     time.Time // zero for permanent codes
}

// Permanent reports whether the code never expires.
func (c Code) Permanent() bool { return c.ExpiresAt.IsZero() }

// Scene is the scene as a push's EventKey carries it: the decimal id or the string.
func (c Code) Scene() string {
	if c.Action == "QR_STR_SCENE" || c.Action == "QR_LIMIT_STR_SCENE" {
		return c.SceneStr
	}
	return strconv.FormatInt(c.SceneID, 10)
}

// Code looks up an issued code by ticket, expired ones included.
func (s *Server) Code(ticket string) (Code, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[ticket]
	if !ok {
		return Code{}, false
	}
	return *c, true
}

// Codes lists every code issued for appID, in no particular order.
func (s *Server) Codes(appID string) []Code {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Code
	for _, c := range s.codes {
		if c.AppID == appID {
			out = append(out, *c)
		}
	}
	return out
}

type actionKind struct {
	temporary, str bool
}

var actions = map[string]actionKind{
	"QR_SCENE":           {temporary: true},
	"QR_STR_SCENE":       {temporary: true, str: true},
	"QR_LIMIT_SCENE":     {},
	"QR_LIMIT_STR_SCENE": {str: true},
}

// parseCreate validates a qrcode/create body as WeChat does and returns the code to issue
// (without ticket and URL) or the errcode: 47001 for a body that is not a JSON object, 40052
// for a missing or unknown action_name, 40053 for a missing or ill-formed action_info.scene
// or a scene out of range. expire_seconds over MaxExpireSeconds is clamped to it (WeChat
// documents a maximum, not an error); omitted or non-positive, it is DefaultExpireSeconds.
func parseCreate(body []byte) (Code, int) {
	var top map[string]json.RawMessage
	if json.Unmarshal(body, &top) != nil || top == nil {
		return Code{}, 47001
	}
	var c Code
	if json.Unmarshal(top["action_name"], &c.Action) != nil {
		return Code{}, 40052
	}
	kind, ok := actions[c.Action]
	if !ok {
		return Code{}, 40052
	}
	var info struct {
		Scene map[string]json.RawMessage `json:"scene"`
	}
	if json.Unmarshal(top["action_info"], &info) != nil || info.Scene == nil {
		return Code{}, 40053
	}
	if kind.str {
		if json.Unmarshal(info.Scene["scene_str"], &c.SceneStr) != nil {
			return Code{}, 40053
		}
		if n := utf8.RuneCountInString(c.SceneStr); n < 1 || n > MaxSceneStrLength {
			return Code{}, 40053
		}
	} else {
		var id json.Number
		if json.Unmarshal(info.Scene["scene_id"], &id) != nil {
			return Code{}, 40053
		}
		var err error
		if c.SceneID, err = id.Int64(); err != nil {
			return Code{}, 40053
		}
		if kind.temporary && (c.SceneID == 0 || c.SceneID < math.MinInt32 || c.SceneID > math.MaxInt32) ||
			!kind.temporary && (c.SceneID < 1 || c.SceneID > MaxPermanentSceneID) {
			return Code{}, 40053
		}
	}
	if kind.temporary {
		c.ExpireSeconds = DefaultExpireSeconds
		if raw, ok := top["expire_seconds"]; ok {
			var n json.Number
			if json.Unmarshal(raw, &n) != nil {
				return Code{}, 47001
			}
			if v, err := n.Int64(); err == nil && v > 0 {
				c.ExpireSeconds = min(v, MaxExpireSeconds)
			}
		}
	}
	return c, 0
}

func (c Code) permanentKey() string {
	if c.SceneStr != "" {
		return "str:" + c.SceneStr
	}
	return "id:" + strconv.FormatInt(c.SceneID, 10)
}

// serveCreate is /cgi-bin/qrcode/create: token, then daily quota (every authenticated call
// counts), then the body; a permanent scene issued before answers its existing ticket.
func (s *Server) serveCreate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.fail(w, r, 43002)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	s.mu.Lock()
	a, code := s.checkTokenLocked(r.URL.Query().Get("access_token"))
	if code == 0 && !a.createDay.take(s.day(), s.createQuota) {
		code = 45009
	}
	var c Code
	if code == 0 {
		c, code = parseCreate(body)
	}
	if code == 0 {
		code = s.issueCodeLocked(a, &c)
	}
	s.mu.Unlock()
	if code != 0 {
		s.fail(w, r, code)
		return
	}
	answer := map[string]any{"ticket": c.Ticket, "url": c.URL}
	if !c.Permanent() {
		answer["expire_seconds"] = c.ExpireSeconds
	}
	s.answer(w, r, 0, answer)
}

// issueCodeLocked fills in c's ticket, or the existing one of a permanent scene.
func (s *Server) issueCodeLocked(a *account, c *Code) int {
	now := s.clock.Now()
	if !actions[c.Action].temporary {
		if old, ok := a.permanent[c.permanentKey()]; ok {
			*c = *old
			return 0
		}
		if len(a.permanent) >= s.permCap {
			return 45029
		}
	} else {
		c.ExpiresAt = now.Add(time.Duration(c.ExpireSeconds) * time.Second)
	}
	c.AppID, c.IssuedAt = a.appID, now
	for {
		c.URL = "http://weixin.qq.com/q/" + s.randomLocked(urlAlphabet, 22)
		c.Ticket = s.ticketLocked(c)
		if _, taken := s.codes[c.Ticket]; !taken {
			break
		}
	}
	stored := *c
	s.codes[c.Ticket] = &stored
	if c.Permanent() {
		a.permanent[c.permanentKey()] = &stored
	}
	return 0
}

const urlAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

func (s *Server) randomLocked(alphabet string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = alphabet[s.rng.IntN(len(alphabet))]
	}
	return string(b)
}

// ticketLocked builds a ticket shaped like WeChat's: standard base64 of a binary record that
// starts "gQ" and embeds the URL and times. Bytes 3..5 are fixed so that every ticket contains
// "+/+/" and the length makes it end in "==": a client that forgets to URL-escape tickets
// fails on every code, not on one in a few.
func (s *Server) ticketLocked(c *Code) string {
	var b bytes.Buffer
	b.Write([]byte{0x81, 0x01, byte(s.rng.IntN(256)), 0xfb, 0xff, 0xbf})
	_ = binary.Write(&b, binary.BigEndian, s.rng.Uint32())
	b.Write([]byte{0, 0, 0, 0, 0, 1, byte(len(c.URL))})
	b.WriteString(c.URL)
	b.Write([]byte{2, 4})
	_ = binary.Write(&b, binary.BigEndian, uint32(c.IssuedAt.Unix()))
	b.Write([]byte{3, 4})
	_ = binary.Write(&b, binary.BigEndian, uint32(c.ExpireSeconds))
	for b.Len()%3 != 1 {
		b.WriteByte(0)
	}
	return base64.StdEncoding.EncodeToString(b.Bytes())
}

// imageSize is the side of WeChat's images in pixels.
const imageSize = 430

// serveShowQRCode is /cgi-bin/showqrcode: the JPEG of a live code, 404 for an unknown or
// expired ticket. The ticket must arrive URL-escaped: an unescaped '+' decodes to a space.
func (s *Server) serveShowQRCode(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	c, ok := s.codes[r.URL.Query().Get("ticket")]
	live := ok && (c.Permanent() || s.clock.Now().Before(c.ExpiresAt))
	var content string
	if live {
		content = c.URL
	}
	s.mu.Unlock()
	if !live {
		http.NotFound(w, r)
		return
	}
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	var img bytes.Buffer
	if err := jpeg.Encode(&img, q.Image(imageSize), &jpeg.Options{Quality: 90}); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/jpeg")
	w.Header().Set("Content-Length", strconv.Itoa(img.Len()))
	_, _ = w.Write(img.Bytes())
}
