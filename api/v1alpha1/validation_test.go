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

package v1alpha1_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

// env starts on first use: the ledger entry format's tests and fuzz target need no API server.
var env testenv.Lazy

func TestMain(m *testing.M) {
	code := m.Run()
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the API server:", err)
	}
	os.Exit(code)
}

// object builds a WeChatQRCode from a YAML spec, unstructured so that shapes the Go types cannot
// express (both scene fields, wrong types) reach the API server as a user's manifest would.
func object(t *testing.T, name, spec string) *unstructured.Unstructured {
	t.Helper()
	var s map[string]any
	if err := yaml.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatalf("bad test spec %q: %v", spec, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": qrv1alpha1.GroupVersion.String(),
		"kind":       "WeChatQRCode",
		"metadata":   map[string]any{"name": name, "namespace": "default"},
		"spec":       s,
	}}
	return u
}

// TestSchemaRefusesInvalidSpecs applies every valid and invalid example to the real API server
// (as a server-side dry run, which runs the full schema and CEL validation) and checks that each
// invalid one is refused with a message naming the field and the rule.
func TestSchemaRefusesInvalidSpecs(t *testing.T) {
	const acct = "accountRef: {name: official-account}\n"
	long := strings.Repeat("x", 65)
	var names []string
	for i := range qrv1alpha1.MaxCodeTags + 1 {
		names = append(names, fmt.Sprintf("t%d", i))
	}
	manyTags := strings.Join(names, ", ")
	cases := []struct {
		name string
		spec string
		// want is every substring the refusal must contain; empty means the spec is valid.
		want []string
	}{
		{"temporary id", acct + "type: Temporary\nscene: {id: 123}\nttl: 168h", nil},
		{"temporary str", acct + "type: Temporary\nscene: {str: spring-sale}\nttl: 168h\nrenewBefore: 24h", nil},
		{"permanent id", acct + "type: Permanent\nscene: {id: 100000}", nil},
		{"permanent str", acct + "type: Permanent\nscene: {str: " + strings.Repeat("s", 64) + "}\nreply: {text: 欢迎参加春季促销}", nil},
		{"temporary largest id and ttl", acct + "type: Temporary\nscene: {id: 2147483647}\nttl: 720h\nrenewBefore: 719h59m59s", nil},
		{"temporary shortest ttl", acct + "type: Temporary\nscene: {id: 1}\nttl: 1m\nrenewBefore: 59s", nil},

		{"scene id 0", acct + "type: Temporary\nscene: {id: 0}\nttl: 1h",
			[]string{"spec.scene.id", "greater than or equal to 1"}},
		{"negative scene id", acct + "type: Temporary\nscene: {id: -5}\nttl: 1h",
			[]string{"spec.scene.id", "greater than or equal to 1"}},
		{"permanent id over 100000", acct + "type: Permanent\nscene: {id: 100001}",
			[]string{"spec.scene.id", "a Permanent code's scene.id must be between 1 and 100000"}},
		{"temporary id over 32 bits", acct + "type: Temporary\nscene: {id: 2147483648}\nttl: 1h",
			[]string{"spec.scene.id", "less than or equal to 2147483647"}},
		{"scene str empty", acct + "type: Temporary\nscene: {str: \"\"}\nttl: 1h",
			[]string{"spec.scene.str", "at least 1 chars long"}},
		{"scene str over 64", acct + "type: Permanent\nscene: {str: " + long + "}",
			[]string{"spec.scene.str", "may not be more than 64"}},
		{"scene str of 21 CJK characters (63 bytes)", acct + "type: Permanent\nscene: {str: " + strings.Repeat("码", 21) + "}", nil},
		{"scene str of 30 CJK characters (90 bytes)", acct + "type: Temporary\nscene: {str: " + strings.Repeat("码", 30) + "}\nttl: 1h",
			[]string{"spec.scene.str", "at most 64 bytes", "a CJK character takes 3 bytes"}},
		{"scene str of 22 CJK characters (66 bytes)", acct + "type: Permanent\nscene: {str: " + strings.Repeat("码", 22) + "}",
			[]string{"spec.scene.str", "at most 64 bytes"}},
		{"both id and str", acct + "type: Permanent\nscene: {id: 7, str: seven}",
			[]string{"spec.scene", "exactly one of scene.id and scene.str must be set"}},
		{"neither id nor str", acct + "type: Permanent\nscene: {}",
			[]string{"spec.scene", "exactly one of scene.id and scene.str must be set"}},
		{"ttl on a permanent code", acct + "type: Permanent\nscene: {id: 9}\nttl: 24h",
			[]string{"spec.ttl", "ttl must not be set on a Permanent code"}},
		{"renewBefore on a permanent code", acct + "type: Permanent\nscene: {id: 9}\nrenewBefore: 1h",
			[]string{"spec.renewBefore", "renewBefore must not be set on a Permanent code"}},
		{"ttl missing on a temporary code", acct + "type: Temporary\nscene: {id: 9}",
			[]string{"spec.ttl", "ttl is required for a Temporary code"}},
		{"ttl over 720h", acct + "type: Temporary\nscene: {id: 9}\nttl: 721h",
			[]string{"spec.ttl", "ttl must be between 1m and 720h"}},
		{"ttl under 1m", acct + "type: Temporary\nscene: {id: 9}\nttl: 30s",
			[]string{"spec.ttl", "ttl must be between 1m and 720h"}},
		{"ttl not a duration", acct + "type: Temporary\nscene: {id: 9}\nttl: a week",
			[]string{"spec.ttl", "ttl a week is not a duration", "hours, minutes or seconds"}},
		{"ttl in days", acct + "type: Temporary\nscene: {id: 9}\nttl: 30d",
			[]string{"spec.ttl", "ttl 30d is not a duration: write it in hours, minutes or seconds, e.g. 168h, 90m or 1h30m; days are not accepted (30 days is 720h)"}},
		{"ttl in days with renewBefore", acct + "type: Temporary\nscene: {id: 9}\nttl: 30d\nrenewBefore: 1d",
			[]string{"spec.ttl", "ttl 30d is not a duration", "spec.renewBefore", "renewBefore 1d is not a duration"}},
		{"ttl with a fraction", acct + "type: Temporary\nscene: {id: 9}\nttl: 1.5h", nil},
		{"renewBefore equal to ttl", acct + "type: Temporary\nscene: {id: 9}\nttl: 24h\nrenewBefore: 24h",
			[]string{"spec.renewBefore", "renewBefore must be shorter than ttl"}},
		{"renewBefore longer than ttl", acct + "type: Temporary\nscene: {id: 9}\nttl: 1h\nrenewBefore: 90m",
			[]string{"spec.renewBefore", "renewBefore must be shorter than ttl"}},
		{"renewBefore zero", acct + "type: Temporary\nscene: {id: 9}\nttl: 1h\nrenewBefore: 0s",
			[]string{"spec.renewBefore", "renewBefore must be at least 1s"}},
		{"accountRef without a name", "accountRef: {}\ntype: Permanent\nscene: {id: 9}",
			[]string{"spec.accountRef.name", "Required value"}},
		{"accountRef name empty", "accountRef: {name: \"\"}\ntype: Permanent\nscene: {id: 9}",
			[]string{"spec.accountRef.name", "at least 1 chars long"}},
		{"accountRef missing", "type: Permanent\nscene: {id: 9}",
			[]string{"spec.accountRef", "Required value"}},
		{"unknown type", acct + "type: Forever\nscene: {id: 9}",
			[]string{"spec.type", `Unsupported value: "Forever"`, `"Temporary", "Permanent"`}},
		{"empty reply", acct + "type: Permanent\nscene: {id: 9}\nreply: {text: \"\"}",
			[]string{"spec.reply.text", "at least 1 chars long"}},
		{"sink batched", acct + "type: Permanent\nscene: {id: 9}\nsink: {uri: \"http://s/\", batch: {maxEvents: 1000}}", nil},
		{"sink batch of 1", acct + "type: Permanent\nscene: {id: 9}\nsink: {uri: \"http://s/\", batch: {maxEvents: 1}}",
			[]string{"spec.sink.batch.maxEvents", "greater than or equal to 2"}},
		{"sink batch over 1000", acct + "type: Permanent\nscene: {id: 9}\nsink: {uri: \"http://s/\", batch: {maxEvents: 1001}}",
			[]string{"spec.sink.batch.maxEvents", "less than or equal to 1000"}},
		{"sink batch without maxEvents", acct + "type: Permanent\nscene: {id: 9}\nsink: {uri: \"http://s/\", batch: {}}",
			[]string{"spec.sink.batch.maxEvents", "Required value"}},
		{"reply over 600 characters", acct + "type: Permanent\nscene: {id: 9}\nreply: {text: " + strings.Repeat("欢", qrv1alpha1.MaxReplyText+1) + "}",
			[]string{"spec.reply.text", "may not be more than 600"}},
		{"reply of 2048 bytes", acct + "type: Permanent\nscene: {id: 9}\nreply: {text: " + strings.Repeat("😀", qrv1alpha1.MaxReplyTextBytes/4) + "}", nil},
		{"reply over 2048 bytes", acct + "type: Permanent\nscene: {id: 9}\nreply: {text: " + strings.Repeat("😀", qrv1alpha1.MaxReplyTextBytes/4+1) + "}",
			[]string{"spec.reply.text", "at most 2048 bytes of UTF-8"}},
		{"greetings by follower kind", acct + "type: Permanent\nscene: {id: 9}\nreply:\n  image: {mediaID: HIFbTu-MDPCEBXvcSL9Ph5lRXa6HbO4ksApqsD4VUag}\n" +
			"  newFollowers: {link: {title: 欢迎关注, description: 新人礼包, url: \"https://shop.example.com/welcome?from=qr\", picURL: \"http://img.example.com/w.png\"}}\n" +
			"  followers: {text: 欢迎回来}", nil},
		{"only new followers greeted", acct + "type: Permanent\nscene: {id: 9}\nreply: {newFollowers: {text: 欢迎}}", nil},
		{"link of the longest fields", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: " + strings.Repeat("标", qrv1alpha1.MaxLinkTitle) +
			", description: " + strings.Repeat("述", qrv1alpha1.MaxLinkDescription) + ", url: \"https://e.com/" + strings.Repeat("p", qrv1alpha1.MaxLinkURL-14) + "\"}}", nil},
		{"empty reply object", acct + "type: Permanent\nscene: {id: 9}\nreply: {}",
			[]string{"spec.reply", "reply needs a message"}},
		{"text and image for everyone", acct + "type: Permanent\nscene: {id: 9}\nreply: {text: hi, image: {mediaID: m1}}",
			[]string{"spec.reply", "set at most one of reply.text, reply.image and reply.link"}},
		{"newFollowers with two messages", acct + "type: Permanent\nscene: {id: 9}\nreply: {newFollowers: {text: hi, link: {title: t, url: \"https://e.com\"}}}",
			[]string{"spec.reply.newFollowers", "set exactly one of text, image and link"}},
		{"followers without a message", acct + "type: Permanent\nscene: {id: 9}\nreply: {text: hi, followers: {}}",
			[]string{"spec.reply.followers", "set exactly one of text, image and link"}},
		{"empty mediaID", acct + "type: Permanent\nscene: {id: 9}\nreply: {image: {mediaID: \"\"}}",
			[]string{"spec.reply.image.mediaID", "at least 1 chars long"}},
		{"mediaID with a space", acct + "type: Permanent\nscene: {id: 9}\nreply: {followers: {image: {mediaID: \"a b\"}}}",
			[]string{"spec.reply.followers.image.mediaID", "printable ASCII without spaces"}},
		{"mediaID over 128", acct + "type: Permanent\nscene: {id: 9}\nreply: {image: {mediaID: " + strings.Repeat("m", qrv1alpha1.MaxMediaID+1) + "}}",
			[]string{"spec.reply.image.mediaID", "may not be more than 128"}},
		{"image without mediaID", acct + "type: Permanent\nscene: {id: 9}\nreply: {image: {}}",
			[]string{"spec.reply.image.mediaID", "Required value"}},
		{"link without url", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: t}}",
			[]string{"spec.reply.link.url", "Required value"}},
		{"link url of another scheme", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: t, url: \"javascript:alert(1)\"}}",
			[]string{"spec.reply.link.url", "link.url must be an absolute http or https URL"}},
		{"link url relative", acct + "type: Permanent\nscene: {id: 9}\nreply: {newFollowers: {link: {title: t, url: /welcome}}}",
			[]string{"spec.reply.newFollowers.link.url", "link.url must be an absolute http or https URL"}},
		{"link url without a host", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: t, url: \"https:///x\"}}",
			[]string{"spec.reply.link.url", "link.url must be an absolute http or https URL"}},
		{"link picURL of another scheme", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: t, url: \"https://e.com\", picURL: \"ftp://e.com/p.png\"}}",
			[]string{"spec.reply.link.picURL", "link.picURL must be an absolute http or https URL"}},
		{"link url over 2048", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: t, url: \"https://e.com/" + strings.Repeat("p", qrv1alpha1.MaxLinkURL) + "\"}}",
			[]string{"spec.reply.link.url", "may not be more than 2048"}},
		{"link title empty", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: \"\", url: \"https://e.com\"}}",
			[]string{"spec.reply.link.title", "at least 1 chars long"}},
		{"link title over 64", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: " + strings.Repeat("标", qrv1alpha1.MaxLinkTitle+1) + ", url: \"https://e.com\"}}",
			[]string{"spec.reply.link.title", "may not be more than 64"}},
		{"link description over 120", acct + "type: Permanent\nscene: {id: 9}\nreply: {link: {title: t, description: " + strings.Repeat("述", qrv1alpha1.MaxLinkDescription+1) + ", url: \"https://e.com\"}}",
			[]string{"spec.reply.link.description", "may not be more than 120"}},
		{"tags", acct + "type: Permanent\nscene: {id: 9}\ntags: [广东, spring-poster, " + strings.Repeat("渠", 10) + ", " + strings.Repeat("t", 30) + "]\ntagOn: NewFollowers", nil},
		{"tag of 11 CJK characters (33 bytes)", acct + "type: Permanent\nscene: {id: 9}\ntags: [ok, " + strings.Repeat("渠", 11) + "]",
			[]string{"spec.tags[1]", "at most 30 bytes of UTF-8", "at most 10 of them"}},
		{"tag of 31 ASCII characters", acct + "type: Permanent\nscene: {id: 9}\ntags: [" + strings.Repeat("t", 31) + "]",
			[]string{"spec.tags[0]", "may not be more than 30"}},
		{"empty tag", acct + "type: Permanent\nscene: {id: 9}\ntags: [\"\"]",
			[]string{"spec.tags[0]", "at least 1 chars long"}},
		{"blank tag", acct + "type: Permanent\nscene: {id: 9}\ntags: [\"   \"]",
			[]string{"spec.tags[0]", "a tag name must not be blank"}},
		{"a tag twice", acct + "type: Permanent\nscene: {id: 9}\ntags: [spring, spring]",
			[]string{"spec.tags[1]", "Duplicate value"}},
		{"21 tags", acct + "type: Permanent\nscene: {id: 9}\ntags: [" + manyTags + "]",
			[]string{"spec.tags", "must have at most 20 items"}},
		{"unknown tagOn", acct + "type: Permanent\nscene: {id: 9}\ntags: [a]\ntagOn: Everyone",
			[]string{"spec.tagOn", `Unsupported value: "Everyone"`, `"AllScanners", "NewFollowers"`}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := object(t, fmt.Sprintf("case-%d", i), tc.spec)
			err := env.Get(t).Client.Create(context.Background(), obj, client.DryRunAll)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("invalid spec accepted:\n%s", tc.spec)
			}
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid (422) refusal, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q\n  does not contain %q", err.Error(), w)
				}
			}
			// A rule that failed to evaluate says so in CEL's terms, which tell a user nothing.
			for _, noise := range []string{"conversion", "protobuf", "failed to evaluate", "should match"} {
				if strings.Contains(err.Error(), noise) {
					t.Errorf("refusal %q\n  contains %q", err.Error(), noise)
				}
			}
		})
	}
}

