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

package wxcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

type vector struct {
	Token          string `json:"token"`
	EncodingAESKey string `json:"encodingAESKey"`
	AppID          string `json:"appID"`
	Timestamp      string `json:"timestamp"`
	Nonce          string `json:"nonce"`
	Message        string `json:"message"`
	Random         string `json:"random"`
	Encrypt        string `json:"encrypt"`
	MsgSignature   string `json:"msgSignature"`
	Signature      string `json:"signature"`
}

// loadVectors reads the vectors hack/wechat-crypto-vectors/generate.js wrote with the npm package
// wechat-crypto.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	raw, err := os.ReadFile("testdata/wechat-crypto-vectors.json")
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ Vectors []vector }
	if err := json.Unmarshal(raw, &f); err != nil {
		t.Fatal(err)
	}
	if len(f.Vectors) < 10 {
		t.Fatalf("only %d vectors", len(f.Vectors))
	}
	return f.Vectors
}

func mustCipher(t testing.TB, key, appID string) *Cipher {
	t.Helper()
	c, err := NewCipher(key, appID)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestWechatCryptoVectors checks both directions against wechat-crypto: we decrypt what it
// encrypted, and from the same random prefix we produce its ciphertext byte for byte (so it
// decrypts ours). Signatures of both kinds agree.
func TestWechatCryptoVectors(t *testing.T) {
	for _, v := range loadVectors(t) {
		c := mustCipher(t, v.EncodingAESKey, v.AppID)
		got, err := c.Decrypt(v.Encrypt)
		if err != nil {
			t.Fatalf("%s/%s: decrypting wechat-crypto's ciphertext: %v", v.AppID, v.Nonce, err)
		}
		if string(got) != v.Message {
			t.Fatalf("%s/%s: decrypted %q, want %q", v.AppID, v.Nonce, got, v.Message)
		}
		var random [randomPrefix]byte
		if b, err := hex.DecodeString(v.Random); err != nil || copy(random[:], b) != randomPrefix {
			t.Fatalf("bad random %q", v.Random)
		}
		enc, err := c.encrypt(random, []byte(v.Message))
		if err != nil {
			t.Fatal(err)
		}
		if enc != v.Encrypt {
			t.Fatalf("%s/%s: our ciphertext differs from wechat-crypto's:\n got %s\nwant %s", v.AppID, v.Nonce, enc, v.Encrypt)
		}
		if s := Signature(v.Token, v.Timestamp, v.Nonce, v.Encrypt); s != v.MsgSignature {
			t.Fatalf("msg_signature %s, want %s", s, v.MsgSignature)
		}
		if !VerifySignature(v.MsgSignature, v.Encrypt, v.Nonce, v.Token, v.Timestamp) {
			t.Fatal("msg_signature not verified with the parts in another order")
		}
		if !VerifySignature(v.Signature, v.Token, v.Timestamp, v.Nonce) {
			t.Fatal("URL signature not verified")
		}
	}
}

// TestWeChatSample is the push in WeChat's own WXBizMsgCrypt sample code, as published with it.
func TestWeChatSample(t *testing.T) {
	const (
		token     = "spamtest"
		timestamp = "1409735669"
		nonce     = "1320562132"
		msgSign   = "5d197aaffba7e9b25a30732f161a50dee96bd5fa"
		encrypt   = "hyzAe4OzmOMbd6TvGdIOO6uBmdJoD0Fk53REIHvxYtJlE2B655HuD0m8KUePWB3+LrPXo87wzQ1QLvbeUgmBM4x6F8PGHQHFVAFmOD2LdJF9FrXpbUAh0B5GIItb52sn896wVsMSHGuPE328HnRGBcrS7C41IzDWyWNlZkyyXwon8T332jisa+h6tEDYsVticbSnyU8dKOIbgU6ux5VTjg3yt+WGzjlpKn6NPhRjpA912xMezR4kw6KWwMrCVKSVCZciVGCgavjIQ6X8tCOp3yZbGpy0VxpAe+77TszTfRd5RJSVO/HTnifJpXgCSUdUue1v6h0EIBYYI1BD1DlD+C0CR8e6OewpusjZ4uBl9FyJvnhvQl+q5rv1ixrcpCumEPo5MJSgM9ehVsNPfUM669WuMyVWQLCzpu9GhglF2PE="
	)
	if !VerifySignature(msgSign, token, timestamp, nonce, encrypt) {
		t.Fatal("WeChat's sample msg_signature not verified")
	}
	c := mustCipher(t, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc2")
	msg, err := c.Decrypt(encrypt)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(msg), "<xml>") || !strings.Contains(string(msg), "</xml>") {
		t.Fatalf("decrypted %q", msg)
	}
	if _, err := mustCipher(t, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx2c2769f8efd9abc3").Decrypt(encrypt); !errors.Is(err, ErrAppIDMismatch) {
		t.Fatalf("another AppID: %v, want ErrAppIDMismatch", err)
	}
}

func TestRoundTrip(t *testing.T) {
	c := mustCipher(t, "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef")
	for n := range 100 {
		msg := []byte(strings.Repeat("扫", n))
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		got, err := c.Decrypt(enc)
		if err != nil || string(got) != string(msg) {
			t.Fatalf("round trip of %d bytes: %q, %v", len(msg), got, err)
		}
	}
	a, _ := c.Encrypt([]byte("same"))
	b, _ := c.Encrypt([]byte("same"))
	if a == b {
		t.Fatal("two encryptions of one message are equal: the random prefix is not random")
	}
}

// rawSeal encrypts an arbitrary padded plaintext block, to build ciphertexts that our Encrypt
// would never produce.
func rawSeal(t *testing.T, key string, plain []byte) string {
	t.Helper()
	k, _ := base64.StdEncoding.DecodeString(key + "=")
	block, err := aes.NewCipher(k)
	if err != nil {
		t.Fatal(err)
	}
	buf := append([]byte(nil), plain...)
	cipher.NewCBCEncrypter(block, k[:16]).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf)
}

