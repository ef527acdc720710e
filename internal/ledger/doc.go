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

// Package ledger is the scan ledger: each replica of the callback server appends the scans it
// answers to WeChatScanLedger segments of its own (Writer), one write per commit window, and
// the elected fold and deliverer read the segments back entry by entry (Entries). A scan is
// durable once its append returned; counting it once is the fold's business (package fold),
// sending its event the deliverer's (package delivery).
package ledger
