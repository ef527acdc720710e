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

// Command peer is the push handler of silenceper/wechat, the Go SDK most used for WeChat Official
// Accounts, as its README sets it up: the peer of the callback server in the push CPU benchmark
// (`go run ./test/bench -only peer`). It lives in a module of its own so that the SDK stays out of
// the operator's go.mod. Like the callback server it verifies the signatures, decrypts a
// safe-mode push, parses the message and answers "success"; it counts nothing.
//
// The account comes from the environment (PEER_APP_ID, PEER_TOKEN, PEER_ENCODING_AES_KEY), never
// from the command line, which any user of the machine can read.
package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"

	"github.com/silenceper/wechat/v2"
	"github.com/silenceper/wechat/v2/cache"
	"github.com/silenceper/wechat/v2/officialaccount"
	"github.com/silenceper/wechat/v2/officialaccount/config"
	"github.com/silenceper/wechat/v2/officialaccount/message"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8090", "address to serve pushes on (any path), and /readyz")
	flag.Parse()
	account := wechat.NewWechat().GetOfficialAccount(&config.Config{
		AppID:          os.Getenv("PEER_APP_ID"),
		Token:          os.Getenv("PEER_TOKEN"),
		EncodingAESKey: os.Getenv("PEER_ENCODING_AES_KEY"),
		Cache:          cache.NewMemory(),
	})
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	mux.Handle("/", handler{account})
	if err := http.ListenAndServe(*listen, mux); err != nil {
		fmt.Fprintln(os.Stderr, "peer:", err)
		os.Exit(1)
	}
}

type handler struct {
	account *officialaccount.OfficialAccount
}

func (h handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	srv := h.account.GetServer(r, w)
	srv.SetMessageHandler(func(*message.MixMessage) *message.Reply { return nil })
	if err := srv.Serve(); err != nil {
		http.Error(w, http.StatusText(http.StatusBadRequest), http.StatusBadRequest)
		return
	}
	// In safe mode the SDK would answer a nil reply with an encrypted empty message; the callback
	// server answers "success", and so does the peer, so that both do the same work.
	if r.Method == http.MethodPost {
		_, _ = io.WriteString(w, "success")
	}
}
