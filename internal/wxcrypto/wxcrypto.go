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

// Package wxcrypto implements WeChat's push signatures and the "safe mode" message encryption
// (WXBizMsgCrypt) exactly as WeChat documents them. It is shared by the callback server, which
// verifies and decrypts pushes and encrypts passive replies, and by the fake WeChat's push
// simulator, which does the reverse; both sides using one implementation is only safe because
// the tests pin it to vectors produced by an independent implementation (the npm package
// wechat-crypto, see hack/wechat-crypto-vectors).
//
// Nothing here ever puts key material, tokens or plaintext into an error: errors are fixed
// sentinel values, so a caller may log them verbatim.
package wxcrypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"slices"
)

const (
	// EncodingAESKeyLength is the length of an EncodingAESKey: 43 base64 characters, which with
	// one "=" appended decode to a 32-byte AES-256 key.
	EncodingAESKeyLength = 43
	// blockSize is WeChat's PKCS#7 block: 32 bytes, not AES's 16. Every ciphertext WeChat
	// produces is therefore a multiple of 32 bytes long.
	blockSize = 32
	// randomPrefix is the number of random bytes that start every plaintext.
	randomPrefix = 16
	// lengthField is the big-endian message length that follows the random prefix.
	lengthField = 4
)

// Errors returned by NewCipher and Decrypt. They deliberately say nothing about which byte or
// which key failed.
var (
	ErrInvalidKey    = errors.New("wxcrypto: EncodingAESKey must be 43 base64 characters")
	ErrInvalidAppID  = errors.New("wxcrypto: empty appID")
	ErrMalformed     = errors.New("wxcrypto: ciphertext is not base64 of a whole number of 32-byte blocks")
	ErrPadding       = errors.New("wxcrypto: bad padding")
	ErrLength        = errors.New("wxcrypto: message length out of range")
	ErrAppIDMismatch = errors.New("wxcrypto: appid in message does not match")
)

// Signature is WeChat's signature of a push: the hex SHA-1 of the parts sorted and concatenated.
// The parts are (token, timestamp, nonce) for the URL signature and (token, timestamp, nonce,
// Encrypt) for msg_signature.
func Signature(parts ...string) string {
	sig := signatureOf(parts)
	return string(sig[:])
}

// signatureOf is Signature as bytes. Every push is verified twice, so the parts are sorted in an
// array and joined in a buffer that stay on the stack for the at most four parts of a push of a
// few KiB: verifying allocates nothing.
func signatureOf(parts []string) [2 * sha1.Size]byte {
	var fixed [4]string
	sorted := append(fixed[:0], parts...)
	slices.Sort(sorted)
	joined := make([]byte, 0, 4096)
	for _, p := range sorted {
		joined = append(joined, p...)
	}
	sum := sha1.Sum(joined)
	var sig [2 * sha1.Size]byte
	hex.Encode(sig[:], sum[:])
	return sig
}

// VerifySignature reports whether signature is Signature(parts...). The comparison takes the
// same time wherever the first differing byte is, so that a forger cannot learn the signature
// byte by byte. Upper-case hex is refused: WeChat sends lower case, and accepting both would only
// widen what a forger may send.
func VerifySignature(signature string, parts ...string) bool {
	want := signatureOf(parts)
	// Copied into an array rather than converted, which would allocate: the length is public.
	var got [len(want)]byte
	if len(signature) != len(got) {
		return false
	}
	copy(got[:], signature)
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// Cipher encrypts and decrypts safe-mode messages for one account and one EncodingAESKey. It is
// safe for concurrent use.
type Cipher struct {
	block cipher.Block
	iv    []byte
	appID string
}

// NewCipher returns the Cipher for an EncodingAESKey and the AppID that every message must carry.
func NewCipher(encodingAESKey, appID string) (*Cipher, error) {
	if len(encodingAESKey) != EncodingAESKeyLength {
		return nil, ErrInvalidKey
	}
	if appID == "" {
		return nil, ErrInvalidAppID
	}
	// Not base64.StdEncoding.Strict(): the last character of a random 43-character key usually
	// has non-zero trailing bits, which WeChat's own decoder (and every SDK's) ignores.
	key, err := base64.StdEncoding.DecodeString(encodingAESKey + "=")
	if err != nil || len(key) != 32 {
		return nil, ErrInvalidKey
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, ErrInvalidKey
	}
	return &Cipher{block: block, iv: key[:aes.BlockSize], appID: appID}, nil
}

// AppID is the account the Cipher encrypts for and accepts messages from.
func (c *Cipher) AppID() string { return c.appID }

// Encrypt returns base64(AES-256-CBC(random(16) + len(msg) as 4 bytes big-endian + msg + appID),
// PKCS#7-padded to a multiple of 32 bytes), the content of an <Encrypt> element.
func (c *Cipher) Encrypt(plaintext []byte) (string, error) {
	var random [randomPrefix]byte
	if _, err := rand.Read(random[:]); err != nil {
		return "", err
	}
	return c.encrypt(random, plaintext)
}

// encrypt is Encrypt with the random prefix given, so that tests can compare ciphertexts with
// another implementation's byte for byte.
func (c *Cipher) encrypt(random [randomPrefix]byte, plaintext []byte) (string, error) {
	if uint64(len(plaintext)) > 1<<31 {
		return "", ErrLength
	}
	n := randomPrefix + lengthField + len(plaintext) + len(c.appID)
	pad := blockSize - n%blockSize
	buf := make([]byte, n+pad)
	copy(buf, random[:])
	binary.BigEndian.PutUint32(buf[randomPrefix:], uint32(len(plaintext)))
	copy(buf[randomPrefix+lengthField:], plaintext)
	copy(buf[randomPrefix+lengthField+len(plaintext):], c.appID)
	for i := n; i < len(buf); i++ {
		buf[i] = byte(pad)
	}
	cipher.NewCBCEncrypter(c.block, c.iv).CryptBlocks(buf, buf)
	return base64.StdEncoding.EncodeToString(buf), nil
}

// Decrypt reverses Encrypt and refuses anything WeChat could not have produced with this key for
// this account: a length that is not a whole number of 32-byte blocks, padding that is not
// PKCS#7 to 32, a message length that overruns the plaintext, or another AppID.
//
// CBC decryption reveals padding validity to whoever can submit ciphertexts; callers must
// therefore check msg_signature, which covers the ciphertext, before calling Decrypt.
func (c *Cipher) Decrypt(b64 string) ([]byte, error) {
	buf, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(buf) == 0 || len(buf)%blockSize != 0 {
		return nil, ErrMalformed
	}
	cipher.NewCBCDecrypter(c.block, c.iv).CryptBlocks(buf, buf)
	pad := int(buf[len(buf)-1])
	if pad < 1 || pad > blockSize {
		return nil, ErrPadding
	}
	for _, b := range buf[len(buf)-pad:] {
		if int(b) != pad {
			return nil, ErrPadding
		}
	}
	content := buf[:len(buf)-pad]
	if len(content) < randomPrefix+lengthField {
		return nil, ErrLength
	}
	content = content[randomPrefix:]
	msgLen := uint64(binary.BigEndian.Uint32(content))
	content = content[lengthField:]
	if msgLen > uint64(len(content)) {
		return nil, ErrLength
	}
	if subtle.ConstantTimeCompare(content[msgLen:], []byte(c.appID)) != 1 {
		return nil, ErrAppIDMismatch
	}
	return content[:msgLen], nil
}
