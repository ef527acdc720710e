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
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"k8s.io/utils/clock"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// PushMode is the account's message encryption setting.
type PushMode string

const (
	PushPlaintext  PushMode = "plaintext"
	PushCompatible PushMode = "compatible" // plaintext fields and Encrypt
	PushSafe       PushMode = "safe"       // only ToUserName and Encrypt
)

// WeChat's push delivery: each try waits this long for an answer, and a message is tried this
// many times in all.
const (
	PushTimeout = 5 * time.Second
	PushTries   = 3
)

// Pusher sends event pushes to a callback URL exactly as WeChat does.
type Pusher struct {
	URL            string // the callback URL configured in the account
	Token          string // the account's callback token, for signatures
	EncodingAESKey string // compatible and safe modes
	// AppID: the appid inside every encrypted message (compatible and safe modes); with Server,
	// every user pushed becomes a follower of this AppID for the tag endpoints.
	AppID     string
	AccountID string // the account's original ID (gh_...), ToUserName of every push
	Mode      PushMode

	// Server resolves tickets for Scan.
	Server *Server
	// HTTPClient defaults to http.DefaultClient; Timeout (default PushTimeout) bounds each try.
	HTTPClient *http.Client
	Timeout    time.Duration
	Tries      int // default PushTries
	// Clock gives CreateTime and timestamp; default the Server's clock, else real time.
	Clock clock.PassiveClock
}

// Event is the content of an event push. EventKey is sent for every event but unsubscribe,
// empty for a subscribe that did not come from a QR code.
type Event struct {
	FromUserName string // the user's OpenID
	CreateTime   int64  // default: now
	Event        string // subscribe, SCAN, unsubscribe
	EventKey     string
	Ticket       string
}

// PushResult is what the callback answered to the last try.
type PushResult struct {
	Status int
	Body   string
	// Reply is the passive reply: Body, decrypted when the callback answered an encrypted one.
	Reply     string
	Encrypted bool
	// Message is the message Reply holds, as the user's chat would show it; zero when the
	// callback acknowledged without one.
	Message Message
	Tries   int
	// Sent is the plaintext XML of the event, as the callback should see it after decryption.
	Sent string
}

// Acknowledged reports whether the callback acknowledged without sending a message.
func (r PushResult) Acknowledged() bool { return r.Reply == "" || r.Reply == "success" }

// ErrUnknownTicket is returned by Scan for a ticket the Server never issued or that expired:
// WeChat shows the user an error and pushes nothing.
var ErrUnknownTicket = errors.New("wechattest: no live code with this ticket")

// Scan pushes what WeChat sends when openID scans the code of ticket: subscribe with EventKey
// "qrscene_<scene>" for a user who does not follow the account yet, SCAN with the bare scene for
// a follower.
func (p *Pusher) Scan(ctx context.Context, ticket, openID string, follower bool) (PushResult, error) {
	c, ok := p.Server.Code(ticket)
	if !ok || !c.Permanent() && !p.clock().Now().Before(c.ExpiresAt) {
		return PushResult{}, ErrUnknownTicket
	}
	ev := Event{FromUserName: openID, Event: "SCAN", EventKey: c.Scene(), Ticket: ticket}
	if !follower {
		ev.Event, ev.EventKey = "subscribe", "qrscene_"+c.Scene()
	}
	return p.Push(ctx, ev)
}

func (p *Pusher) clock() clock.PassiveClock {
	switch {
	case p.Clock != nil:
		return p.Clock
	case p.Server != nil:
		return p.Server.clock
	}
	return clock.RealClock{}
}

type cdata struct {
	Value string `xml:",cdata"`
}

func text(s string) *cdata { return &cdata{s} }

type pushXML struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   cdata    `xml:"ToUserName"`
	FromUserName *cdata   `xml:"FromUserName,omitempty"`
	CreateTime   int64    `xml:"CreateTime,omitempty"`
	MsgType      *cdata   `xml:"MsgType,omitempty"`
	Content      *cdata   `xml:"Content,omitempty"`
	MsgID        int64    `xml:"MsgId,omitempty"`
	Event        *cdata   `xml:"Event,omitempty"`
	EventKey     *cdata   `xml:"EventKey,omitempty"`
	Ticket       *cdata   `xml:"Ticket,omitempty"`
	Encrypt      *cdata   `xml:"Encrypt,omitempty"`
}

// eventXML is the plaintext of ev.
func (p *Pusher) eventXML(ev Event) pushXML {
	if ev.CreateTime == 0 {
		ev.CreateTime = p.clock().Now().Unix()
	}
	x := pushXML{
		ToUserName: cdata{p.AccountID}, FromUserName: text(ev.FromUserName), CreateTime: ev.CreateTime,
		MsgType: text("event"), Event: text(ev.Event),
	}
	if ev.Event != "unsubscribe" {
		x.EventKey = text(ev.EventKey)
	}
	if ev.Ticket != "" {
		x.Ticket = text(ev.Ticket)
	}
	return x
}

