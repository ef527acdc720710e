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
	"crypto/rand"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/credentials"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// Event is a scan of a parametric QR code as WeChat reports it (docs/wechat-platform.md §5).
type Event struct {
	OpenID     string
	CreateTime int64
	// Subscribe: a scan by someone who then followed the account (EventKey qrscene_<scene>);
	// otherwise a follower's SCAN (EventKey <scene>).
	Subscribe bool
	Scene     string
	Ticket    string
}

// XML is the event's plaintext push body.
func (e Event) XML() []byte {
	event, key := "SCAN", e.Scene
	if e.Subscribe {
		event, key = "subscribe", "qrscene_"+e.Scene
	}
	return fmt.Appendf(nil, "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[%s]]></FromUserName>"+
		"<CreateTime>%d</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[%s]]></Event>"+
		"<EventKey><![CDATA[%s]]></EventKey><Ticket><![CDATA[%s]]></Ticket></xml>", e.OpenID, e.CreateTime, event, key, e.Ticket)
}

// Push is one request as WeChat sends it. Its retries are the same request again, so a Push is
// built once and sent as often as needed; tests spoil its fields to make hostile variants.
type Push struct {
	Path  string
	Query url.Values
	Body  []byte
}

// Pusher plays WeChat pushing to one safe-mode account. wechattest.Pusher, the fake's simulator,
// encrypts and sends one push at a time to one URL; here pushes are built before the clock starts
// (so that the senders' crypto does not compete with the server for the machine's two cores),
// sent by a Sender to a pool of replicas, and open to spoiling by the tests of hostile input.
type Pusher struct {
	acct   credentials.Account
	cipher *wxcrypto.Cipher
}

// NewPusher returns the Pusher of acct.
func NewPusher(acct credentials.Account) (*Pusher, error) {
	c, err := wxcrypto.NewCipher(acct.EncodingAESKey, acct.AppID)
	if err != nil {
		return nil, err
	}
	return &Pusher{acct: acct, cipher: c}, nil
}

// Path is the account's push path on a callback server.
func (p *Pusher) Path() string { return "/wechat/" + p.acct.AppID }

// Push encrypts msg and signs it, timestamped at, as WeChat does in safe mode.
func (p *Pusher) Push(msg []byte, at time.Time) (*Push, error) {
	enc, err := p.cipher.Encrypt(msg)
	if err != nil {
		return nil, err
	}
	push := &Push{
		Path: p.Path(),
		Query: url.Values{
			"timestamp":    {strconv.FormatInt(at.Unix(), 10)},
			"nonce":        {rand.Text()[:10]},
			"openid":       {"o-bench"},
			"encrypt_type": {"aes"},
		},
		Body: []byte("<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><Encrypt><![CDATA[" + enc + "]]></Encrypt></xml>"),
	}
	p.Sign(push, enc)
	return push, nil
}

// Sign (re)computes push's signature over its timestamp and nonce, and msg_signature over
// encrypt when it is not empty, with the account's token.
func (p *Pusher) Sign(push *Push, encrypt string) {
	ts, nonce := push.Query.Get("timestamp"), push.Query.Get("nonce")
	push.Query.Set("signature", wxcrypto.Signature(p.acct.Token, ts, nonce))
	if encrypt != "" {
		push.Query.Set("msg_signature", wxcrypto.Signature(p.acct.Token, ts, nonce, encrypt))
	}
}

// Reply is a passive text reply as WeChat reads it.
type Reply struct {
	ToUserName   string `xml:"ToUserName"`
	FromUserName string `xml:"FromUserName"`
	MsgType      string `xml:"MsgType"`
	Content      string `xml:"Content"`
}

// OpenReply reads the answer to a push as WeChat does in safe mode: an envelope whose
// MsgSignature verifies with the account's token and whose Encrypt decrypts for its AppID into
// a passive reply. A plaintext reply, or "success", is an error: in safe mode WeChat shows the
// follower nothing for either.
func (p *Pusher) OpenReply(body []byte) (Reply, error) {
	var env struct {
		Encrypt      string `xml:"Encrypt"`
		MsgSignature string `xml:"MsgSignature"`
		TimeStamp    string `xml:"TimeStamp"`
		Nonce        string `xml:"Nonce"`
	}
	if err := xml.Unmarshal(body, &env); err != nil || env.Encrypt == "" {
		return Reply{}, fmt.Errorf("not an encrypted reply: %.40q", body)
	}
	if !wxcrypto.VerifySignature(env.MsgSignature, p.acct.Token, env.TimeStamp, env.Nonce, env.Encrypt) {
		return Reply{}, errors.New("the reply's MsgSignature does not verify")
	}
	plain, err := p.cipher.Decrypt(env.Encrypt)
	if err != nil {
		return Reply{}, fmt.Errorf("the reply does not decrypt: %w", err)
	}
	var r Reply
	if err := xml.Unmarshal(plain, &r); err != nil {
		return Reply{}, fmt.Errorf("the decrypted reply is not XML: %.40q", plain)
	}
	return r, nil
}

// Outcome is what became of one push.
type Outcome struct {
	// Status is the HTTP status of the last try; 0 if no try got an answer (or none was made).
	Status int
	Tries  int
	// Latency is from the first try to the last answer.
	Latency time.Duration
	// Attempts are the tries one by one.
	Attempts []Attempt
	// Body is the last try's answer, kept only when the Sender's Replies is set.
	Body []byte
}

// Attempt is one try of a push: when it started, how long it took to be answered (or to fail),
// and the status (0: no answer).
type Attempt struct {
	Start  time.Time
	Took   time.Duration
	Status int
}

// Percentile is the q-quantile (0..1) of ds by the nearest-rank method; ds is sorted in place.
func Percentile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	return ds[min(max(i, 0), len(ds)-1)]
}

// Summary is the aggregate of a Send.
type Summary struct {
	Sent, Acked, Failed int
	// Retried counts the pushes that needed more than one try.
	Retried  int
	P50, P99 time.Duration
	// ByStatus counts final statuses.
	ByStatus map[int]int
}

// Summarize aggregates outcomes; latencies are those of acknowledged pushes.
func Summarize(outcomes []Outcome) Summary {
	s := Summary{ByStatus: map[int]int{}}
	var lat []time.Duration
	for _, o := range outcomes {
		if o.Tries == 0 {
			continue
		}
		s.Sent++
		s.ByStatus[o.Status]++
		if o.Tries > 1 {
			s.Retried++
		}
		if o.Status == http.StatusOK {
			s.Acked++
			lat = append(lat, o.Latency)
		} else {
			s.Failed++
		}
	}
	s.P50, s.P99 = Percentile(lat, 0.50), Percentile(lat, 0.99)
	return s
}