// TestUpdatesAreValidatedToo: the rules hold on update, not only on create, and scene and type
// may change (the controller re-issues).
func TestUpdatesAreValidatedToo(t *testing.T) {
	ctx := context.Background()
	obj := object(t, "mutable", "accountRef: {name: a}\ntype: Temporary\nscene: {id: 5}\nttl: 1h")
	if err := env.Get(t).Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = env.Get(t).Client.Delete(ctx, obj) })

	if err := unstructured.SetNestedField(obj.Object, map[string]any{"str": "changed"}, "spec", "scene"); err != nil {
		t.Fatal(err)
	}
	if err := env.Get(t).Client.Update(ctx, obj); err != nil {
		t.Fatalf("changing the scene must be allowed: %v", err)
	}
	if err := unstructured.SetNestedField(obj.Object, "Permanent", "spec", "type"); err != nil {
		t.Fatal(err)
	}
	err := env.Get(t).Client.Update(ctx, obj)
	if err == nil || !strings.Contains(err.Error(), "ttl must not be set on a Permanent code") {
		t.Fatalf("switching to Permanent while ttl is set must be refused, got %v", err)
	}
}

// TestPrinterColumns reads the server-side table kubectl prints for `kubectl get wechatqrcodes`,
// so the columns' JSONPaths (the scene union, the annotation with dots in its key) are proven
// against the real API server rather than by reading the CRD.
func TestPrinterColumns(t *testing.T) {
	ctx := context.Background()
	for _, o := range []struct{ name, spec, scans string }{
		{"by-id", "accountRef: {name: a}\ntype: Permanent\nscene: {id: 42}", "17"},
		{"by-str", "accountRef: {name: a}\ntype: Temporary\nscene: {str: spring}\nttl: 2h", ""},
	} {
		obj := object(t, o.name, o.spec)
		if o.scans != "" {
			obj.SetAnnotations(map[string]string{qrv1alpha1.AnnotationScans: o.scans,
				qrv1alpha1.AnnotationSubscribes: "5", qrv1alpha1.AnnotationUniqueScanners: "12"})
		}
		if err := env.Get(t).Client.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = env.Get(t).Client.Delete(ctx, obj) })
	}
	code := &qrv1alpha1.WeChatQRCode{}
	key := client.ObjectKey{Namespace: "default", Name: "by-id"}
	if err := env.Get(t).Client.Get(ctx, key, code); err != nil {
		t.Fatal(err)
	}
	code.Status.ImageURL = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket=abc%2B%3D"
	code.Status.Conditions = []metav1.Condition{{Type: qrv1alpha1.ConditionReady, Status: metav1.ConditionTrue,
		Reason: "Issued", Message: "issued", LastTransitionTime: metav1.Now()},
		{Type: qrv1alpha1.ConditionSinkDelivering, Status: metav1.ConditionFalse,
			Reason: qrv1alpha1.ReasonSinkFailing, Message: "answered 503", LastTransitionTime: metav1.Now()}}
	code.Status.SinkDelivery = &qrv1alpha1.SinkDeliveryStatus{Backlog: 12, LastError: "answered 503", ObservedTime: metav1.Now()}
	if err := env.Get(t).Client.Status().Update(ctx, code); err != nil {
		t.Fatal(err)
	}

	table := getTable(t, "/apis/wechat.qrcode-operator.io/v1alpha1/namespaces/default/wechatqrcodes")
	var names []string
	for _, c := range table.ColumnDefinitions {
		names = append(names, c.Name)
	}
	if got, want := strings.Join(names, ","), "Name,Type,Scene,Ready,Expires,Scans,Followers,Unique,Age,Reason,Image,Sink,Backlog"; got != want {
		t.Fatalf("columns %s, want %s", got, want)
	}
	rows := map[string][]any{}
	for _, r := range table.Rows {
		rows[fmt.Sprint(r.Cells[0])] = r.Cells
	}
	check := func(row string, col int, want string) {
		t.Helper()
		if got := fmt.Sprint(rows[row][col]); got != want {
			t.Errorf("row %s column %s = %q, want %q", row, names[col], got, want)
		}
	}
	check("by-id", 1, "Permanent")
	check("by-id", 2, "42")
	check("by-id", 3, "True")
	check("by-id", 5, "17")
	check("by-id", 6, "5")
	check("by-id", 7, "12")
	check("by-id", 9, "Issued")
	check("by-id", 10, code.Status.ImageURL)
	check("by-id", 11, qrv1alpha1.ReasonSinkFailing)
	check("by-id", 12, "12")
	check("by-str", 1, "Temporary")
	check("by-str", 2, "spring")
}

