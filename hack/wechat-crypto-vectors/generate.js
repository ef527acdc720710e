// Writes test vectors for internal/wxcrypto (JSON on stdout) using the npm package wechat-crypto,
// an implementation independent of ours, so that the Go tests can check both directions without
// node: Go must decrypt what wechat-crypto encrypted, and must produce the very same ciphertext
// from the same random prefix (recorded here), which wechat-crypto therefore decrypts.
//
//   cd hack/wechat-crypto-vectors && npm ci && npm run vectors
'use strict';
const crypto = require('crypto');
const WXBizMsgCrypt = require('wechat-crypto');

// wechat-crypto draws its 16-byte prefix from crypto.pseudoRandomBytes; replaying a deterministic
// stream makes the vectors reproducible and lets the Go test rebuild the exact plaintext block.
let counter = 0;
let lastRandom = null;
crypto.pseudoRandomBytes = (n) => {
  lastRandom = crypto.createHash('sha256').update('wxcrypto-vector-' + counter++).digest().subarray(0, n);
  return lastRandom;
};

const sha1 = (parts) => crypto.createHash('sha1').update(parts.slice().sort().join('')).digest('hex');

const accounts = [
  // The key, token and AppID of WeChat's own sample code (WXBizMsgCrypt): not a real account.
  { token: 'pamtest', key: 'abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG', appID: 'wxb11529c136998cb6' },
  // A key whose last character has non-zero trailing bits, and a long AppID.
  { token: 'QDG6eK', key: 'jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C', appID: 'wx5823bf96d3bd56c7' },
  // A key ending in '+' and '/' characters.
  { token: 't0k3n+/=', key: 'Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFy+/9', appID: 'wx0000000000000001' },
];

const messages = [
  '',
  'a',
  '<xml><ToUserName><![CDATA[gh_7f083739789a]]></ToUserName><FromUserName><![CDATA[oia2Tj我是中文jewbmiOUlr6X-1crbLOvLw]]></FromUserName><CreateTime>1407743423</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event><EventKey><![CDATA[qrscene_123123]]></EventKey><Ticket><![CDATA[gQH47joAAAAAAAAAASxodHRwOi8vd2VpeGluLnFxLmNvbS9xL2taZ2Z3TVRtNzJXV1Brb3ZhYmJJAAIEZ23sUwMEmm3sUw==]]></Ticket></xml>',
  '感谢您的关注! 场景值: spring-sale',
  'x'.repeat(5000),
];

const vectors = [];
for (const a of accounts) {
  const wx = new WXBizMsgCrypt(a.token, a.key, a.appID);
  messages.forEach((m, i) => {
    // Message lengths chosen so that the padding takes every interesting value, including a
    // whole 32-byte block when the plaintext is already aligned.
    for (const extra of [0, 32 - ((16 + 4 + Buffer.byteLength(m) + Buffer.byteLength(a.appID)) % 32)]) {
      const msg = m + 'z'.repeat(extra % 32);
      const encrypt = wx.encrypt(msg);
      const timestamp = String(1409304348 + vectors.length);
      const nonce = 'nonce' + vectors.length;
      const back = wx.decrypt(encrypt);
      if (back.message !== msg || back.id !== a.appID) throw new Error('wechat-crypto round trip failed');
      vectors.push({
        token: a.token,
        encodingAESKey: a.key,
        appID: a.appID,
        timestamp,
        nonce,
        message: msg,
        random: lastRandom.toString('hex'),
        encrypt,
        msgSignature: wx.getSignature(timestamp, nonce, encrypt),
        signature: sha1([a.token, timestamp, nonce]),
      });
    }
  });
}
process.stdout.write(JSON.stringify({ generator: 'npm wechat-crypto@' + require('wechat-crypto/package.json').version, vectors }, null, 2) + '\n');