// body builds the plaintext XML of x and what goes on the wire in p's mode, with the query.
func (p *Pusher) body(x pushXML) (plain []byte, wire []byte, q url.Values, err error) {
	if plain, err = xml.Marshal(x); err != nil {
		return nil, nil, nil, err
	}
	timestamp, nonce := p.stamp()
	q = url.Values{
		"signature": {wxcrypto.Signature(p.Token, timestamp, nonce)},
		"timestamp": {timestamp}, "nonce": {nonce}, "openid": {x.FromUserName.Value},
	}
	switch p.Mode {
	case PushPlaintext, "":
		return plain, plain, q, nil
	case PushSafe:
		x = pushXML{ToUserName: x.ToUserName}
	case PushCompatible:
	default:
		return nil, nil, nil, fmt.Errorf("wechattest: unknown push mode %q", p.Mode)
	}
	cipher, err := wxcrypto.NewCipher(p.EncodingAESKey, p.AppID)
	if err != nil {
		return nil, nil, nil, err
	}
	enc, err := cipher.Encrypt(plain)
	if err != nil {
		return nil, nil, nil, err
	}
	x.Encrypt = text(enc)
	q.Set("encrypt_type", "aes")
	q.Set("msg_signature", wxcrypto.Signature(p.Token, timestamp, nonce, enc))
	wire, err = xml.Marshal(x)
	return plain, wire, q, err
}

// Push sends ev, trying again on a timeout, a network error or a non-200 answer, as WeChat does.
// Every try carries the same message, so a callback sees a retry as a duplicate. The error says
// why the user would see "该公众号暂时无法提供服务": no answer, or a reply WeChat cannot use.
func (p *Pusher) Push(ctx context.Context, ev Event) (PushResult, error) {
	return p.push(ctx, p.eventXML(ev))
}

// Text pushes what WeChat sends when openID writes content to the account: a text message, with
// the MsgId WeChat's retries keep.
func (p *Pusher) Text(ctx context.Context, openID, content string) (PushResult, error) {
	return p.push(ctx, pushXML{
		ToUserName: cdata{p.AccountID}, FromUserName: text(openID), CreateTime: p.clock().Now().Unix(),
		MsgType: text("text"), Content: text(content), MsgID: rand.Int64N(1 << 62),
	})
}

func (p *Pusher) push(ctx context.Context, x pushXML) (PushResult, error) {
	// WeChat pushes only what its users do: from now on the user is the account's follower, for
	// the tag endpoints. An unsubscribe leaves the user known (WeChat keeps the OpenID).
	if p.Server != nil && p.AppID != "" && x.FromUserName != nil {
		p.Server.AddFollower(p.AppID, x.FromUserName.Value)
	}
	plain, wire, q, err := p.body(x)
	if err != nil {
		return PushResult{}, err
	}
	res := PushResult{Sent: string(plain)}
	tries, timeout := p.Tries, p.Timeout
	if tries <= 0 {
		tries = PushTries
	}
	if timeout <= 0 {
		timeout = PushTimeout
	}
	var lastErr error
	for res.Tries < tries {
		res.Tries++
		res.Status, res.Body, lastErr = p.try(ctx, timeout, q, wire)
		if lastErr == nil && res.Status == http.StatusOK {
			return res, p.openReply(&res, x.FromUserName.Value)
		}
		if ctx.Err() != nil {
			break
		}
	}
	if lastErr == nil {
		lastErr = fmt.Errorf("HTTP %d", res.Status)
	}
	return res, fmt.Errorf("wechattest: push not acknowledged after %d tries: %w", res.Tries, lastErr)
}

func (p *Pusher) try(ctx context.Context, timeout time.Duration, q url.Values, wire []byte) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return p.send(ctx, http.MethodPost, q, bytes.NewReader(wire))
}

// send adds q to the callback URL's own query and returns the answer.
func (p *Pusher) send(ctx context.Context, method string, q url.Values, body io.Reader) (int, string, error) {
	u, err := url.Parse(p.URL)
	if err != nil {
		return 0, "", err
	}
	all := u.Query()
	for k, v := range q {
		all[k] = v
	}
	u.RawQuery = all.Encode()
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return 0, "", err
	}
	if body != nil {
		req.Header.Set("Content-Type", "text/xml")
	}
	client := p.HTTPClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

type encryptedReply struct {
	Encrypt      string `xml:"Encrypt"`
	MsgSignature string `xml:"MsgSignature"`
	TimeStamp    string `xml:"TimeStamp"`
	Nonce        string `xml:"Nonce"`
}

