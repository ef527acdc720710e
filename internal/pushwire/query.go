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
	"net/url"
	"slices"
	"strings"
)

// Query is what the callback server reads of a push's URL query (docs/wechat-platform.md §5):
// the URL signature and what it covers, the encryption mode and msg_signature, and the echo of
// the URL verification.
type Query struct {
	Timestamp    string
	Nonce        string
	Signature    string
	EncryptType  string
	MsgSignature string
	EchoStr      string
}

// queryParams are the parameters a Query holds, in the order of its fields.
var queryParams = [...]string{"timestamp", "nonce", "signature", "encrypt_type", "msg_signature", "echostr"}

func (q *Query) fields() [len(queryParams)]*string {
	return [...]*string{&q.Timestamp, &q.Nonce, &q.Signature, &q.EncryptType, &q.MsgSignature, &q.EchoStr}
}

// maxScannedParams is the most parameters ParseQuery reads itself; WeChat sends at most seven.
const maxScannedParams = 16

// ParseQuery reads a raw query as url.ParseQuery and Values.Get would (FuzzQuery holds it to
// that): the first well-formed value of each parameter. The map of every parameter that
// url.ParseQuery builds cost about a tenth of a push's handling; a query longer than WeChat's is
// left to url.ParseQuery, which also enforces net/url's limit on the number of parameters.
func ParseQuery(raw string) Query {
	var q Query
	fields := q.fields()
	if strings.Count(raw, "&") >= maxScannedParams {
		v, _ := url.ParseQuery(raw)
		for i, name := range queryParams {
			*fields[i] = v.Get(name)
		}
		return q
	}
	var seen [len(queryParams)]bool
	for raw != "" {
		var pair string
		pair, raw, _ = strings.Cut(raw, "&")
		if pair == "" || strings.Contains(pair, ";") {
			continue
		}
		name, value, _ := strings.Cut(pair, "=")
		name, err := url.QueryUnescape(name)
		if err != nil {
			continue
		}
		i := slices.Index(queryParams[:], name)
		if i < 0 || seen[i] {
			continue
		}
		if value, err = url.QueryUnescape(value); err != nil {
			continue
		}
		*fields[i], seen[i] = value, true
	}
	return q
}
