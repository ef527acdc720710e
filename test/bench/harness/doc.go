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

// Package harness is what the benchmarks (test/bench) and the fault tests (test/fault) share:
// the real control plane of internal/testenv, the manager and the callback server run as real
// processes built from this tree (so that kill -9 and peak RSS mean what they mean in a Pod), the
// fake WeChat behind a recorder of every call's arrival time, and a push sender that signs and
// encrypts like WeChat and retries like it.
//
// It measures; it never judges. Whether a figure meets a goal is the caller's business, because
// the machine is shared and noisy: only ratios against a baseline taken in the same run mean
// anything.
package harness
