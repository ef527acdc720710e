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

package pushwire

import (
	"bytes"
	"crypto/rand"
	"strconv"
	"unicode/utf8"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
)

// A push body, and the envelope of a safe- or compatible-mode push, are read by a byte scan
// rather than encoding/xml, which cost about half of a push's CPU. The scan accepts a strict subset
// of XML and reads from it exactly what encoding/xml would (FuzzEnvelopeEncrypt and FuzzMessage
// hold it to that); what it does not accept, the envelope refuses and the message leaves to
// encoding/xml. The subset:
//
//   - optional XML whitespace, then exactly <xml>, then children and whitespace, then </xml>;
//     whatever follows </xml> is ignored, as encoding/xml ignores it;
//   - a child is <Name>content</Name> or <Name/>, Name in [A-Za-z_][A-Za-z0-9_.-]*, with no
//     attributes, namespace prefixes or whitespace inside the tags;
//   - content is text, CDATA sections and nested children, at most maxEnvelopeDepth elements
//     deep (<xml> is the first); text is valid UTF-8 of XML characters without "]]>", and & only
//     in &amp; &lt; &gt; &quot; &apos;;
//   - comments, processing instructions, DOCTYPE and text directly inside <xml> are refused;
//   - a field read (Encrypt; the message's fields) counts only as a direct child of <xml>, at
//     most once; its content is text and CDATA without &, > in text, carriage return (which
//     encoding/xml rewrites) or nested element, and its value is the concatenation of those
//     pieces, as encoding/xml's.
//
// The envelope's <Encrypt> is trusted only once msg_signature and decryption have verified it.
// The scan reads every byte at most a few times and recurses at most maxEnvelopeDepth deep, so
// its cost is linear in the body, which --max-body-bytes bounds.
const maxEnvelopeDepth = 8

// EnvelopeEncrypt returns the <Encrypt> of a push body, "" when it has none, or ErrMalformed.
func EnvelopeEncrypt(b []byte) (string, error) {
	var enc string
	ok := scanFields(b, func(name []byte) *string {
		if string(name) == "Encrypt" {
			return &enc
		}
		return nil
	})
	if !ok {
		return "", ErrMalformed
	}
	return enc, nil
}

// maxFields is the most fields a scan reads.
const maxFields = 8

// scanFields scans b and stores the value of every child of <xml> for which field returns where
// to store it (at most maxFields of them). It reports whether b is of the subset.
func scanFields(b []byte, field func(name []byte) *string) bool {
	s := envelopeScanner{b: b}
	s.space()
	if !s.literal("<xml>") {
		return false
	}
	var seen [maxFields]*string
	n := 0
	for {
		s.space()
		if s.literal("</xml>") {
			return true
		}
		name, empty, ok := s.startTag()
		if !ok {
			return false
		}
		dst := field(name)
		if dst == nil {
			if !empty && !s.content(name, 2) {
				return false
			}
			continue
		}
		for _, d := range seen[:n] {
			if d == dst {
				return false
			}
		}
		seen[n] = dst
		n++
		if !empty {
			if *dst, ok = s.value(name); !ok {
				return false
			}
		}
	}
}

// envelopeScanner reads b from i onwards; every method leaves i after what it accepted.
type envelopeScanner struct {
	b []byte
	i int
}

func (s *envelopeScanner) literal(lit string) bool {
	if !bytes.HasPrefix(s.b[s.i:], []byte(lit)) {
		return false
	}
	s.i += len(lit)
	return true
}

// space skips XML whitespace.
func (s *envelopeScanner) space() {
	for s.i < len(s.b) && (s.b[s.i] == ' ' || s.b[s.i] == '\t' || s.b[s.i] == '\n' || s.b[s.i] == '\r') {
		s.i++
	}
}

// startTag reads <Name> or <Name/>.
func (s *envelopeScanner) startTag() (name []byte, empty, ok bool) {
	if !s.literal("<") {
		return nil, false, false
	}
	if name = s.name(); name == nil {
		return nil, false, false
	}
	if s.literal("/>") {
		return name, true, true
	}
	return name, false, s.literal(">")
}

func (s *envelopeScanner) name() []byte {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_'
		if !letter && (s.i == start || !(c >= '0' && c <= '9' || c == '.' || c == '-')) {
			break
		}
		s.i++
	}
	if s.i == start {
		return nil
	}
	return s.b[start:s.i]
}

// endTag reads </name>.
func (s *envelopeScanner) endTag(name []byte) bool {
	if !s.literal("</") {
		return false
	}
	if got := s.name(); !bytes.Equal(got, name) {
		return false
	}
	return s.literal(">")
}

// cdata reads a CDATA section and returns what it holds.
func (s *envelopeScanner) cdata() ([]byte, bool) {
	if !s.literal("<![CDATA[") {
		return nil, false
	}
	n := bytes.Index(s.b[s.i:], []byte("]]>"))
	if n < 0 {
		return nil, false
	}
	v := s.b[s.i : s.i+n]
	s.i += n + len("]]>")
	return v, true
}

