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

// Package qrimage draws a QR code's content — a WeChatQRCode's status.url — locally: in a
// terminal with Unicode half blocks, as a PNG, or as an SVG. Nothing is fetched from WeChat: the
// URL is all a QR code carries, so any encoder gives an image every WeChat client reads.
//
// Every rendering keeps whole modules (no resampling, so no grey edges) and a quiet zone of
// light modules around the symbol, which camera decoders need to find it.
package qrimage
