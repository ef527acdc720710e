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
	"fmt"

	qrcode "github.com/skip2/go-qrcode"
)

// DefaultMargin is the quiet zone the QR code standard (ISO/IEC 18004) asks for, in modules.
const DefaultMargin = 4

// Code is the modules of a QR symbol, quiet zone excluded.
type Code struct {
	modules [][]bool
}

// Encode encodes content at error correction level M (15% of the symbol may be lost), the level
// WeChat's own images use: a short URL stays a small symbol that a phone reads from across a room.
func Encode(content string) (*Code, error) {
	q, err := qrcode.New(content, qrcode.Medium)
	if err != nil {
		return nil, fmt.Errorf("encoding %q as a QR code: %w", content, err)
	}
	q.DisableBorder = true
	return &Code{modules: q.Bitmap()}, nil
}

// Size is the side of the symbol in modules, quiet zone excluded.
func (c *Code) Size() int { return len(c.modules) }

// dark reports whether the module at (x, y) of the symbol framed by margin light modules on
// every side is dark.
func (c *Code) dark(x, y, margin int) bool {
	x, y = x-margin, y-margin
	return y >= 0 && y < len(c.modules) && x >= 0 && x < len(c.modules) && c.modules[y][x]
}

func checkMargin(margin int) error {
	if margin < 0 {
		return fmt.Errorf("the margin must not be negative (got %d modules)", margin)
	}
	return nil
}
