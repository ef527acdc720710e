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
	"encoding/xml"
	"reflect"
	"strings"
	"testing"
)

// oracleEncrypt is what encoding/xml reads of a push envelope: every <Encrypt> child of <xml>.
func oracleEncrypt(b []byte) ([]string, error) {
	var env struct {
		XMLName xml.Name `xml:"xml"`
		Encrypt []string `xml:"Encrypt"`
	}
	err := xml.Unmarshal(b, &env)
	return env.Encrypt, err
}

// checkEnvelope holds EnvelopeEncrypt to its promise: it refuses, or yields what encoding/xml
// reads of the envelope's only <Encrypt> ("" when there is none).
func checkEnvelope(t *testing.T, body []byte) (string, bool) {
	t.Helper()
	got, err := EnvelopeEncrypt(body)
	if err != nil {
		if err != ErrMalformed {
			t.Fatalf("%q: error %v", body, err)
		}
		return "", false
	}
	want, xerr := oracleEncrypt(body)
	switch {
	case xerr != nil:
		t.Fatalf("%q: scanned %q, encoding/xml refuses it: %v", body, got, xerr)
	case len(want) > 1:
		t.Fatalf("%q: scanned %q out of %d <Encrypt>", body, got, len(want))
	case len(want) == 0 && got != "":
		t.Fatalf("%q: scanned %q, encoding/xml finds no <Encrypt>", body, got)
	case len(want) == 1 && got != want[0]:
		t.Fatalf("%q: scanned %q, encoding/xml reads %q", body, got, want[0])
	}
	return got, true
}

const sealed = "kZvVL3fQ+Mq3Km1a/0b9XhQ2yA=="

// Plaintext pushes of a QR code scan (docs/wechat-platform.md §5): by a follower, and by a
// non-follower who followed.
const (
	scanPush = "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>" +
		"<CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event>" +
		"<EventKey><![CDATA[1]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>"
	subscribePush = "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>" +
		"<CreateTime>1700000000</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event>" +
		"<EventKey><![CDATA[qrscene_7]]></EventKey><Ticket><![CDATA[TICKET]]></Ticket></xml>"
)

func TestEnvelopeEncrypt(t *testing.T) {
	ok := map[string]string{
		"safe mode":               "<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[" + sealed + "]]></Encrypt></xml>",
		"plain text":              "<xml><Encrypt>" + sealed + "</Encrypt></xml>",
		"whitespace":              " \r\n\t<xml>\n  <ToUserName><![CDATA[gh]]></ToUserName>\n  <Encrypt><![CDATA[" + sealed + "]]></Encrypt>\n</xml>\n",
		"pieces joined":           "<xml><Encrypt>\n  <![CDATA[kZvVL3fQ]]>+Mq3Km1a<![CDATA[/0b9XhQ2yA==]]> </Encrypt></xml>",
		"empty":                   "<xml><Encrypt></Encrypt></xml>",
		"self-closing":            "<xml><Encrypt/></xml>",
		"none":                    "<xml><ToUserName>gh</ToUserName></xml>",
		"trailing bytes":          "<xml><Encrypt>" + sealed + "</Encrypt></xml><<<garbage",
		"nested Encrypt ignored":  "<xml><A><Encrypt>x</Encrypt></A><Encrypt>" + sealed + "</Encrypt></xml>",
		"compatible mode":         subscribePush,
		"entities elsewhere":      "<xml><Content>a &amp; b &lt;c&gt; &quot;&apos;</Content><Encrypt>" + sealed + "</Encrypt></xml>",
		"unicode elsewhere":       "<xml><Content><![CDATA[感谢 ]]]]><![CDATA[>]]></Content><Encrypt>" + sealed + "</Encrypt></xml>",
		"nested children":         "<xml><ScanCodeInfo><ScanType>qrcode</ScanType><ScanResult/></ScanCodeInfo><Encrypt>" + sealed + "</Encrypt></xml>",
		"carriage return outside": "<xml><Content>a\r\nb</Content><Encrypt>" + sealed + "</Encrypt></xml>",
	}
	want := map[string]string{
		"safe mode": sealed, "plain text": sealed, "whitespace": sealed, "pieces joined": "\n  " + sealed + " ",
		"trailing bytes": sealed, "nested Encrypt ignored": sealed, "entities elsewhere": sealed,
		"unicode elsewhere": sealed, "nested children": sealed, "carriage return outside": sealed,
	}
	for name, body := range ok {
		t.Run(name, func(t *testing.T) {
			got, accepted := checkEnvelope(t, []byte(body))
			if !accepted || got != want[name] {
				t.Fatalf("got %q, %v; want %q", got, accepted, want[name])
			}
		})
	}
	// maxEnvelopeDepth elements deep, <xml> included.
	deep := "<xml>" + strings.Repeat("<a>", maxEnvelopeDepth-1) + strings.Repeat("</a>", maxEnvelopeDepth-1) + "</xml>"
	refused := map[string]string{
		"twice":                  "<xml><Encrypt>a</Encrypt><Encrypt>b</Encrypt></xml>",
		"twice, once empty":      "<xml><Encrypt/><Encrypt>b</Encrypt></xml>",
		"truncated":              "<xml><Encrypt><![CDATA[" + sealed,
		"truncated after":        "<xml><Encrypt>" + sealed + "</Encrypt>",
		"unterminated CDATA":     "<xml><Encrypt><![CDATA[" + sealed + "</Encrypt></xml>",
		"empty body":             "",
		"other root":             "<notxml><Encrypt>a</Encrypt></notxml>",
		"attribute":              "<xml><Encrypt a=\"1\">a</Encrypt></xml>",
		"namespace prefix":       "<xml><x:Encrypt>a</x:Encrypt></xml>",
		"mismatched end":         "<xml><Encrypt>a</Encrypted></xml>",
		"entity in Encrypt":      "<xml><Encrypt>a&amp;b</Encrypt></xml>",
		"carriage return":        "<xml><Encrypt>a\r\nb</Encrypt></xml>",
		"> in Encrypt text":      "<xml><Encrypt>a>b</Encrypt></xml>",
		"element in Encrypt":     "<xml><Encrypt>a<b/></Encrypt></xml>",
		"unknown entity":         "<xml><Content>&nbsp;</Content></xml>",
		"numeric entity":         "<xml><Content>&#65;</Content></xml>",
		"invalid UTF-8":          "<xml><Content>\xff</Content></xml>",
		"control character":      "<xml><Content><![CDATA[\x00]]></Content></xml>",
		"end of CDATA in text":   "<xml><Content>a]]>b</Content></xml>",
		"text in root":           "<xml>text<Encrypt>a</Encrypt></xml>",
		"comment":                "<xml><!-- c --><Encrypt>a</Encrypt></xml>",
		"DOCTYPE":                "<!DOCTYPE xml [<!ENTITY a \"aaaa\">]><xml><Encrypt>&a;</Encrypt></xml>",
		"declaration":            "<?xml version=\"1.0\"?><xml><Encrypt>a</Encrypt></xml>",
		"too deep":               strings.Replace(deep, "<a>", "<a><a>", 1),
		"space in tag":           "<xml><Encrypt >a</Encrypt></xml>",
		"oversized depth closes": "<xml>" + strings.Repeat("<a>", 10000),
	}
	if _, accepted := checkEnvelope(t, []byte(deep)); !accepted {
		t.Fatalf("%d elements deep refused", maxEnvelopeDepth)
	}
	for name, body := range refused {
		t.Run(name, func(t *testing.T) {
			if got, accepted := checkEnvelope(t, []byte(body)); accepted {
				t.Fatalf("accepted, %q", got)
			}
		})
	}
}