func TestDecryptRefuses(t *testing.T) {
	const key, appID = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wx0123456789abcdef"
	c := mustCipher(t, key, appID)
	good, _ := c.Encrypt([]byte("<xml>hello</xml>"))
	raw, _ := base64.StdEncoding.DecodeString(good)

	flip := func(i int) string {
		b := append([]byte(nil), raw...)
		b[i] ^= 0x01
		return base64.StdEncoding.EncodeToString(b)
	}
	// plaintext builds random(16) + len + msg + appid, PKCS#7-padded to 32, then lets edit spoil it.
	plaintext := func(msgLen uint32, msg, appid string, edit func(p []byte)) string {
		p := make([]byte, 16, 128)
		p = append(p, byte(msgLen>>24), byte(msgLen>>16), byte(msgLen>>8), byte(msgLen))
		p = append(p, msg...)
		p = append(p, appid...)
		n := 32 - len(p)%32
		for range n {
			p = append(p, byte(n))
		}
		if edit != nil {
			edit(p)
		}
		return rawSeal(t, key, p)
	}
	last := func(v byte) func([]byte) { return func(p []byte) { p[len(p)-1] = v } }
	// "abc" + appID leaves 9 bytes of padding, so the 2nd-to-last byte is padding too.
	cases := map[string]struct {
		in   string
		want error
	}{
		"empty":            {"", ErrMalformed},
		"not base64":       {"%%%%", ErrMalformed},
		"16 bytes, not 32": {base64.StdEncoding.EncodeToString(raw[:16]), ErrMalformed},
		"truncated block":  {base64.StdEncoding.EncodeToString(raw[:len(raw)-1]), ErrMalformed},
		// In CBC a bit flipped in one ciphertext block flips the same bit of the next plaintext
		// block: here the last padding byte (10 becomes 11) and the length field's top byte.
		"padding bit flipped":      {flip(len(raw) - 17), ErrPadding},
		"length bit flipped":       {flip(0), ErrLength},
		"last block garbled":       {base64.StdEncoding.EncodeToString(append(raw[:len(raw)-16:len(raw)-16], raw[:16]...)), nil},
		"well formed":              {plaintext(3, "abc", appID, nil), nil},
		"length field too large":   {plaintext(1000, "abc", appID, nil), ErrLength},
		"padding byte 0":           {plaintext(3, "abc", appID, last(0)), ErrPadding},
		"padding byte 33":          {plaintext(3, "abc", appID, last(33)), ErrPadding},
		"padding not uniform":      {plaintext(3, "abc", appID, func(p []byte) { p[len(p)-2] = 8 }), ErrPadding},
		"padding too long":         {plaintext(3, "abc", appID, last(32)), ErrPadding},
		"other appid":              {plaintext(3, "abc", "wx0123456789abcdeX", nil), ErrAppIDMismatch},
		"appid missing":            {plaintext(3, "abc", "", nil), ErrAppIDMismatch},
		"appid with trailing byte": {plaintext(3, "abc", appID+"x", nil), ErrAppIDMismatch},
		"too short":                {rawSeal(t, key, []byte(strings.Repeat("\x1e", 32))), ErrLength},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.Decrypt(tc.in)
			if name == "well formed" {
				if err != nil {
					t.Fatalf("the hand-built plaintext itself is refused: %v", err)
				}
				return
			}
			if tc.want == nil {
				// A garbled block decrypts to noise: whichever check catches it, it must fail.
				if err == nil {
					t.Fatal("a tampered ciphertext was accepted")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if strings.Contains(err.Error(), key) || strings.Contains(err.Error(), "hello") {
				t.Fatal("error leaks key or plaintext")
			}
		})
	}
}