type replyXML struct {
	ToUserName   string    `xml:"ToUserName"`
	FromUserName string    `xml:"FromUserName"`
	MsgType      string    `xml:"MsgType"`
	Content      string    `xml:"Content"`
	MediaID      string    `xml:"Image>MediaId"`
	ArticleCount int       `xml:"ArticleCount"`
	Articles     []Article `xml:"Articles>item"`
}

// Message is a passive reply's message: a text (Content), an image (MediaID) or a news message
// (Articles, link cards).
type Message struct {
	MsgType  string
	Content  string
	MediaID  string
	Articles []Article
}

// Article is a link card of a news message.
type Article struct {
	Title       string `xml:"Title"`
	Description string `xml:"Description"`
	PicURL      string `xml:"PicUrl"`
	URL         string `xml:"Url"`
}

// maxPassiveArticles is how many articles WeChat shows of an event's passive news reply; it
// answers nothing to more (docs/wechat-platform.md §10).
const maxPassiveArticles = 8

// String is the message as a line: the quoted text, "image media_id=…", or the link cards'
// quoted titles and URLs.
func (m Message) String() string {
	switch m.MsgType {
	case "text":
		return strconv.Quote(m.Content)
	case "image":
		return "image media_id=" + m.MediaID
	case "news":
		var links []string
		for _, a := range m.Articles {
			links = append(links, fmt.Sprintf("link %q → %s", a.Title, a.URL))
		}
		return strings.Join(links, ", ")
	}
	return m.MsgType
}

// check is what WeChat refuses of a passive reply's message: the user then sees
// "该公众号暂时无法提供服务".
func (r replyXML) check() error {
	switch r.MsgType {
	case "image":
		if r.MediaID == "" {
			return errors.New("wechattest: image reply without a MediaId")
		}
	case "news":
		if r.ArticleCount != len(r.Articles) || r.ArticleCount < 1 || r.ArticleCount > maxPassiveArticles {
			return fmt.Errorf("wechattest: news reply of ArticleCount %d with %d articles (1 to %d)", r.ArticleCount, len(r.Articles), maxPassiveArticles)
		}
	}
	return nil
}

// openReply checks the passive reply as WeChat would: an encrypted reply must be signed and
// decrypt for this account; a message must go back to the user from the account; safe mode
// accepts only encrypted messages.
func (p *Pusher) openReply(res *PushResult, openID string) error {
	res.Reply = strings.TrimSpace(res.Body)
	if res.Acknowledged() {
		return nil
	}
	var env encryptedReply
	if xml.Unmarshal([]byte(res.Reply), &env) == nil && env.Encrypt != "" {
		if !wxcrypto.VerifySignature(env.MsgSignature, p.Token, env.TimeStamp, env.Nonce, env.Encrypt) {
			return errors.New("wechattest: encrypted reply with a bad MsgSignature")
		}
		cipher, err := wxcrypto.NewCipher(p.EncodingAESKey, p.AppID)
		if err != nil {
			return err
		}
		plain, err := cipher.Decrypt(env.Encrypt)
		if err != nil {
			return fmt.Errorf("wechattest: encrypted reply: %w", err)
		}
		res.Reply, res.Encrypted = string(plain), true
	} else if p.Mode == PushSafe {
		return errors.New("wechattest: plaintext reply in safe mode")
	}
	var r replyXML
	if err := xml.Unmarshal([]byte(res.Reply), &r); err != nil || r.MsgType == "" {
		return fmt.Errorf("wechattest: malformed passive reply %q", res.Reply)
	}
	if r.ToUserName != openID || r.FromUserName != p.AccountID {
		return fmt.Errorf("wechattest: reply from %q to %q, want from %q to %q", r.FromUserName, r.ToUserName, p.AccountID, openID)
	}
	if err := r.check(); err != nil {
		return err
	}
	res.Message = Message{MsgType: r.MsgType, Content: r.Content, MediaID: r.MediaID, Articles: r.Articles}
	return nil
}

// Verify performs the URL verification WeChat does when the callback URL is configured and
// reports whether the callback echoed echostr.
func (p *Pusher) Verify(ctx context.Context) (bool, error) {
	timestamp, nonce := p.stamp()
	echostr := strconv.FormatInt(rand.Int64(), 10)
	q := url.Values{
		"signature": {wxcrypto.Signature(p.Token, timestamp, nonce)},
		"timestamp": {timestamp}, "nonce": {nonce}, "echostr": {echostr},
	}
	status, body, err := p.send(ctx, http.MethodGet, q, nil)
	return status == http.StatusOK && body == echostr, err
}

// stamp returns a push's timestamp and a nonce, numeric as WeChat's are.
func (p *Pusher) stamp() (timestamp, nonce string) {
	return strconv.FormatInt(p.clock().Now().Unix(), 10), strconv.FormatInt(rand.Int64N(1e10), 10)
}
