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
	"strconv"
	"testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxreply"
)

// checkReplies compares both builders with wxreply, the encoding/xml builders that made the
// replies before AppendTextReply and appendEnvelope, on the same fields.
func checkReplies(t *testing.T, to, from, text string, now int64) {
	t.Helper()
	m := &Message{FromUserName: to, ToUserName: from}
	want, err := wxreply.MarshalText(to, from, text, now)
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendTextReply(nil, m, text, now); string(got) != string(want) {
		t.Fatalf("text reply\n got %q\nwant %q", got, want)
	}
	// The envelope's fields are base64, hex and rand.Text in production; any text must match.
	ts := strconv.FormatInt(now, 10)
	if want, err = wxreply.MarshalEnvelope(text, to, ts, from); err != nil {
		t.Fatal(err)
	}
	if got := appendEnvelope(nil, text, to, ts, from); string(got) != string(want) {
		t.Fatalf("envelope\n got %q\nwant %q", got, want)
	}
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
	} {
		t.Run(name, func(t *testing.T) { checkReplies(t, tc.to, tc.from, tc.text, tc.now) })
	}
}

func FuzzReplies(f *testing.F) {
	f.Add("oUser", "gh_account", "thanks ]]> <b>&amp;</b>", int64(1700000000))
	f.Add("]]>", "]]", "]]]>>", int64(-1))
	f.Add("", "\xff", "\x00\r\n", int64(0))
	f.Fuzz(checkReplies)
}
