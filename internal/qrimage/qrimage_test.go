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

package qrimage_test

import (
	"bytes"
	"encoding/xml"
	"image/png"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/qrimage"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/qrimage/qrimagetest"
)

// contents: a URL shaped like WeChat's, and a long one that needs a larger symbol.
var contents = []string{
	"http://weixin.qq.com/q/02Xk3bQ9qXc1D10000w07j",
	"https://example.com/a/very/long/path/that/makes/the/symbol/grow?with=query&and=more&even=more&x=1234567890",
}

func encode(t *testing.T, content string) *qrimage.Code {
	t.Helper()
	c, err := qrimage.Encode(content)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestEveryRenderingDecodesToTheContent(t *testing.T) {
	for _, content := range contents {
		c := encode(t, content)
		renderings := map[string]func() (string, error){
			"terminal": func() (string, error) {
				var b bytes.Buffer
				if err := c.WriteTerminal(&b, qrimage.DefaultMargin, false); err != nil {
					return "", err
				}
				return qrimagetest.DecodeTerminal(b.String(), true)
			},
			"terminal, colours, margin 1": func() (string, error) {
				var b bytes.Buffer
				if err := c.WriteTerminal(&b, 1, true); err != nil {
					return "", err
				}
				return qrimagetest.DecodeTerminal(b.String(), true)
			},
			"png": func() (string, error) {
				var b bytes.Buffer
				if err := c.WritePNG(&b, qrimage.Options{Size: 300, Margin: qrimage.DefaultMargin}); err != nil {
					return "", err
				}
				return qrimagetest.DecodePNG(&b)
			},
			"png with caption": func() (string, error) {
				var b bytes.Buffer
				if err := c.WritePNG(&b, qrimage.Options{Size: 1024, Margin: 2, Caption: "Scan for the spring sale"}); err != nil {
					return "", err
				}
				return qrimagetest.DecodePNG(&b)
			},
			"svg with caption": func() (string, error) {
				var b bytes.Buffer
				if err := c.WriteSVG(&b, qrimage.Options{Size: 500, Margin: qrimage.DefaultMargin, Caption: "欢迎参加春季促销"}); err != nil {
					return "", err
				}
				return qrimagetest.DecodeSVG(&b)
			},
		}
		for name, decode := range renderings {
			got, err := decode()
			if err != nil {
				t.Errorf("%s of %q: %v", name, content, err)
			} else if got != content {
				t.Errorf("%s decodes to %q, want %q", name, got, content)
			}
		}
	}
}

func TestTerminalIsOneCellPerModuleAndTwoRows(t *testing.T) {
	c := encode(t, contents[0])
	side := c.Size() + 2*qrimage.DefaultMargin
	var b bytes.Buffer
	if err := c.WriteTerminal(&b, qrimage.DefaultMargin, false); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
	if len(lines) != (side+1)/2 {
		t.Errorf("%d lines for %d module rows, want %d", len(lines), side, (side+1)/2)
	}
	for i, l := range lines {
		if n := utf8.RuneCountInString(l); n != side {
			t.Fatalf("line %d has %d cells, want %d", i, n, side)
		}
	}
	if strings.Contains(b.String(), "\x1b") {
		t.Error("colour escapes without colour")
	}
	if strings.Trim(lines[0], "█") != "" {
		t.Errorf("first line %q is not all quiet zone (light ink)", lines[0])
	}
}

func TestPNGModulesAreWholePixels(t *testing.T) {
	c := encode(t, contents[0])
	const size = 1000
	var b bytes.Buffer
	if err := c.WritePNG(&b, qrimage.Options{Size: size, Margin: qrimage.DefaultMargin}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if got := img.Bounds(); got.Dx() != size || got.Dy() != size {
		t.Fatalf("image is %v, want %dx%d", got, size, size)
	}
	for y := range size {
		for x := range size {
			if r, _, _, _ := img.At(x, y).RGBA(); r != 0 && r != 0xffff {
				t.Fatalf("pixel (%d,%d) is grey (%#x): modules must be whole pixels", x, y, r)
			}
		}
	}
}

func TestPNGCaptionAddsABandBelow(t *testing.T) {
	c := encode(t, contents[0])
	var b bytes.Buffer
	if err := c.WritePNG(&b, qrimage.Options{Size: 600, Margin: qrimage.DefaultMargin, Caption: "booth 17"}); err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(&b)
	if err != nil {
		t.Fatal(err)
	}
	if img.Bounds().Dx() != 600 || img.Bounds().Dy() <= 600 {
		t.Fatalf("captioned image is %v, want 600 wide and taller than 600", img.Bounds())
	}
	inked := 0
	for y := 600; y < img.Bounds().Dy(); y++ {
		for x := range 600 {
			if r, _, _, _ := img.At(x, y).RGBA(); r < 0x8000 {
				inked++
			}
		}
	}
	if inked == 0 {
		t.Error("the caption band has no ink")
	}
}

func TestPNGRefusals(t *testing.T) {
	c := encode(t, contents[0])
	for name, tc := range map[string]struct {
		o    qrimage.Options
		want string
	}{
		"too small":          {qrimage.Options{Size: 20, Margin: 4}, "too small"},
		"negative margin":    {qrimage.Options{Size: 500, Margin: -1}, "must not be negative"},
		"glyph not in font":  {qrimage.Options{Size: 500, Margin: 4, Caption: "欢迎"}, "write an SVG"},
		"caption never fits": {qrimage.Options{Size: 100, Margin: 4, Caption: strings.Repeat("long ", 40)}, "does not fit"},
	} {
		var b bytes.Buffer
		err := c.WritePNG(&b, tc.o)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", name, err, tc.want)
		}
	}
}

func TestSVGCaptionIsEscapedText(t *testing.T) {
	c := encode(t, contents[0])
	const caption = `<b>扫码 & "win"</b>`
	var b bytes.Buffer
	if err := c.WriteSVG(&b, qrimage.Options{Size: 800, Margin: qrimage.DefaultMargin, Caption: caption}); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Width string `xml:"width,attr"`
		Text  string `xml:"text"`
	}
	if err := xml.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatalf("not XML: %v", err)
	}
	if doc.Text != caption || doc.Width != "800" {
		t.Errorf("text %q, width %q; want %q, 800", doc.Text, doc.Width, caption)
	}
}
