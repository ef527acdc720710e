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

package qrimage

import (
	"bufio"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"strconv"
	"sync"

	"golang.org/x/image/font"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/image/font/opentype"
	"golang.org/x/image/math/fixed"
	"golang.org/x/text/width"
)

// Options shape an image file.
type Options struct {
	// Size is the image's width: pixels of a PNG, the width attribute of an SVG. A PNG's modules
	// are whole pixels, the largest that fit; what is left over widens the quiet zone.
	Size int
	// Margin is the quiet zone in modules.
	Margin int
	// Caption, when not empty, is a line of text under the code.
	Caption string
}

// side checks o and returns the side of the symbol and its quiet zone, in modules.
func (o Options) side(c *Code) (int, error) {
	if err := checkMargin(o.Margin); err != nil {
		return 0, err
	}
	if o.Size < 1 {
		return 0, fmt.Errorf("the size must be positive (got %d)", o.Size)
	}
	return c.Size() + 2*o.Margin, nil
}

// captionEm is the caption's largest font size, in modules: large enough to read at the
// distance the code is scanned from.
const captionEm = 2.0

// WriteSVG writes the code as an SVG whose user unit is one module: one crisp-edged rectangle
// per horizontal run of dark modules, so it prints sharp at any size. A caption is an SVG text
// element, drawn with the viewer's fonts, so any script works.
func (c *Code) WriteSVG(w io.Writer, o Options) error {
	side, err := o.side(c)
	if err != nil {
		return err
	}
	var em, band float64
	if o.Caption != "" {
		// The viewer's font is unknown: the estimate takes a Latin glyph as 0.6 em and a CJK
		// one as 1 em, which fits common sans-serif fonts.
		em = min(captionEm, float64(side-2*o.Margin)/estimateEms(o.Caption))
		band = em * 1.75
	}
	height := float64(side) + band
	b := bufio.NewWriter(w)
	fmt.Fprintf(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%s" viewBox="0 0 %d %s" shape-rendering="crispEdges">`+"\n",
		o.Size, num(float64(o.Size)*height/float64(side)), side, num(height))
	fmt.Fprintf(b, `<rect width="%d" height="%s" fill="#fff"/>`+"\n"+`<g fill="#000">`+"\n", side, num(height))
	for y := range side {
		for x := 0; x < side; {
			if !c.dark(x, y, o.Margin) {
				x++
				continue
			}
			start := x
			for x < side && c.dark(x, y, o.Margin) {
				x++
			}
			fmt.Fprintf(b, `<rect x="%d" y="%d" width="%d" height="1"/>`+"\n", start, y, x-start)
		}
	}
	b.WriteString("</g>\n")
	if o.Caption != "" {
		fmt.Fprintf(b, `<text x="%s" y="%s" font-family="sans-serif" font-size="%s" text-anchor="middle" fill="#000">`,
			num(float64(side)/2), num(float64(side)+em*1.25), num(em))
		if err := xml.EscapeText(b, []byte(o.Caption)); err != nil {
			return err
		}
		b.WriteString("</text>\n")
	}
	b.WriteString("</svg>\n")
	return b.Flush()
}

func estimateEms(s string) float64 {
	var ems float64
	for _, r := range s {
		switch width.LookupRune(r).Kind() {
		case width.EastAsianWide, width.EastAsianFullwidth:
			ems++
		default:
			ems += 0.6
		}
	}
	return ems
}

// num writes a length with at most three decimals, and none when it is whole.
func num(f float64) string {
	return strconv.FormatFloat(math.Round(f*1000)/1000, 'f', -1, 64)
}

// WritePNG writes the code as a greyscale PNG Size pixels wide, its modules whole squares of
// pixels. A caption is drawn in Go Regular, which covers Latin, Greek and Cyrillic but no CJK: a
// caption with a character the font lacks is refused rather than printed as empty boxes (an
// SVG's caption has no such limit).
func (c *Code) WritePNG(w io.Writer, o Options) error {
	side, err := o.side(c)
	if err != nil {
		return err
	}
	px := o.Size / side
	if px < 1 {
		return fmt.Errorf("a size of %d pixels is too small for this code: it needs at least %d (%d modules with the margin)", o.Size, side, side)
	}
	offset := (o.Size - px*side) / 2
	var face font.Face
	band := 0
	if o.Caption != "" {
		if face, err = captionFace(o.Caption, px, px*(side-2*o.Margin)); err != nil {
			return err
		}
		defer face.Close()
		band = face.Metrics().Height.Ceil() * 7 / 4
	}
	img := image.NewGray(image.Rect(0, 0, o.Size, o.Size+band))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	for y := range side {
		for x := range side {
			if c.dark(x, y, o.Margin) {
				r := image.Rect(offset+x*px, offset+y*px, offset+(x+1)*px, offset+(y+1)*px)
				draw.Draw(img, r, image.Black, image.Point{}, draw.Src)
			}
		}
	}
	if face != nil {
		d := font.Drawer{Dst: img, Src: image.NewUniform(color.Black), Face: face}
		m := face.Metrics()
		d.Dot = fixed.Point26_6{
			X: (fixed.I(o.Size) - d.MeasureString(o.Caption)) / 2,
			Y: fixed.I(o.Size) + m.Height/4 + m.Ascent,
		}
		d.DrawString(o.Caption)
	}
	return png.Encode(w, img)
}

var goRegular = sync.OnceValues(func() (*opentype.Font, error) { return opentype.Parse(goregular.TTF) })

// minCaptionPixels is the smallest caption font size, in pixels, still legible on paper.
const minCaptionPixels = 8

// captionFace is the largest Go Regular face, up to captionEm modules, in which caption fits
// within maxWidth pixels.
func captionFace(caption string, px, maxWidth int) (font.Face, error) {
	f, err := goRegular()
	if err != nil {
		return nil, err
	}
	for size := captionEm * float64(px); size >= minCaptionPixels; size *= 0.9 {
		face, err := opentype.NewFace(f, &opentype.FaceOptions{Size: size, DPI: 72, Hinting: font.HintingFull})
		if err != nil {
			return nil, err
		}
		for _, r := range caption {
			if _, ok := face.GlyphAdvance(r); !ok {
				face.Close()
				return nil, fmt.Errorf("the PNG caption font (Go Regular) has no glyph for %q: write an SVG, whose caption uses the viewer's fonts", r)
			}
		}
		if font.MeasureString(face, caption).Ceil() <= maxWidth {
			return face, nil
		}
		face.Close()
	}
	return nil, fmt.Errorf("the caption %q does not fit under the code at a legible size: shorten it or raise the size", caption)
}
