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
	"slices"
	"strconv"
	"testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxreply"
)

// checkReplies compares the byte builders with wxreply, the encoding/xml builders that made the
// replies before AppendTextReply and appendEnvelope, on the same fields: every kind of reply, with
// text in each of its fields, and the envelope.
func checkReplies(t *testing.T, to, from, text string, now int64) {
	t.Helper()
	m := &Message{FromUserName: to, ToUserName: from}
	same := func(kind string, got []byte, want []byte, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Fatalf("%s reply\n got %q\nwant %q", kind, got, want)
		}
	}
	want, err := wxreply.MarshalText(to, from, text, now)
	same("text", AppendTextReply(nil, m, text, now), want, err)
	want, err = wxreply.MarshalImage(to, from, text, now)
	same("image", AppendImageReply(nil, m, text, now), want, err)
	// Each field of the article in turn holds text, the others something else, so that a field
	// written in another's place shows.
	fields := []string{"title", "description", "https://pic.example/p.png", "https://example.com/?a=1&b=2"}
	for i := range fields {
		f := slices.Clone(fields)
		f[i] = text
		want, err = wxreply.MarshalNews(to, from, wxreply.Article{Title: wxreply.CDATA{Value: f[0]}, Description: wxreply.CDATA{Value: f[1]},
			PicURL: wxreply.CDATA{Value: f[2]}, URL: wxreply.CDATA{Value: f[3]}}, now)
		same("news", AppendNewsReply(nil, m, Article{Title: f[0], Description: f[1], PicURL: f[2], URL: f[3]}, now), want, err)
	}
	// The envelope's fields are base64, hex and rand.Text in production; any text must match.
	ts := strconv.FormatInt(now, 10)
	want, err = wxreply.MarshalEnvelope(text, to, ts, from)
	same("envelope", appendEnvelope(nil, text, to, ts, from), want, err)
}

func TestRepliesMatchEncodingXML(t *testing.T) {
	for name, tc := range map[string]struct {
		to, from, text string
		now            int64
	}{
		"plain":              {"oUser", "gh_account", "thanks", 1700000000},
		"empty fields":       {"", "", "", 0},
		"negative time":      {"o", "gh", "x", -5},
		"end of CDATA":       {"o", "gh", "a]]>b", 1},
		"only end of CDATA":  {"]]>", "]]>]]>", "]]>", 1},
		"near ends":          {"]]", "]>", "]]]>>]]]]>>", 1},
		"markup and entity":  {"o-1<x>&amp;", "gh", "thanks ]]> <b>&amp;</b>", 2},
		"unicode":            {"o", "gh", "感谢您的关注! 场景值: 7 😀", 3},
		"newlines and tabs":  {"o\r\n", "gh\t", "line1\nline2\r", 4},
		"invalid UTF-8":      {"o\xff", "gh", "\xc3(", 5},
		"control characters": {"o\x00", "gh", "\x01\x1f", 6},
		"a media_id":         {"o", "gh", "HIFbTu-MDPCEBXvcSL9Ph5lRXa6HbO4ksApqsD4VUag", 7},
		"a URL":              {"o", "gh", "https://shop.example.com/welcome?from=qr&x=]]>#top", 8},
	} {
		t.Run(name, func(t *testing.T) { checkReplies(t, tc.to, tc.from, tc.text, tc.now) })
	}
}

// TestReplyShapes pins each reply to WeChat's documented XML (docs/wechat-platform.md §5, §10),
// written out by hand rather than by either builder.
func TestReplyShapes(t *testing.T) {
	m := &Message{FromUserName: "oUser", ToUserName: "gh_account"}
	const head = "<xml><ToUserName><![CDATA[oUser]]></ToUserName><FromUserName><![CDATA[gh_account]]></FromUserName><CreateTime>1700000000</CreateTime>"
	for name, tc := range map[string]struct{ got, want string }{
		"text": {string(AppendTextReply(nil, m, "你好", 1700000000)),
			head + "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[你好]]></Content></xml>"},
		"image": {string(AppendImageReply(nil, m, "media_id", 1700000000)),
			head + "<MsgType><![CDATA[image]]></MsgType><Image><MediaId><![CDATA[media_id]]></MediaId></Image></xml>"},
		"news": {string(AppendNewsReply(nil, m, Article{Title: "title1", Description: "description1", PicURL: "picurl", URL: "url"}, 1700000000)),
			head + "<MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item><Title><![CDATA[title1]]></Title>" +
				"<Description><![CDATA[description1]]></Description><PicUrl><![CDATA[picurl]]></PicUrl><Url><![CDATA[url]]></Url></item></Articles></xml>"},
		"news without picture": {string(AppendNewsReply(nil, m, Article{Title: "t", URL: "u"}, 1700000000)),
			head + "<MsgType><![CDATA[news]]></MsgType><ArticleCount>1</ArticleCount><Articles><item><Title><![CDATA[t]]></Title>" +
				"<Description></Description><PicUrl></PicUrl><Url><![CDATA[u]]></Url></item></Articles></xml>"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s\n got %s\nwant %s", name, tc.got, tc.want)
		}
	}
}

func FuzzReplies(f *testing.F) {
	f.Add("oUser", "gh_account", "thanks ]]> <b>&amp;</b>", int64(1700000000))
	f.Add("]]>", "]]", "]]]>>", int64(-1))
	f.Add("", "\xff", "\x00\r\n", int64(0))
	f.Fuzz(checkReplies)
}