// content reads what follows <name> up to and including </name>, at the given depth.
func (s *envelopeScanner) content(name []byte, depth int) bool {
	for {
		if s.i >= len(s.b) {
			return false
		}
		switch rest := s.b[s.i:]; {
		case bytes.HasPrefix(rest, []byte("</")):
			return s.endTag(name)
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			v, ok := s.cdata()
			if !ok || !xmlChars(v) {
				return false
			}
		case rest[0] == '<':
			child, empty, ok := s.startTag()
			if !ok || depth >= maxEnvelopeDepth {
				return false
			}
			if !empty && !s.content(child, depth+1) {
				return false
			}
		default:
			if !s.text() {
				return false
			}
		}
	}
}

// text reads character data up to the next <.
func (s *envelopeScanner) text() bool {
	end := bytes.IndexByte(s.b[s.i:], '<')
	if end < 0 {
		end = len(s.b) - s.i
	}
	t := s.b[s.i : s.i+end]
	s.i += end
	if bytes.Contains(t, []byte("]]>")) {
		return false
	}
	for {
		amp := bytes.IndexByte(t, '&')
		if amp < 0 {
			return xmlChars(t)
		}
		if !xmlChars(t[:amp]) {
			return false
		}
		t = t[amp:]
		semi := bytes.IndexByte(t, ';')
		if semi < 0 {
			return false
		}
		switch string(t[1:semi]) {
		case "amp", "lt", "gt", "quot", "apos":
		default:
			return false
		}
		t = t[semi+1:]
	}
}

// xmlChars reports whether b is UTF-8 of characters XML allows.
func xmlChars(b []byte) bool {
	for len(b) > 0 {
		// ASCII, all of <Encrypt> and most of a message, is checked without decoding runes.
		if c := b[0]; c < utf8.RuneSelf {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
				return false
			}
			b = b[1:]
			continue
		}
		r, n := utf8.DecodeRune(b)
		if r == utf8.RuneError && n == 1 {
			return false
		}
		b = b[n:]
		if !(r == '\t' || r == '\n' || r == '\r' || r >= 0x20 && r <= 0xD7FF || r >= 0xE000 && r <= 0xFFFD || r >= 0x10000 && r <= 0x10FFFF) {
			return false
		}
	}
	return true
}

// value reads the content of a field up to and including </name>.
func (s *envelopeScanner) value(name []byte) (string, bool) {
	var first, joined []byte
	pieces := 0
	for {
		var piece []byte
		switch rest := s.b[s.i:]; {
		case bytes.HasPrefix(rest, []byte("</")):
			if !s.endTag(name) {
				return "", false
			}
			if pieces > 1 {
				return string(joined), true
			}
			return string(first), true
		case bytes.HasPrefix(rest, []byte("<![CDATA[")):
			var ok bool
			if piece, ok = s.cdata(); !ok || !xmlChars(piece) || bytes.IndexByte(piece, '\r') >= 0 {
				return "", false
			}
		default:
			// Text up to the next tag; a < here starts an element, which <Encrypt> may not hold.
			end := bytes.IndexByte(rest, '<')
			if end <= 0 {
				return "", false
			}
			piece = rest[:end]
			s.i += end
			if !xmlChars(piece) || bytes.ContainsAny(piece, "&>\r") {
				return "", false
			}
		}
		// Most fields are one CDATA section or one text: its bytes become the value without a
		// copy in between.
		if pieces++; pieces == 1 {
			first = piece
		} else {
			if pieces == 2 {
				joined = append(joined, first...)
			}
			joined = append(joined, piece...)
		}
	}
}

// appendEnvelope appends the envelope of an encrypted passive reply, byte for byte what
// encoding/xml made of it before. timestamp is decimal digits, which need no escaping.
func appendEnvelope(dst []byte, enc, signature, timestamp, nonce string) []byte {
	dst = append(dst, "<xml><Encrypt>"...)
	dst = appendCDATA(dst, enc)
	dst = append(dst, "</Encrypt><MsgSignature>"...)
	dst = appendCDATA(dst, signature)
	dst = append(dst, "</MsgSignature><TimeStamp>"...)
	dst = append(dst, timestamp...)
	dst = append(dst, "</TimeStamp><Nonce>"...)
	dst = appendCDATA(dst, nonce)
	return append(dst, "</Nonce></xml>"...)
}

// Seal encrypts and signs a passive reply (safe and compatible mode).
func Seal(token string, c *wxcrypto.Cipher, reply []byte, now int64) ([]byte, error) {
	enc, err := c.Encrypt(reply)
	if err != nil {
		return nil, err
	}
	ts, nonce := strconv.FormatInt(now, 10), rand.Text()
	return appendEnvelope(make([]byte, 0, len(enc)+192), enc, wxcrypto.Signature(token, ts, nonce, enc), ts, nonce), nil
}