func getTable(t *testing.T, path string) *metav1.Table {
	t.Helper()
	cfg := rest.CopyConfig(env.Get(t).Config)
	httpClient, err := rest.HTTPClientFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodGet, strings.TrimSuffix(cfg.Host, "/")+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	// What kubectl asks for: the server renders the CRD's printer columns.
	req.Header.Set("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
	resp, err := httpClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	table := &metav1.Table{}
	if err := json.Unmarshal(body, table); err != nil {
		t.Fatalf("%s: %v: %s", req.URL, err, body)
	}
	return table
}

// TestSamplesAreValid: every object the README points users at is accepted as written, and the
// samples show both account kinds and every kind of code.
func TestSamplesAreValid(t *testing.T) {
	var files []string
	for _, dir := range []string{"", "namespaced"} {
		found, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), "config", "samples", dir, "wechat_*.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, found...)
	}
	kinds := map[string]bool{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if obj.GetKind() != qrv1alpha1.KindClusterWeChatAccount {
			obj.SetNamespace("default")
		}
		if err := env.Get(t).Client.Create(context.Background(), obj, client.DryRunAll); err != nil {
			t.Errorf("%s refused: %v", filepath.Base(f), err)
		}
		if obj.GetKind() != "WeChatQRCode" {
			kinds[obj.GetKind()] = true
			continue
		}
		typ, _, _ := unstructured.NestedString(obj.Object, "spec", "type")
		scene, _, _ := unstructured.NestedMap(obj.Object, "spec", "scene")
		for field := range scene {
			kinds[typ+"/"+field] = true
		}
	}
	for _, want := range []string{qrv1alpha1.KindWeChatAccount, qrv1alpha1.KindClusterWeChatAccount, "Temporary/id", "Temporary/str", "Permanent/id", "Permanent/str"} {
		if !kinds[want] {
			t.Errorf("no sample of %s among %v (found %v)", want, files, kinds)
		}
	}
}

