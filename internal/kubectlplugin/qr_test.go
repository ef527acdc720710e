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
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/kubectlplugin"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/qrimage/qrimagetest"
)

func decodeFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f := bytes.NewReader(b)
	decode := qrimagetest.DecodePNG
	if filepath.Ext(path) == ".svg" {
		decode = qrimagetest.DecodeSVG
	}
	got, err := decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return got
}

func TestQRDrawsStatusURL(t *testing.T) {
	c := newCluster(t)
	code := temporary("spring-sale-poster", 123)
	c.create(code)
	c.issue(code, now.Add(-time.Hour))
	url := c.get("spring-sale-poster").Status.URL

	out, errOut, exit := c.run("qr", "spring-sale-poster", "--caption", "{name} ({scene})")
	if exit != 0 || errOut != "" {
		t.Fatalf("exit %d, stderr %q", exit, errOut)
	}
	// Written to a buffer, not a terminal: no colours, so the ink is light on a dark terminal.
	if got, err := qrimagetest.DecodeTerminal(out, true); err != nil || got != url {
		t.Errorf("terminal drawing decodes to %q (%v), want %q", got, err, url)
	}
	if !strings.HasSuffix(out, "\nspring-sale-poster (123)\n") {
		t.Errorf("no caption under the drawing:\n%s", out)
	}

	dir := t.TempDir()
	for _, file := range []string{"poster.png", "poster.svg"} {
		path := filepath.Join(dir, file)
		out, errOut, exit := c.run("qr", "spring-sale-poster", "-o", path, "--size", "800", "--margin", "6", "--caption", "Scan for the spring sale")
		if exit != 0 || errOut != "" || out != "wrote "+path+" ("+url+")\n" {
			t.Fatalf("%s: exit %d, stdout %q, stderr %q", file, exit, out, errOut)
		}
		if got := decodeFile(t, path); got != url {
			t.Errorf("%s decodes to %q, want %q", file, got, url)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "poster.svg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svg), ">Scan for the spring sale</text>") {
		t.Error("the SVG has no caption text")
	}

	// A refused caption leaves the earlier poster.png as it was and no other file.
	before, err := os.ReadFile(filepath.Join(dir, "poster.png"))
	if err != nil {
		t.Fatal(err)
	}
	_, errOut, exit = c.run("qr", "spring-sale-poster", "-o", filepath.Join(dir, "poster.png"), "--caption", "欢迎")
	if exit != kubectlplugin.ExitFailure || !strings.Contains(errOut, "write an SVG") {
		t.Errorf("CJK caption in a PNG: exit %d, stderr %q; want a refusal that points to SVG", exit, errOut)
	}
	if after, err := os.ReadFile(filepath.Join(dir, "poster.png")); err != nil || !bytes.Equal(after, before) {
		t.Errorf("a refused PNG damaged the earlier file (%v)", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("files after a refusal: %v, want poster.png and poster.svg", entries)
	}
}

func TestQRRefusesACodeWithoutURL(t *testing.T) {
	c := newCluster(t)
	code := temporary("pending", 1)
	c.create(code)
	c.setReady(code, metav1.ConditionFalse, "WeChatError40164", "errcode 40164: the caller's IP is not in the account's IP allowlist")

	out, errOut, exit := c.run("qr", "pending")
	if exit != kubectlplugin.ExitNotReady || out != "" || !strings.Contains(errOut, "has no URL yet: Ready is False, WeChatError40164") {
		t.Errorf("exit %d (want %d: not Ready), stdout %q, stderr %q", exit, kubectlplugin.ExitNotReady, out, errOut)
	}
}

// A code that has a URL but is not Ready (its renewal failing) is drawn with a warning, and the
// exit code says it is not Ready, as for `qr --all`.
func TestQRDrawsACodeThatIsNotReadyAndExits2(t *testing.T) {
	c := newCluster(t)
	code := temporary("renewing", 7)
	c.create(code)
	c.issue(code, now.Add(-time.Hour))
	url := c.get("renewing").Status.URL
	c.setReady(code, metav1.ConditionFalse, "Expired", "the ticket expired while the renewal was backing off")

	out, errOut, exit := c.run("qr", "renewing")
	if exit != kubectlplugin.ExitNotReady || !strings.Contains(errOut, "warning: ") || !strings.Contains(errOut, "is not Ready (False, Expired: the ticket expired") {
		t.Errorf("exit %d (want %d), stderr %q", exit, kubectlplugin.ExitNotReady, errOut)
	}
	if got, err := qrimagetest.DecodeTerminal(out, true); err != nil || got != url {
		t.Errorf("drawing decodes to %q (%v), want %q", got, err, url)
	}
	file := filepath.Join(t.TempDir(), "renewing.png")
	if _, _, exit := c.run("qr", "renewing", "-o", file); exit != kubectlplugin.ExitNotReady {
		t.Errorf("-o: exit %d, want %d", exit, kubectlplugin.ExitNotReady)
	}
	if got := decodeFile(t, file); got != url {
		t.Errorf("%s decodes to %q, want %q", file, got, url)
	}
}

func readIndex(t *testing.T, dir string) [][]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "index.csv"))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func TestQRAllExportsReadyCodesAndAnIndex(t *testing.T) {
	a, b := newCluster(t), newCluster(t)
	poster := temporary("spring-sale-poster", 123)
	a.create(poster)
	a.issue(poster, now.Add(-time.Hour))
	entrance := permanent("store-entrance", "entrance")
	a.create(entrance)
	a.issue(entrance, now.Add(-40*24*time.Hour))
	pending := temporary("pending", 9)
	a.create(pending)
	a.setReady(pending, metav1.ConditionFalse, "AccountSecretMissing", "no Secret")
	card := permanent("business-card", "sales/zhang-wei")
	b.create(card)
	b.issue(card, now.Add(-time.Hour))

	dir := filepath.Join(t.TempDir(), "print")
	out, errOut, exit := a.run("qr", "--all", "-o", dir, "--caption", "{name}")
	if exit != kubectlplugin.ExitNotReady {
		t.Errorf("exit %d, want %d: a code was skipped", exit, kubectlplugin.ExitNotReady)
	}
	if want := "skipped " + a.ns + "/pending: not Ready: False, AccountSecretMissing: no Secret\n" +
		"error: 1 of 3 codes in namespace " + a.ns + " skipped: not Ready (listed above)\n"; errOut != want {
		t.Errorf("stderr %q, want %q", errOut, want)
	}
	if want := "wrote 2 images and index.csv to " + dir + "\n"; out != want {
		t.Errorf("stdout %q, want %q", out, want)
	}
	posterStatus, entranceStatus := a.get("spring-sale-poster").Status, a.get("store-entrance").Status
	want := [][]string{
		{"namespace", "name", "scene", "type", "url", "expiry", "file"},
		{a.ns, "spring-sale-poster", "123", "Temporary", posterStatus.URL, posterStatus.ExpiresAt.UTC().Format(time.RFC3339), filepath.Join(a.ns, "spring-sale-poster.png")},
		{a.ns, "store-entrance", "entrance", "Permanent", entranceStatus.URL, "", filepath.Join(a.ns, "store-entrance.png")},
	}
	rows := readIndex(t, dir)
	if !slices.EqualFunc(rows, want, slices.Equal) {
		t.Errorf("index.csv:\n%q\nwant:\n%q", rows, want)
	}
	for _, row := range rows[1:] {
		if got := decodeFile(t, filepath.Join(dir, row[6])); got != row[4] {
			t.Errorf("%s decodes to %q, want %q", row[6], got, row[4])
		}
	}

	// Every namespace, as SVG: the other test namespaces' codes come along, so only this
	// test's are checked.
	dir = filepath.Join(t.TempDir(), "svg")
	if _, _, exit := a.run("qr", "-A", "--all", "-o", dir, "--format", "svg"); exit != kubectlplugin.ExitNotReady {
		t.Errorf("-A: exit %d, want %d", exit, kubectlplugin.ExitNotReady)
	}
	files := map[string]bool{}
	for _, row := range readIndex(t, dir)[1:] {
		files[row[6]] = true
		if row[0] == a.ns || row[0] == b.ns {
			if got := decodeFile(t, filepath.Join(dir, row[6])); got != row[4] {
				t.Errorf("%s decodes to %q, want %q", row[6], got, row[4])
			}
		}
	}
	for _, f := range []string{filepath.Join(a.ns, "spring-sale-poster.svg"), filepath.Join(a.ns, "store-entrance.svg"), filepath.Join(b.ns, "business-card.svg")} {
		if !files[f] {
			t.Errorf("-A index lacks %s", f)
		}
	}

	// A namespace whose codes are all Ready exits 0.
	if out, errOut, exit := b.run("qr", "--all", "-o", t.TempDir()); exit != 0 || errOut != "" || !strings.HasPrefix(out, "wrote 1 image ") {
		t.Errorf("all Ready: exit %d, stdout %q, stderr %q", exit, out, errOut)
	}
}
