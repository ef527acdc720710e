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

package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// A page is one Markdown file of the documentation, as the tests read it: its fenced blocks and
// the code spans of its prose, in order, each with the heading it sits under.
type page struct {
	// path is relative to the repository root, as a reader would name it.
	path   string
	lines  []string
	blocks []block
	spans  []span
}

type block struct {
	lang, body string
	// line is where the opening fence is, 1-based.
	line int
	// notManifest is the reason given by a <!-- not-a-manifest: reason --> line right before the
	// block: a YAML block that is not meant for kubectl apply (Helm values, a fragment).
	notManifest string
	heading     string
}

type span struct {
	text string
	line int
	// row is true for a span in a table row, cell its cell (0 the first).
	row     bool
	cell    int
	heading string
}

var (
	notManifestMarker = regexp.MustCompile(`^<!-- not-a-manifest: (\S.*) -->$`)
	codeSpan          = regexp.MustCompile("`([^`]+)`")
	// The namespaces `make dev` has: its samples' and the operator's, where the
	// ClusterWeChatAccount's Secret lives. A page that uses another creates it first.
	devNamespaces  = []string{"default", "wechat-qrcode-operator-system"}
	createNS       = regexp.MustCompile(`kubectl create (?:namespace|ns) ([a-z0-9][a-z0-9-]*)`)
	delimiterRow   = regexp.MustCompile(`^\|( *:?-+:? *\|)+ *$`)
	fenceOpenClose = regexp.MustCompile("^```")
)

// pages reads README.md and every page of docs/.
func pages(t *testing.T) []*page {
	t.Helper()
	root := testenv.RepoRoot()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	var out []*page
	for _, f := range append([]string{filepath.Join(root, "README.md")}, files...) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, f)
		out = append(out, parsePage(filepath.ToSlash(rel), string(raw)))
	}
	return out
}

func parsePage(path, text string) *page {
	p := &page{path: path, lines: strings.Split(text, "\n")}
	var open *block
	var body []string
	heading, prev := "", ""
	for i, l := range p.lines {
		if fenceOpenClose.MatchString(l) {
			if open == nil {
				open = &block{lang: strings.TrimSpace(strings.TrimPrefix(l, "```")), line: i + 1, heading: heading}
				if m := notManifestMarker.FindStringSubmatch(strings.TrimSpace(prev)); m != nil {
					open.notManifest = m[1]
				}
				body = nil
			} else {
				open.body = strings.Join(body, "\n") + "\n"
				p.blocks = append(p.blocks, *open)
				open = nil
			}
			prev = l
			continue
		}
		if open != nil {
			body = append(body, l)
			continue
		}
		if strings.HasPrefix(l, "#") {
			heading = strings.TrimSpace(strings.TrimLeft(l, "#"))
		}
		if strings.TrimSpace(l) != "" {
			prev = l
		}
		row := strings.HasPrefix(l, "|")
		cells := []string{l}
		if row {
			cells = strings.Split(strings.Trim(l, "|"), "|")
		}
		for c, cell := range cells {
			for _, m := range codeSpan.FindAllStringSubmatch(cell, -1) {
				p.spans = append(p.spans, span{text: m[1], line: i + 1, row: row, cell: c, heading: heading})
			}
		}
	}
	return p
}

// code is every piece of code of the page: its blocks' lines and its spans, with their lines.
func (p *page) code(yield func(text string, line int) bool) {
	for _, b := range p.blocks {
		for i, l := range strings.Split(b.body, "\n") {
			if !yield(l, b.line+1+i) {
				return
			}
		}
	}
	for _, s := range p.spans {
		if !yield(s.text, s.line) {
			return
		}
	}
}

// prose is every line of the page outside its fenced blocks, with its index.
func (p *page) prose(yield func(i int, l string) bool) {
	fenced := false
	for i, l := range p.lines {
		if fenceOpenClose.MatchString(l) {
			fenced = !fenced
			continue
		}
		if !fenced && !yield(i, l) {
			return
		}
	}
}

