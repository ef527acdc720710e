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

package main

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/pushconfig"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/scheme"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/wxcrypto"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// naiveCommand runs this binary as the naive handler, the baseline of the callback benchmark: a
// process of its own, like the callback server it is compared with.
const naiveCommand = "naive-callback"

// naive is the push handler anyone would write first: verify, decrypt, then one read-modify-write
// of the code's annotations per event (a read, and a patch carrying the resourceVersion it was
// computed from, retried on conflict), without batching and without deduplication. It errs in
// the baseline's favour twice: the writes of one code are serialized within the process, so that
// concurrent pushes of a hot code queue instead of failing each other with conflicts, and
// attribution is a map built at startup, cheaper than the real server's cache index.
type naive struct {
	c      client.Client
	appID  string
	token  string
	cipher *wxcrypto.Cipher
	codes  map[string]types.NamespacedName

	mu    sync.Mutex
	turns map[types.NamespacedName]chan struct{}
}

// turn is code's write token: whoever holds it may read-modify-write the code.
func (n *naive) turn(code types.NamespacedName) chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	t, ok := n.turns[code]
	if !ok {
		t = make(chan struct{}, 1)
		n.turns[code] = t
	}
	return t
}

func naiveMain(args []string) error {
	fs := flag.NewFlagSet(naiveCommand, flag.ContinueOnError)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig")
	namespace := fs.String("namespace", "", "namespace of the push config Secret; its one account is served")
	listen := fs.String("listen", "127.0.0.1:0", "address to serve pushes and /readyz on")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", *kubeconfig)
	if err != nil {
		return err
	}
	// No client-side rate limit, as controller-runtime configures the callback server.
	cfg.QPS = -1
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	ctx := context.Background()
	n, err := newNaive(ctx, c, *namespace)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(http.ResponseWriter, *http.Request) {})
	mux.Handle("/wechat/"+n.appID, n)
	return (&http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 2 * time.Second}).ListenAndServe()
}

func newNaive(ctx context.Context, c client.Client, ns string) (*naive, error) {
	secret := &corev1.Secret{}
	if err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: pushconfig.SecretName}, secret); err != nil {
		return nil, err
	}
	accounts, problems := pushconfig.Decode(secret.Data)
	if len(problems) > 0 || len(accounts) != 1 {
		return nil, fmt.Errorf("push config in %s: want one valid account, got %d (%v)", ns, len(accounts), errors.Join(problems...))
	}
	acct, err := accounts[0].Credentials()
	if err != nil {
		return nil, err
	}
	ciphers, err := acct.Ciphers()
	if err != nil {
		return nil, err
	}
	if len(ciphers) == 0 {
		return nil, fmt.Errorf("push config in %s: no %s, and the benchmark pushes in safe mode", ns, qrv1alpha1.AccountKeyEncodingAESKey)
	}
	n := &naive{
		c: c, appID: acct.AppID, token: acct.Token, cipher: ciphers[0],
		codes: map[string]types.NamespacedName{}, turns: map[types.NamespacedName]chan struct{}{},
	}
	var list qrv1alpha1.WeChatQRCodeList
	if err := c.List(ctx, &list); err != nil {
		return nil, err
	}
	for i := range list.Items {
		n.codes[list.Items[i].Status.Ticket] = harness.Key(&list.Items[i])
	}
	return n, nil
}

func (n *naive) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ts, nonce := q.Get("timestamp"), q.Get("nonce")
	if !wxcrypto.VerifySignature(q.Get("signature"), n.token, ts, nonce) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	var envelope struct {
		Encrypt string `xml:"Encrypt"`
	}
	if xml.Unmarshal(body, &envelope) != nil || !wxcrypto.VerifySignature(q.Get("msg_signature"), n.token, ts, nonce, envelope.Encrypt) {
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	plain, err := n.cipher.Decrypt(envelope.Encrypt)
	var m struct {
		Event  string `xml:"Event"`
		Ticket string `xml:"Ticket"`
	}
	if err != nil || xml.Unmarshal(plain, &m) != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	if key, ok := n.codes[m.Ticket]; ok {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		if err := n.count(ctx, key, m.Event == "subscribe"); err != nil {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
	}
	_, _ = io.WriteString(w, "success")
}

// count adds one scan with a merge patch that carries the resourceVersion it was computed from,
// re-reading and retrying after a conflict.
func (n *naive) count(ctx context.Context, key types.NamespacedName, subscribe bool) error {
	turn := n.turn(key)
	select {
	case turn <- struct{}{}:
		defer func() { <-turn }()
	case <-ctx.Done():
		return ctx.Err()
	}
	for {
		code := &qrv1alpha1.WeChatQRCode{}
		if err := n.c.Get(ctx, key, code); err != nil {
			return err
		}
		scans, subscribes := harness.Scans(code)
		scans++
		if subscribe {
			subscribes++
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
			"resourceVersion": code.ResourceVersion,
			"annotations": map[string]string{
				qrv1alpha1.AnnotationScans:      strconv.FormatInt(scans, 10),
				qrv1alpha1.AnnotationSubscribes: strconv.FormatInt(subscribes, 10),
			},
		}})
		err := n.c.Patch(ctx, code, client.RawPatch(types.MergePatchType, patch))
		if !apierrors.IsConflict(err) {
			return err
		}
	}
}
