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

// Package callback is the server WeChat pushes events to when someone scans a parametric QR code:
// it verifies the push, attributes it to a WeChatQRCode, records it in the scan ledger (whose
// fold counts it exactly once in the code's annotations) and answers WeChat, with the code's
// passive reply when it has one.
//
// # Accounts and paths
//
// The server serves every WeChatAccount and ClusterWeChatAccount. It never reads their Secrets
// (which hold the AppSecret): the manager projects the push material of every account (token,
// encodingAESKey, previousEncodingAESKey, where pushes go on to) into one Secret in the operator's
// namespace, package pushconfig's contract, and the server watches that Secret alone, with a
// metadata.name field selector that its Role's resourceNames allows (keyring.go). An account the
// manager adds is served within a watch event; while the API server is unreachable the last
// Secret seen is served. An account that leaves the Secret (or goes with it) is served with its
// last keys for --account-grace more (default 10m; 0: not at all): one deleted and created again,
// by a GitOps prune and re-sync or kubectl replace --force, has its pushes counted meanwhile
// instead of refused while WeChat's three tries about 5 s apart run out. Back in the Secret, it
// is served with its new keys at once. An entry that does not decode is logged by its AppID and
// not served (but for the grace of its last good keys). Any other AppID answers 404. Each
// account has its own path, /wechat/<appID>, which is what goes into the account's "server URL"
// setting: the path picks the token that the signature must match, so one account's token can
// never authenticate a push for another.
//
// An account whose Secret has an encodingAESKey accepts only encrypted pushes (safe or
// compatible mode), because in plaintext mode WeChat's signature covers the query, not the body:
// anyone who has seen one push URL (an access log is enough) could post any body under it until
// the timestamp goes stale. Leave encodingAESKey out of the Secret of a plaintext-mode account.
// previousEncodingAESKey is tried when the current key fails, as WeChat advises for rotation;
// replies are encrypted with the key the push was encrypted with.
//
// # Refusals
//
// Every request is hostile until its signature says otherwise. In order: unknown path (404),
// method (405), missing parameters (400), timestamp outside ±--max-clock-skew of our clock (403;
// default 5m, which bounds how long a captured URL can be replayed and tolerates ordinary clock
// drift; WeChat's own retries come within seconds), signature compared in constant time (403),
// body over --max-body-bytes (413), then for encrypted pushes msg_signature over the Encrypt
// element (403), decryption with the current then the previous key, including the AppID check
// (400), and finally the XML (400). A refusal counts nothing, is logged without the token, key or
// signature, and is counted in wechat_qrcode_operator_callback_refusals_total by reason.
//
// # What the accounts show
//
// Each push verified or refused is noted in this replica's push stats, in memory, which it
// writes into its own WeChatPushRecord; the replica that folds sums the records of every replica
// into each account's status.callback (package pushrecord). A push to an unknown AppID has no
// account: the metric alone counts it.
//
// # Attribution
//
// A subscribe event whose EventKey is qrscene_<scene> and a SCAN event whose EventKey is <scene>
// are scans. They carry the ticket of the scanned code, looked up in an index of the informer over
// status.ticket and status.previousTickets[].ticket keyed with status.issuedFor.appID, across all
// namespaces; without a ticket the scene (issuedFor.appID + Scene.Key()) is looked up instead.
// A ticket that is one code's current ticket and another's previous one (a permanent scene that
// moved from one code to the other: WeChat answers the same ticket for it) is the current
// holder's. Anything else (unsubscribe, a subscribe without EventKey, messages, scans matching no
// code, or several alike) is acknowledged with "success" and only counted in
// wechat_qrcode_operator_callback_events_total.
//
// # Counting, durably and exactly once
//
// A scan is acknowledged only after it is durable in the API server: appended to this replica's
// current WeChatScanLedger segment in the server's own namespace, one write per --commit-window
// for all the replica's scans, more (at most 4) only when a full segment's worth waits
// (package ledger). If that fails or does not finish within --reply-deadline (default 3s, well
// inside WeChat's 5 s), the answer is a 503 and WeChat retries. Appending a retry again is
// harmless: counting is the folder's business. A write's scans are stored as one string, an
// entry a line (api/v1alpha1 FormatLedgerBatch), because the API server pays per object field of
// what it stores, on every append (package ledger has the figures).
//
// The folder (package fold), elected among the replicas by a Lease, counts each event once per
// code across every replica's segments into the codes' totals and their count annotations, and
// deletes the segments it is done with once the dedupe window has passed: a retry within the
// window of its original counts once, at any rate, wherever it lands.
//
// The ledger writer also remembers the keys it recently made durable and the ones it is writing,
// so a retry of an event it handled is answered without another write, and a retry arriving
// while the original is being written waits for that write.
//
// # Replies
//
// A scan of a code with spec.reply is answered with a text message (passive reply), encrypted and
// signed when the push was encrypted, also for a retry of an event already counted (WeChat retries
// because the first answer did not reach it). Everything else is answered "success", unless the
// account has an application behind it.
//
// # Gateway
//
// An account has one server URL, so the server is also the gateway to the account's own
// application (spec.forward, resolved by the manager into the projected account): every verified
// push it does not answer itself (not the URL verification, not the scan of a code with a reply,
// never a refused push) is sent on unchanged, query and body, so the application's WeChat SDK
// verifies and decrypts it as if WeChat had called it, and its answer is relayed as it is
// (package forward). A scan is counted while it is forwarded, and an application that does not
// answer within the account's forward timeout gets WeChat "success": the count never waits for
// it.
//
// Each counted scan is also a CloudEvent for the account's sink and the code's: the ledger is
// the events' outbox, and the deliverer (package delivery), elected by a Lease of its own, sends
// them after the scan is durable, with retries, recording its offsets in the segments: a sink
// never fails nor delays a push, and a dead one holds up no other.
//
// # The parts
//
// This package is the push path and the assembly of a replica (manager.go): the keyring, the
// refusals, classify and attribute, the answer. It composes package ledger (the writes),
// pushrecord (what the accounts show), forward (the account's application), and the two elected
// loops, fold and delivery, each a runnable of its own with its own options under its own Lease
// (package election).
package callback