// TestDocsYAMLApplies applies every YAML block of README.md and docs/ server-side, in the order
// of its page, as a reader of that page would: an example that no longer matches the CRDs, or
// that uses a namespace the dev stack does not have and the page never creates, fails here.
// A block that is not meant for kubectl apply says why in a marker right before it.
func TestDocsYAMLApplies(t *testing.T) {
	ctx := context.Background()
	for _, ns := range devNamespaces {
		ensureNamespace(t, ns)
	}
	var applied int
	for _, p := range pages(t) {
		namespaces := map[string]bool{}
		for _, ns := range devNamespaces {
			namespaces[ns] = true
		}
		created := p.namespacesCreated()
		accounts := map[string]bool{devAccount: true}
		for _, b := range p.blocks {
			for ns, line := range created {
				if line < b.line {
					ensureNamespace(t, ns)
					namespaces[ns] = true
				}
			}
			if b.lang != "yaml" {
				continue
			}
			where := fmt.Sprintf("%s:%d", p.path, b.line)
			objs, err := decodeYAML(b.body, b.notManifest == "")
			if b.notManifest != "" {
				if err != nil {
					t.Errorf("%s (not a manifest: %s) is not YAML: %v", where, b.notManifest, err)
				}
				continue
			}
			if err != nil {
				t.Errorf("%s: %v (a block not meant for kubectl apply needs <!-- not-a-manifest: reason --> right before it)", where, err)
				continue
			}
			for _, u := range objs {
				if err := accountKnown(u, accounts); err != nil {
					t.Errorf("%s: %s %s: %v", where, u.GetKind(), u.GetName(), err)
				}
				if err := applyDryRun(ctx, u, namespaces); err != nil {
					t.Errorf("%s: %s %s: %v (a block not meant for kubectl apply needs <!-- not-a-manifest: reason --> right before it)", where, u.GetKind(), u.GetName(), err)
				}
				if u.GetKind() == "Namespace" {
					namespaces[u.GetName()] = true
				}
				applied++
			}
		}
	}
	if applied == 0 {
		t.Fatal("no YAML block applied: the pages were not read")
	}
}

// devAccount is the account of make dev (config/samples), the one its fake WeChat knows.
var devAccount = accountKey(v1alpha1.KindClusterWeChatAccount, "", "official-account")

func accountKey(kind, namespace, name string) string {
	if kind == v1alpha1.KindClusterWeChatAccount {
		namespace = ""
	}
	return kind + "/" + namespace + "/" + name
}

// accountKnown records an account, and fails a code whose account is neither make dev's nor
// one the page made before it: such a code says AccountNotFound however well it applies.
func accountKnown(u *unstructured.Unstructured, accounts map[string]bool) error {
	switch u.GetKind() {
	case v1alpha1.KindWeChatAccount, v1alpha1.KindClusterWeChatAccount:
		accounts[accountKey(u.GetKind(), u.GetNamespace(), u.GetName())] = true
	case "WeChatQRCode":
		kind, _, _ := unstructured.NestedString(u.Object, "spec", "accountRef", "kind")
		name, _, _ := unstructured.NestedString(u.Object, "spec", "accountRef", "name")
		if kind == "" {
			kind = v1alpha1.KindWeChatAccount
		}
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
		}
		if !accounts[accountKey(kind, ns, name)] {
			return fmt.Errorf("spec.accountRef names %s %q, which is not make dev's ClusterWeChatAccount official-account and which the page does not create before", kind, name)
		}
	}
	return nil
}

// namespacesCreated are the namespaces the page's commands create (kubectl create namespace),
// by the line that creates them.
func (p *page) namespacesCreated() map[string]int {
	out := map[string]int{}
	for text, line := range p.code {
		for _, m := range createNS.FindAllStringSubmatch(text, -1) {
			if _, ok := out[m[1]]; !ok {
				out[m[1]] = line
			}
		}
	}
	return out
}

// decodeYAML reads every document of body; objects wants each to be a Kubernetes object.
func decodeYAML(body string, objects bool) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(body), 4096)
	var out []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(u.Object) == 0 {
			continue
		}
		if objects && (u.GetAPIVersion() == "" || u.GetKind() == "") {
			return nil, fmt.Errorf("a document without apiVersion and kind")
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, errors.New("no object")
	}
	return out, nil
}

