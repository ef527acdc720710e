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

package kubectlplugin_test

import (
	"strings"
	"testing"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/kubectlplugin"
)

func TestRenewAnnotatesATemporaryCode(t *testing.T) {
	c := newCluster(t)
	code := temporary("spring-sale-poster", 123)
	c.create(code)
	c.issue(code, now.Add(-time.Hour))

	out, errOut, exit := c.run("renew", "spring-sale-poster")
	if exit != 0 || errOut != "" || !strings.HasPrefix(out, c.ns+"/spring-sale-poster: re-issue requested at 2026-11-22T12:00:00Z.") {
		t.Fatalf("exit %d, stdout %q, stderr %q", exit, out, errOut)
	}
	got := c.get("spring-sale-poster")
	if v := got.Annotations[v1alpha1.AnnotationRenewRequestedAt]; v != now.Format(time.RFC3339) {
		t.Errorf("annotation %s = %q, want %q", v1alpha1.AnnotationRenewRequestedAt, v, now.Format(time.RFC3339))
	}
	if got.Status.Ticket != code.Status.Ticket || got.Generation != code.Generation {
		t.Error("renew changed the spec or the status: only the annotation is the operator's cue")
	}
	if out, _, _ := c.run("status", "spring-sale-poster"); !strings.Contains(out, "Renew:     requested at 2026-11-22T12:00:00Z (pending)\n") {
		t.Errorf("status does not show the pending request:\n%s", out)
	}
	// The operator's re-issue: a ticket issued after the request.
	c.issue(got, now.Add(time.Second))
	if out, _, _ := c.run("status", "spring-sale-poster"); !strings.Contains(out, "(done: the current ticket was issued since)") {
		t.Errorf("status does not show the request as done:\n%s", out)
	}
}

func TestRenewRefusesAPermanentCode(t *testing.T) {
	c := newCluster(t)
	code := permanent("store-entrance", "42")
	c.create(code)
	c.issue(code, now.Add(-time.Hour))
	before := c.get("store-entrance")

	out, errOut, exit := c.run("renew", "store-entrance")
	if exit != kubectlplugin.ExitFailure || out != "" || !strings.Contains(errOut, "is a Permanent code: permanent codes are never re-issued") {
		t.Errorf("exit %d, stdout %q, stderr %q; want a refusal", exit, out, errOut)
	}
	after := c.get("store-entrance")
	if after.ResourceVersion != before.ResourceVersion {
		t.Errorf("the code changed (resourceVersion %s → %s), annotations %v", before.ResourceVersion, after.ResourceVersion, after.Annotations)
	}
}
