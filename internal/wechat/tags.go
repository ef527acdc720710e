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

package wechat

import (
	"context"
	"errors"
	"fmt"
)

// WeChat's limits of the user-tag APIs (docs/wechat-platform.md §9).
const (
	// MaxTags is how many tags an account may create (45056 beyond).
	MaxTags = 100
	// MaxTagNameBytes bounds a tag name, in bytes of UTF-8 (45158 beyond).
	MaxTagNameBytes = 30
	// MaxBatchTagging is how many OpenIDs one batchtagging call takes (40032 beyond).
	MaxBatchTagging = 50
	// MaxTagsPerFollower is how many tags one follower carries (45059 beyond).
	MaxTagsPerFollower = 20
)

// Tag is one of an account's tags. Count, from tags/get, is how many followers carry it.
type Tag struct {
	ID    int64  `json:"id"`
	Name  string `json:"name"`
	Count int64  `json:"count,omitempty"`
}

// Reserved reports whether the tag is one of WeChat's own (ids 0, 1 and 2: 45058 for any change
// of them), which the account did not create.
func (t Tag) Reserved() bool { return t.ID <= 2 }

// Tags reads the account's tags (GET cgi-bin/tags/get), WeChat's reserved ones included.
func (c *Client) Tags(ctx context.Context, creds Credentials) ([]Tag, error) {
	acct, err := c.account(creds)
	if err != nil {
		return nil, err
	}
	var out struct {
		Tags []Tag `json:"tags"`
	}
	if err := c.callWithToken(ctx, acct, endpointTagsGet, "/cgi-bin/tags/get", nil, &out); err != nil {
		return nil, fmt.Errorf("tags/get for AppID %s: %w", creds.AppID, err)
	}
	return out.Tags, nil
}

// CreateTag creates a tag (POST cgi-bin/tags/create). A name the account already has answers
// 45157: the caller reads the tags again rather than treating it as a failure.
func (c *Client) CreateTag(ctx context.Context, creds Credentials, name string) (Tag, error) {
	if name == "" || len(name) > MaxTagNameBytes {
		return Tag{}, fmt.Errorf("%w: a tag name must be 1 to %d bytes of UTF-8", ErrInvalidRequest, MaxTagNameBytes)
	}
	acct, err := c.account(creds)
	if err != nil {
		return Tag{}, err
	}
	var out struct {
		Tag Tag `json:"tag"`
	}
	in := map[string]map[string]string{"tag": {"name": name}}
	if err := c.callWithToken(ctx, acct, endpointTagsCreate, "/cgi-bin/tags/create", in, &out); err != nil {
		return Tag{}, fmt.Errorf("tags/create for AppID %s: %w", creds.AppID, err)
	}
	if out.Tag.Name != name {
		return Tag{}, fmt.Errorf("tags/create for AppID %s: answer without the tag", creds.AppID)
	}
	return out.Tag, nil
}

// BatchTag gives tagID to 1 to MaxBatchTagging followers (POST cgi-bin/tags/members/batchtagging).
// WeChat takes the call whole or refuses it whole, with the errcode of the first OpenID it
// refuses (40003, 49003, 45059): errors never name the OpenIDs, which are personal data.
func (c *Client) BatchTag(ctx context.Context, creds Credentials, tagID int64, openIDs []string) error {
	if len(openIDs) == 0 || len(openIDs) > MaxBatchTagging {
		return fmt.Errorf("%w: batchtagging takes 1 to %d OpenIDs, not %d", ErrInvalidRequest, MaxBatchTagging, len(openIDs))
	}
	acct, err := c.account(creds)
	if err != nil {
		return err
	}
	in := map[string]any{"openid_list": openIDs, "tagid": tagID}
	var out struct{}
	if err := c.callWithToken(ctx, acct, endpointBatchTagging, "/cgi-bin/tags/members/batchtagging", in, &out); err != nil {
		return fmt.Errorf("tags/members/batchtagging of tag %d for AppID %s: %w", tagID, creds.AppID, withoutOpenIDs(err, openIDs))
	}
	return nil
}

// FollowerTagIDs reads the ids of the tags a follower carries (POST cgi-bin/tags/getidlist).
func (c *Client) FollowerTagIDs(ctx context.Context, creds Credentials, openID string) ([]int64, error) {
	acct, err := c.account(creds)
	if err != nil {
		return nil, err
	}
	var out struct {
		IDs []int64 `json:"tagid_list"`
	}
	if err := c.callWithToken(ctx, acct, endpointGetIDList, "/cgi-bin/tags/getidlist", map[string]string{"openid": openID}, &out); err != nil {
		return nil, fmt.Errorf("tags/getidlist for AppID %s: %w", creds.AppID, withoutOpenIDs(err, []string{openID}))
	}
	return out.IDs, nil
}

// withoutOpenIDs drops any OpenID WeChat may echo in its errmsg, keeping the errcode and class.
func withoutOpenIDs(err error, openIDs []string) error {
	var we *Error
	if !errors.As(err, &we) {
		return err
	}
	scrubbed := scrub(we.Message, openIDs)
	if scrubbed == we.Message {
		return err
	}
	return &Error{Code: we.Code, Message: scrubbed, Class: we.Class}
}