// applyDryRun is kubectl apply --server-side --dry-run=server, but for a Namespace, which is
// created for real: the objects after it in the page need it.
func applyDryRun(ctx context.Context, u *unstructured.Unstructured, namespaces map[string]bool) error {
	if u.GetKind() == "Namespace" && u.GetAPIVersion() == "v1" {
		return client.IgnoreAlreadyExists(env.Client.Create(ctx, u))
	}
	namespaced, err := env.Client.IsObjectNamespaced(u)
	if err != nil {
		return err
	}
	if namespaced {
		if u.GetNamespace() == "" {
			u.SetNamespace("default")
		}
		if !namespaces[u.GetNamespace()] {
			return fmt.Errorf("namespace %q is not one of make dev's (%s) and the page does not create it before", u.GetNamespace(), strings.Join(devNamespaces, ", "))
		}
	}
	return env.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(u), client.FieldOwner("docs-test"), client.ForceOwnership, client.DryRunAll)
}

func ensureNamespace(t *testing.T, name string) {
	t.Helper()
	err := env.Client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// TestDocsTablesAreWhole: a table row after a paragraph is no row (Markdown ends a table at the
// first line that is not one), so a row must follow a row, or open a table with a delimiter row
// after it.
func TestDocsTablesAreWhole(t *testing.T) {
	for _, p := range pages(t) {
		for i, l := range p.prose {
			if !strings.HasPrefix(l, "|") {
				continue
			}
			prev := ""
			if i > 0 {
				prev = p.lines[i-1]
			}
			switch {
			case strings.HasPrefix(prev, "|"):
			case strings.TrimSpace(prev) == "" && i+1 < len(p.lines) && delimiterRow.MatchString(p.lines[i+1]):
			default:
				t.Errorf("%s:%d: a table row that is not part of a table (a blank line, then a header and a delimiter row, start one): %.60s", p.path, i+1, l)
			}
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestDocsLinks: every relative link of the pages reaches a file of the repository, and its
// #anchor a heading of that page (as GitHub names them).
func TestDocsLinks(t *testing.T) {
	root := testenv.RepoRoot()
	anchors := map[string]map[string]bool{}
	for _, p := range pages(t) {
		anchors[p.path] = p.anchors()
	}
	for _, p := range pages(t) {
		for i, l := range p.prose {
			for _, m := range mdLink.FindAllStringSubmatch(l, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				file, anchor, _ := strings.Cut(target, "#")
				path := p.path
				if file != "" {
					path = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(p.path), file)))
					if _, err := os.Stat(filepath.Join(root, path)); err != nil {
						t.Errorf("%s:%d: link %s: %v", p.path, i+1, target, err)
						continue
					}
				}
				if anchor == "" {
					continue
				}
				if a, ok := anchors[path]; !ok || !a[anchor] {
					t.Errorf("%s:%d: link %s: %s has no heading #%s", p.path, i+1, target, path, anchor)
				}
			}
		}
	}
}

// anchors are the page's headings as GitHub makes them anchors: lower case, punctuation dropped,
// spaces to dashes, a repeated one numbered.
func (p *page) anchors() map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	for _, l := range p.prose {
		if !strings.HasPrefix(l, "#") {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(strings.TrimSpace(strings.TrimLeft(l, "#"))) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
				b.WriteRune(r)
			}
		}
		a := b.String()
		if n := seen[a]; n > 0 {
			out[fmt.Sprintf("%s-%d", a, n)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

// TestDocsHealthLua: the argocd-cm the docs give holds, for each kind, exactly the script
// TestHealth runs, so what users paste is what was tested.
func TestDocsHealthLua(t *testing.T) {
	var found []block
	for _, p := range pages(t) {
		for _, b := range p.blocks {
			if b.lang == "yaml" && bytes.Contains([]byte(b.body), []byte("name: argocd-cm\n")) {
				found = append(found, b)
			}
		}
	}
	if len(found) != 1 {
		t.Fatalf("the docs have %d argocd-cm blocks, want 1", len(found))
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict([]byte(found[0].body), &cm); err != nil {
		t.Fatal(err)
	}
	for _, k := range kinds() {
		script, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), k.lua))
		if err != nil {
			t.Fatal(err)
		}
		key := "resource.customizations.health.wechat.qrcode-operator.io_" + k.name
		if got, ok := cm.Data[key]; !ok || got != string(script) {
			t.Errorf("the docs' argocd-cm %s differs from %s:\n%s", key, k.lua, got)
		}
	}
}