// TestLedgerRefusesEntryObjects: a callback server from before entries were lines of a batch
// creates segments with spec.entries, which the API server prunes; the segment must then be
// refused (its scans answered 503 and retried by WeChat), not stored empty and acknowledged.
func TestLedgerRefusesEntryObjects(t *testing.T) {
	seg := func(spec map[string]any) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": qrv1alpha1.GroupVersion.String(),
			"kind":       "WeChatScanLedger",
			"metadata":   map[string]any{"name": "replica-1-1", "namespace": "default"},
			"spec":       spec,
		}}
	}
	old := seg(map[string]any{"replica": "replica", "entries": []any{map[string]any{"k": "a", "c": "ns/n", "u": "u", "t": 1, "o": 2}}})
	err := env.Get(t).Client.Create(context.Background(), old, client.DryRunAll)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.batches") {
		t.Fatalf("a segment of entry objects: %v, want refused for spec.batches", err)
	}
	current := seg(map[string]any{"replica": "replica", "batches": []any{"1 k ns/n u n 1 2"}})
	if err := env.Get(t).Client.Create(context.Background(), current, client.DryRunAll); err != nil {
		t.Fatalf("a segment of one batch refused: %v", err)
	}
}

// TestForwardTimeoutMessages: forward.timeout, a duration like ttl, is refused with a message of
// its own, never CEL's type-conversion error.
func TestForwardTimeoutMessages(t *testing.T) {
	for _, tc := range []struct {
		timeout string
		want    string
	}{
		{"500ms", ""},
		{"5s", "forward.timeout must be between 100ms and 4s"},
		{"3 seconds", "forward.timeout 3 seconds is not a duration: write it in seconds or milliseconds, e.g. 3s or 500ms"},
	} {
		u := &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": qrv1alpha1.GroupVersion.String(),
			"kind":       qrv1alpha1.KindWeChatAccount,
			"metadata":   map[string]any{"name": "timeout", "namespace": "default"},
			"spec": map[string]any{
				"secretRef": map[string]any{"name": "acct"},
				"forward":   map[string]any{"url": "http://app.example/", "timeout": tc.timeout},
			},
		}}
		err := env.Get(t).Client.Create(context.Background(), u, client.DryRunAll)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s refused: %v", tc.timeout, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), "spec.forward.timeout") || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v\nwant spec.forward.timeout and %q", tc.timeout, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "conversion"):
			t.Errorf("%s: %v", tc.timeout, err)
		}
	}
}