func FuzzEnvelopeEncrypt(f *testing.F) {
	for _, s := range []string{
		"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><Encrypt><![CDATA[" + sealed + "]]></Encrypt></xml>",
		" <xml>\n<Encrypt>\n<![CDATA[a]]>b<![CDATA[c]]></Encrypt><Encrypt/></xml>",
		"<xml><A><B/><Encrypt>x</Encrypt>t&amp;</A><Encrypt>y</Encrypt></xml>tail",
		"<xml><Content><![CDATA[]]]]><![CDATA[>]]>&lt;\r</Content></xml>",
		scanPush,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) { checkEnvelope(t, body) })
}

// checkMessage holds ParseMessage to encoding/xml: the same fields, or both refuse.
func checkMessage(t *testing.T, body []byte) {
	t.Helper()
	var want Message
	xerr := xml.Unmarshal(body, &want)
	got, err := ParseMessage(body)
	switch {
	case (err != nil) != (xerr != nil):
		t.Fatalf("%q: error %v, encoding/xml's %v", body, err, xerr)
	case err != nil:
		return
	}
	// Only encoding/xml fills XMLName (it checks the root's name with it); nothing reads it.
	got.XMLName, want.XMLName = xml.Name{}, xml.Name{}
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("%q:\n got %+v\nwant %+v", body, *got, want)
	}
}

func TestParseMessageMatchesEncodingXML(t *testing.T) {
	for _, body := range []string{
		subscribePush,
		// No EventKey, no Ticket.
		"<xml><ToUserName><![CDATA[gh_account]]></ToUserName><FromUserName><![CDATA[o1]]></FromUserName>" +
			"<CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[SCAN]]></Event></xml>",
		// Outside the scanned subset, so encoding/xml reads them.
		"<xml><FromUserName>a &amp; b</FromUserName><Event>x</Event><Event>y</Event></xml>",
		"<xml><EventKey><![CDATA[a\r\nb]]></EventKey><!-- c --></xml>",
		"<xml><ScanCodeInfo><ScanType>qrcode</ScanType></ScanCodeInfo><MsgType>event</MsgType><Content>a]]>b</Content></xml>",
		"<xml><MsgType>text</MsgType>",
		"<notxml/>",
	} {
		checkMessage(t, []byte(body))
	}
}

func FuzzMessage(f *testing.F) {
	f.Add([]byte(subscribePush))
	f.Add([]byte("<xml><FromUserName>a &amp; b</FromUserName><Event>x</Event><Event>y</Event><A><B/></A></xml>"))
	f.Add([]byte("<xml>\n<Ticket><![CDATA[t]]> x <![CDATA[]]></Ticket><EventKey/></xml>"))
	f.Fuzz(checkMessage)
}