func TestNewCipherRefuses(t *testing.T) {
	for _, k := range []string{"", "short", strings.Repeat("a", 42), strings.Repeat("a", 44), strings.Repeat("!", 43)} {
		if _, err := NewCipher(k, "wx1"); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("key of %d chars: %v", len(k), err)
		}
	}
	if _, err := NewCipher("abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", ""); !errors.Is(err, ErrInvalidAppID) {
		t.Errorf("empty appID: %v", err)
	}
}

func TestVerifySignatureRefuses(t *testing.T) {
	sig := Signature("token", "1409735669", "nonce")
	for _, s := range []string{"", sig[:39], sig + "0", strings.ToUpper(sig), "0" + sig[1:]} {
		if s != sig && VerifySignature(s, "token", "1409735669", "nonce") {
			t.Errorf("accepted %q", s)
		}
	}
	if VerifySignature(sig, "token2", "1409735669", "nonce") {
		t.Error("accepted with another token")
	}
}

func FuzzVerifySignature(f *testing.F) {
	f.Add(Signature("token", "1409735669", "nonce"), "token", "1409735669", "nonce")
	f.Add("", "", "", "")
	f.Add("da39a3ee5e6b4b0d3255bfef95601890afd80709", "", "", "")
	f.Fuzz(func(t *testing.T, sig, token, ts, nonce string) {
		ok := VerifySignature(sig, token, ts, nonce)
		if ok != (sig == Signature(nonce, ts, token)) {
			t.Fatalf("VerifySignature(%q) = %v disagrees with Signature", sig, ok)
		}
	})
}

func FuzzDecrypt(f *testing.F) {
	const key, appID = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG", "wxb11529c136998cb6"
	c := mustCipher(f, key, appID)
	for _, v := range loadVectors(f) {
		if v.EncodingAESKey == key {
			f.Add(v.Encrypt)
		}
	}
	f.Add("")
	f.Add("AAAA")
	f.Fuzz(func(t *testing.T, in string) {
		msg, err := c.Decrypt(in)
		if err != nil {
			return
		}
		// Whatever decrypts must re-encrypt to something that decrypts to the same message.
		enc, err := c.Encrypt(msg)
		if err != nil {
			t.Fatal(err)
		}
		back, err := c.Decrypt(enc)
		if err != nil || string(back) != string(msg) {
			t.Fatalf("re-encryption round trip failed: %v", err)
		}
	})
}
