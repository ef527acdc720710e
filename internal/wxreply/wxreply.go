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

// Package wxreply is WeChat's passive reply (docs/wechat-platform.md §5 and §6) as encoding/xml
// writes and reads it: the plain way an application builds one. The callback server builds its
// replies by appending bytes, for speed, and its tests hold that to this package byte for byte;
// the dev stack's demo application answers with it.
package wxreply

import (
	"encoding/xml"
)

// CDATA marshals as a CDATA section; encoding/xml splits any "]]>" inside it across two.
type CDATA struct {
	Value string `xml:",cdata"`
}

// Text is a text message sent back to the user.
type Text struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   CDATA    `xml:"ToUserName"`
	FromUserName CDATA    `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      CDATA    `xml:"MsgType"`
	Content      CDATA    `xml:"Content"`
}

// Image is an image message sent back to the user: a media_id of the account's materials.
type Image struct {
	XMLName      xml.Name `xml:"xml"`
	ToUserName   CDATA    `xml:"ToUserName"`
	FromUserName CDATA    `xml:"FromUserName"`
	CreateTime   int64    `xml:"CreateTime"`
	MsgType      CDATA    `xml:"MsgType"`
	MediaID      CDATA    `xml:"Image>MediaId"`
}

// News is a news message sent back to the user: link cards, one in a passive reply nowadays.
type News struct {
	XMLName      xml.Name  `xml:"xml"`
	ToUserName   CDATA     `xml:"ToUserName"`
	FromUserName CDATA     `xml:"FromUserName"`
	CreateTime   int64     `xml:"CreateTime"`
	MsgType      CDATA     `xml:"MsgType"`
	ArticleCount int       `xml:"ArticleCount"`
	Articles     []Article `xml:"Articles>item"`
}

// Article is one link card of a News.
type Article struct {
	Title       CDATA `xml:"Title"`
	Description CDATA `xml:"Description"`
	PicURL      CDATA `xml:"PicUrl"`
	URL         CDATA `xml:"Url"`
}

// Envelope is an encrypted reply in compatible and safe mode.
type Envelope struct {
	XMLName      xml.Name `xml:"xml"`
	Encrypt      CDATA    `xml:"Encrypt"`
	MsgSignature CDATA    `xml:"MsgSignature"`
	TimeStamp    string   `xml:"TimeStamp"`
	Nonce        CDATA    `xml:"Nonce"`
}

// MarshalText is the reply from the account (from, its gh_ ID) to the user (to, the OpenID).
func MarshalText(to, from, content string, now int64) ([]byte, error) {
	return xml.Marshal(Text{
		ToUserName: CDATA{to}, FromUserName: CDATA{from}, CreateTime: now, MsgType: CDATA{"text"}, Content: CDATA{content},
	})
}

// MarshalImage is the image reply of mediaID from the account (from) to the user (to).
func MarshalImage(to, from, mediaID string, now int64) ([]byte, error) {
	return xml.Marshal(Image{
		ToUserName: CDATA{to}, FromUserName: CDATA{from}, CreateTime: now, MsgType: CDATA{"image"}, MediaID: CDATA{mediaID},
	})
}

// MarshalNews is the news reply of one article from the account (from) to the user (to).
func MarshalNews(to, from string, a Article, now int64) ([]byte, error) {
	return xml.Marshal(News{
		ToUserName: CDATA{to}, FromUserName: CDATA{from}, CreateTime: now, MsgType: CDATA{"news"},
		ArticleCount: 1, Articles: []Article{a},
	})
}

// MarshalEnvelope is the encrypted reply carrying encrypt, signed with signature over timestamp
// and nonce (wxcrypto.Signature(token, timestamp, nonce, encrypt)).
func MarshalEnvelope(encrypt, signature, timestamp, nonce string) ([]byte, error) {
	return xml.Marshal(Envelope{Encrypt: CDATA{encrypt}, MsgSignature: CDATA{signature}, TimeStamp: timestamp, Nonce: CDATA{nonce}})
}
