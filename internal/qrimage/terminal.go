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
	"io"
)

// Terminal colours (SGR): bright white on black. The glyphs' ink is the light modules, so with
// these colours the code is dark-on-light whatever the terminal's theme; without them it is read
// on a dark background, the usual terminal.
const (
	sgrLightOnDark = "\x1b[97;40m"
	sgrReset       = "\x1b[0m"
)

// halfBlocks maps the light-ness of an upper and a lower module to the glyph that inks them.
var halfBlocks = [2][2]string{
	{" ", "▄"}, // upper dark: lower dark, lower light
	{"▀", "█"}, // upper light
}

// WriteTerminal draws the code with one character per module column and per two module rows,
// so that it keeps its square shape in a terminal's cells (about twice as tall as wide). The
// glyphs ink the light modules; colour sets the terminal's colours around each line.
func (c *Code) WriteTerminal(w io.Writer, margin int, colour bool) error {
	if err := checkMargin(margin); err != nil {
		return err
	}
	b := bufio.NewWriter(w)
	side := c.Size() + 2*margin
	for y := 0; y < side; y += 2 {
		if colour {
			b.WriteString(sgrLightOnDark)
		}
		for x := range side {
			// A last odd row gets a dark lower half: beyond the quiet zone nothing is drawn.
			lowerLight := y+1 < side && !c.dark(x, y+1, margin)
			b.WriteString(halfBlocks[b2i(!c.dark(x, y, margin))][b2i(lowerLight)])
		}
		if colour {
			b.WriteString(sgrReset)
		}
		b.WriteByte('\n')
	}
	return b.Flush()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
