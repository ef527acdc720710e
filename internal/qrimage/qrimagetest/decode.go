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

// Package qrimagetest reads QR codes back from the renderings of package qrimage with an
// independent QR reader (gozxing, a port of ZXing), so that tests prove a phone's decoder would
// get the URL, not merely that the renderer ran. Each rendering is turned into a bitmap by
// reading its format (PNG pixels, SVG rectangles, terminal glyphs), not the renderer's internals.
package qrimagetest

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/makiuchi-d/gozxing"
	gozxingqr "github.com/makiuchi-d/gozxing/qrcode"
)

// Decode reads the QR code in img.
func Decode(img image.Image) (string, error) {
	bmp, err := gozxing.NewBinaryBitmapFromImage(img)
	if err != nil {
		return "", err
	}
	res, err := gozxingqr.NewQRCodeReader().Decode(bmp, nil)
	if err != nil {
		return "", fmt.Errorf("no readable QR code: %w", err)
	}
	return res.GetText(), nil
}

// DecodePNG reads the QR code of a PNG.
func DecodePNG(r io.Reader) (string, error) {
	img, err := png.Decode(r)
	if err != nil {
		return "", err
	}
	return Decode(img)
}

// svgScale is how many pixels an SVG user unit becomes when rasterised.
const svgScale = 6

// RasterizeSVG draws the rectangles of an SVG (x, y, width, height, fill, the fill inherited from
// enclosing groups as SVG specifies, black by default) onto an image of its viewBox; other
// elements, text included, are left out.
func RasterizeSVG(r io.Reader) (image.Image, error) {
	dec := xml.NewDecoder(r)
	var img *image.Gray
	fills := []string{"#000"} // SVG's initial fill is black
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			a := attrs(t)
			fill := fills[len(fills)-1]
			if f, ok := a["fill"]; ok {
				fill = f
			}
			fills = append(fills, fill)
			switch t.Name.Local {
			case "svg":
				vb := strings.Fields(a["viewBox"])
				if len(vb) != 4 {
					return nil, fmt.Errorf("svg viewBox %q: want four numbers", a["viewBox"])
				}
				w, h := number(vb[2]), number(vb[3])
				img = image.NewGray(image.Rect(0, 0, int(w*svgScale), int(h*svgScale)))
			case "rect":
				if img == nil {
					return nil, fmt.Errorf("rect outside an svg element")
				}
				x, y := number(a["x"])*svgScale, number(a["y"])*svgScale
				rect := image.Rect(int(x), int(y), int(x+number(a["width"])*svgScale), int(y+number(a["height"])*svgScale))
				draw.Draw(img, rect, image.NewUniform(light(fill)), image.Point{}, draw.Src)
			}
		case xml.EndElement:
			fills = fills[:len(fills)-1]
		}
	}
	if img == nil {
		return nil, fmt.Errorf("no svg element")
	}
	return img, nil
}

func attrs(e xml.StartElement) map[string]string {
	m := map[string]string{}
	for _, a := range e.Attr {
		m[a.Name.Local] = a.Value
	}
	return m
}

func number(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// light maps a fill to white or black: white-ish names and hex colours are light.
func light(fill string) color.Gray {
	switch strings.ToLower(fill) {
	case "#fff", "#ffffff", "white":
		return color.Gray{Y: 255}
	}
	return color.Gray{}
}

// DecodeSVG rasterises an SVG and reads its QR code.
func DecodeSVG(r io.Reader) (string, error) {
	img, err := RasterizeSVG(r)
	if err != nil {
		return "", err
	}
	return Decode(img)
}

var sgr = regexp.MustCompile("\x1b\\[[0-9;]*m")

// halfBlockInk says which halves of a cell a glyph inks: upper, lower.
var halfBlockInk = map[rune][2]bool{' ': {false, false}, '▀': {true, false}, '▄': {false, true}, '█': {true, true}}

// terminalScale is how many pixels a module becomes when a terminal drawing is rasterised.
const terminalScale = 4

// RasterizeTerminal turns a half-block drawing into an image, one cell being one module wide and
// two tall. Ink is what the terminal's foreground colour shows: light when inkLight (a dark
// terminal, or the colours kubectl wechat sets), dark otherwise. Colour escapes are dropped, and
// lines with other characters than half blocks (a caption) are left out.
func RasterizeTerminal(text string, inkLight bool) (image.Image, error) {
	var rows [][]rune
	sc := bufio.NewScanner(strings.NewReader(sgr.ReplaceAllString(text, "")))
	for sc.Scan() {
		line := []rune(sc.Text())
		drawing := len(line) > 0
		for _, r := range line {
			_, ok := halfBlockInk[r]
			drawing = drawing && ok
		}
		if drawing {
			rows = append(rows, line)
		}
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("no half-block drawing in %q", text)
	}
	ink, paper := color.Gray{}, color.Gray{Y: 255}
	if inkLight {
		ink, paper = paper, ink
	}
	img := image.NewGray(image.Rect(0, 0, len(rows[0])*terminalScale, len(rows)*2*terminalScale))
	draw.Draw(img, img.Bounds(), image.NewUniform(paper), image.Point{}, draw.Src)
	for y, row := range rows {
		for x, r := range row {
			for half, inked := range halfBlockInk[r] {
				if inked {
					top := (2*y + half) * terminalScale
					draw.Draw(img, image.Rect(x*terminalScale, top, (x+1)*terminalScale, top+terminalScale), image.NewUniform(ink), image.Point{}, draw.Src)
				}
			}
		}
	}
	return img, nil
}

// DecodeTerminal rasterises a half-block drawing (see RasterizeTerminal) and reads its QR code.
func DecodeTerminal(text string, inkLight bool) (string, error) {
	img, err := RasterizeTerminal(text, inkLight)
	if err != nil {
		return "", err
	}
	return Decode(img)
}
