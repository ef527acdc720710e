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

package pushconfig

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const aesKey = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"

func TestRoundTrip(t *testing.T) {
	in := []Account{
		{Ref: Ref{Kind: "WeChatAccount", Namespace: "shop", Name: "main"}, AppID: "wx1", Token: "tok1", EncodingAESKey: aesKey,
			ForwardURL: "http://app.shop.svc:80/wx", ForwardTimeout: 3 * time.Second, SinkURI: "http://sink.shop.svc/", SinkMaxEvents: 100},
		{Ref: Ref{Kind: "ClusterWeChatAccount", Name: "brand"}, AppID: "wx2", Token: "tok2"},
	}
	data, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, problems := Decode(data)
	if len(problems) != 0 {
		t.Fatalf("problems: %v", problems)
	}
	if fmt.Sprint(out) != fmt.Sprint(in) || out[0].ForwardTimeout != 3*time.Second || out[1].Token != "tok2" {
		t.Fatalf("round trip: got %#v", out)
	}
}

func TestEncodeRefusesDuplicateAppID(t *testing.T) {
	a := Account{AppID: "wx1", Token: "t"}
	if _, err := Encode([]Account{a, a}); err == nil {
		t.Fatal("two entries with one AppID were encoded")
	}
}

func TestDecodeSkipsBadEntriesWithoutValues(t *testing.T) {
	good, _ := Encode([]Account{{AppID: "wxgood", Token: "secret-token"}})
	data := map[string][]byte{
		"wxgood":   good["wxgood"],
		"wxjunk":   []byte("secret-token{"),
		"wxother":  good["wxgood"],
		"wxnotok":  []byte(`{"appID":"wxnotok","encodingAESKey":"secret-token"}`),
		"wxbadkey": []byte(`{"appID":"wxbadkey","token":"t","encodingAESKey":"secret-token"}`),
	}
	out, problems := Decode(data)
	if len(out) != 1 || out[0].AppID != "wxgood" {
		t.Fatalf("served %v, want only wxgood", out)
	}
	if len(problems) != 4 {
		t.Fatalf("problems %v, want 4", problems)
	}
	for _, p := range problems {
		if strings.Contains(p.Error(), "secret-token") {
			t.Errorf("problem shows a value: %v", p)
		}
	}
	if s := fmt.Sprintf("%v %#v", out[0], out[0]); strings.Contains(s, "secret-token") {
		t.Errorf("formatting shows a value: %s", s)
	}
}

func TestTaggingBesideAccounts(t *testing.T) {
	data, _ := Encode([]Account{{AppID: "wx1", Token: "t"}})
	if got, err := DecodeTagging(data); got != nil || err != nil {
		t.Fatalf("no endpoint published: got %v, %v", got, err)
	}
	data[TaggingKey] = []byte(`{"url":"https://10.0.0.7:9445/tagging","ca":"-----BEGIN CERTIFICATE-----"}`)
	accounts, problems := Decode(data)
	if len(accounts) != 1 || len(problems) != 0 {
		t.Fatalf("the endpoint's key read as an account: %v, %v", accounts, problems)
	}
	got, err := DecodeTagging(data)
	if err != nil || got.URL != "https://10.0.0.7:9445/tagging" {
		t.Fatalf("DecodeTagging: %v, %v", got, err)
	}
	data[TaggingKey] = []byte(`{"url":"https://10.0.0.7:9445/tagging"}`)
	if _, err := DecodeTagging(data); err == nil {
		t.Fatal("an endpoint without its CA was taken: the callback server could not verify it")
	}
}
