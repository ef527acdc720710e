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

// Command ledgercost measures what the API server pays to store scan ledger entries, for each
// candidate stored form of a WeChatScanLedger segment (`go run ./test/ledgercost`):
//
// It starts a control plane (internal/testenv), installs one CRD per candidate (a copy of the
// segment's schema with its own group, so that all are measured against the same API server),
// and appends -n entries in batches of -batch into segments of -segment entries exactly as the
// callback server's ledger does (a create with the first batch, then one JSON patch per batch).
// It reports the CPU the kube-apiserver and etcd processes used (utime+stime from /proc, so the
// machine's other load does not count as wall time would), per 1,000 entries. The candidates
// run interleaved, -reps times each, and the median is reported; the API server's idle CPU over
// the same wall time is shown beside it.
//
// With -profile DIR it also takes a CPU profile of kube-apiserver (/debug/pprof/profile, which
// it serves to the admin user) over a loop of each candidate's load, into DIR/<candidate>.pprof
// (`go tool pprof -top DIR/objects.pprof`).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	qrv1alpha1 "github.com/qrcode-operator/wechat-qrcode-operator/api/v1alpha1"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

type config struct {
	n, batch, segment, reps int
	only                    []string
	profile                 string
	profileTime             time.Duration
}

func main() {
	var (
		c    config
		only string
	)
	flag.IntVar(&c.n, "n", 20000, "entries appended per candidate and repetition")
	flag.IntVar(&c.batch, "batch", 250, "entries per write (one commit window's scans)")
	flag.IntVar(&c.segment, "segment", 500, "entries per segment (maxSegmentEntries)")
	flag.IntVar(&c.reps, "reps", 3, "repetitions of each candidate, interleaved; the median is reported")
	flag.StringVar(&only, "only", "", "candidates to run, comma-separated; empty: all")
	flag.StringVar(&c.profile, "profile", "", "directory for a CPU profile of kube-apiserver per candidate; empty: none")
	flag.DurationVar(&c.profileTime, "profile-time", 15*time.Second, "length of each profile")
	flag.Parse()
	if only != "" {
		c.only = strings.Split(only, ",")
	}
	if err := run(context.Background(), c); err != nil {
		fmt.Fprintln(os.Stderr, "ledgercost:", err)
		os.Exit(1)
	}
}

// candidate is one stored form of a segment's entries: the schema of spec.entries and how one
// write's batch of entries becomes the items it appends.
type candidate struct {
	name    string
	entries apiextensionsv1.JSONSchemaProps
	items   func([]qrv1alpha1.LedgerEntry) []any
}

func (c candidate) group() string { return c.name + ".ledgercost.test" }

func (c candidate) gvk() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: c.group(), Version: "v1", Kind: "Segment"}
}

// objectEntry is the stored form of an entry before this measurement: an object of six fields.
func objectEntry(e qrv1alpha1.LedgerEntry) any {
	m := map[string]any{"k": e.Key, "c": e.Code, "u": string(e.UID), "t": e.At, "o": e.Scanner}
	if e.Subscribe {
		m["s"] = true
	}
	return m
}

func stringEntry(e qrv1alpha1.LedgerEntry) any { return qrv1alpha1.FormatLedgerEntry(e) }

// each stores every entry as an item of its own.
func each(f func(qrv1alpha1.LedgerEntry) any) func([]qrv1alpha1.LedgerEntry) []any {
	return func(es []qrv1alpha1.LedgerEntry) []any {
		out := make([]any, len(es))
		for i, e := range es {
			out[i] = f(e)
		}
		return out
	}
}

// packed stores a batch as one item, as FormatLedgerBatch does.
func packed(es []qrv1alpha1.LedgerEntry) []any { return []any{qrv1alpha1.FormatLedgerBatch(es)} }

func candidates(segment, batch int) []candidate {
	str := apiextensionsv1.JSONSchemaProps{Type: "string"}
	integer := apiextensionsv1.JSONSchemaProps{Type: "integer", Format: "int64"}
	object := apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"k": str, "c": str, "u": str, "s": {Type: "boolean"}, "t": integer, "o": integer,
		},
		Required: []string{"c", "k", "o", "t", "u"},
	}
	list := func(items apiextensionsv1.JSONSchemaProps) apiextensionsv1.JSONSchemaProps {
		return apiextensionsv1.JSONSchemaProps{Type: "array", Items: &apiextensionsv1.JSONSchemaPropsOrArray{Schema: &items}}
	}
	// bounded adds the bounds a CRD can state, which the API server checks on every write.
	bounded := func(items apiextensionsv1.JSONSchemaProps, maxItems, maxLength int64) apiextensionsv1.JSONSchemaProps {
		items.MaxLength = ptr.To(maxLength)
		l := list(items)
		l.MaxItems = ptr.To(maxItems)
		l.XListType = ptr.To("atomic")
		return l
	}
	return []candidate{
		{"objects", list(object), each(objectEntry)},
		{"strings", list(str), each(stringEntry)},
		{"strings-bounded", bounded(str, int64(segment), 512), each(stringEntry)},
		{"packed", list(str), packed},
		{"packed-bounded", bounded(str, int64(segment), int64(batch)*512), packed},
	}
}

// crd is a CRD of candidate c: the segment's schema (replica, entries) in a group of its own.
func (c candidate) crd() *apiextensionsv1.CustomResourceDefinition {
	spec := apiextensionsv1.JSONSchemaProps{
		Type: "object",
		Properties: map[string]apiextensionsv1.JSONSchemaProps{
			"replica": {Type: "string"},
			"entries": c.entries,
		},
		Required: []string{"replica"},
	}
	return &apiextensionsv1.CustomResourceDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: "segments." + c.group()},
		Spec: apiextensionsv1.CustomResourceDefinitionSpec{
			Group: c.group(),
			Names: apiextensionsv1.CustomResourceDefinitionNames{Kind: "Segment", ListKind: "SegmentList", Plural: "segments", Singular: "segment"},
			Scope: apiextensionsv1.NamespaceScoped,
			Versions: []apiextensionsv1.CustomResourceDefinitionVersion{{
				Name: "v1", Served: true, Storage: true,
				Schema: &apiextensionsv1.CustomResourceValidation{OpenAPIV3Schema: &apiextensionsv1.JSONSchemaProps{
					Type:       "object",
					Properties: map[string]apiextensionsv1.JSONSchemaProps{"spec": spec},
					Required:   []string{"spec"},
				}},
			}},
		},
	}
}

// scans are n entries as the callback server makes them: 60-character code names over a
// thousand codes, WeChat-like dedupe keys, random OpenID hashes.
func scans(n int) []qrv1alpha1.LedgerEntry {
	r := rand.New(rand.NewPCG(1, 2))
	at := time.Date(2026, 11, 29, 9, 30, 0, 0, time.UTC).UnixMilli()
	out := make([]qrv1alpha1.LedgerEntry, n)
	for i := range out {
		code := r.IntN(1000)
		out[i] = qrv1alpha1.LedgerEntry{
			Key:       fmt.Sprintf("%012x", r.Uint64()>>16),
			Code:      fmt.Sprintf("campaign-spring-2026/poster-%032d", code),
			UID:       types.UID(fmt.Sprintf("6f1c2a9e-%04x-4b1e-9c3d-%012x", code, code)),
			Subscribe: r.IntN(3) == 0,
			At:        at + int64(i),
			Scanner:   r.Int64(),
		}
	}
	return out
}

func run(ctx context.Context, c config) error {
	env, err := testenv.Start()
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cands := slices.DeleteFunc(candidates(c.segment, c.batch), func(cd candidate) bool {
		return c.only != nil && !slices.Contains(c.only, cd.name)
	})
	crds := make([]*apiextensionsv1.CustomResourceDefinition, len(cands))
	for i, cd := range cands {
		crds[i] = cd.crd()
	}
	if _, err := envtest.InstallCRDs(env.Config, envtest.CRDInstallOptions{CRDs: crds}); err != nil {
		return err
	}
	// Unthrottled: the load is sequential, as one replica's commit loop is, and client-go's
	// default 5 requests a second would only stretch the wall time.
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 1000, 1000
	cl, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	entries := scans(c.n)
	fmt.Fprintf(os.Stderr, "ledgercost: %d entries, batches of %d, segments of %d, %d reps\n", c.n, c.batch, c.segment, c.reps)

	results := map[string][]sample{}
	for rep := range c.reps {
		for _, cd := range cands {
			s, err := measure(ctx, cl, cd, entries, c.batch, c.segment)
			if err != nil {
				return fmt.Errorf("%s: %w", cd.name, err)
			}
			fmt.Fprintf(os.Stderr, "ledgercost: rep %d %-16s %s\n", rep+1, cd.name, s.perThousand(c.n))
			results[cd.name] = append(results[cd.name], s)
		}
	}
	idle := idleRate(3 * time.Second)
	fmt.Printf("\n%d entries in batches of %d into %d-entry segments; median of %d; CPU ms per 1,000 entries\n", c.n, c.batch, c.segment, c.reps)
	fmt.Printf("%-16s %14s %8s %8s %12s %10s\n", "candidate", "kube-apiserver", "etcd", "wall s", "idle share", "bytes/ent")
	for _, cd := range cands {
		m := median(results[cd.name])
		fmt.Printf("%-16s %14.1f %8.1f %8.1f %11.0f%% %10.0f\n", cd.name, m.apiserver*1e6/float64(c.n), m.etcd*1e6/float64(c.n), m.wall.Seconds(),
			100*idle*m.wall.Seconds()/m.apiserver, float64(m.bytes)/float64(c.n))
	}
	if c.profile == "" {
		return nil
	}
	if err := os.MkdirAll(c.profile, 0o755); err != nil {
		return err
	}
	for _, cd := range cands {
		if err := profile(ctx, env.Config, cl, cd, entries, c); err != nil {
			return fmt.Errorf("profiling %s: %w", cd.name, err)
		}
	}
	return nil
}

// sample is what one load cost: CPU seconds of each process, wall time, and the bytes of the
// stored entries.
type sample struct {
	apiserver, etcd float64
	wall            time.Duration
	bytes           int
}

func (s sample) perThousand(n int) string {
	return fmt.Sprintf("apiserver %.1f ms, etcd %.1f ms per 1,000 entries (%.1f s wall)", s.apiserver*1e6/float64(n), s.etcd*1e6/float64(n), s.wall.Seconds())
}

func median(ss []sample) sample {
	ss = slices.Clone(ss)
	slices.SortFunc(ss, func(a, b sample) int { return int(1e9 * (a.apiserver - b.apiserver)) })
	return ss[len(ss)/2]
}

// idleRate is the API server's CPU seconds per second while nothing is asked of it.
func idleRate(d time.Duration) float64 {
	before := harness.CPUByName()["kube-apiserver"]
	time.Sleep(d) // measures an idle period: nothing to synchronise with
	return (harness.CPUByName()["kube-apiserver"] - before) / d.Seconds()
}

// measure appends entries as the ledger does, then deletes the segments (not measured).
func measure(ctx context.Context, cl client.Client, cd candidate, entries []qrv1alpha1.LedgerEntry, batch, segment int) (sample, error) {
	before, start := harness.CPUByName(), time.Now()
	bytes, err := load(ctx, cl, cd, entries, batch, segment, "m")
	if err != nil {
		return sample{}, err
	}
	wall, after := time.Since(start), harness.CPUByName()
	s := sample{
		apiserver: after["kube-apiserver"] - before["kube-apiserver"],
		etcd:      after["etcd"] - before["etcd"],
		wall:      wall, bytes: bytes,
	}
	return s, clear(ctx, cl, cd)
}

// load writes entries into segments of cd named <prefix>-<n>; it returns the bytes of the
// stored entries' JSON.
func load(ctx context.Context, cl client.Client, cd candidate, entries []qrv1alpha1.LedgerEntry, batch, segment int, prefix string) (int, error) {
	bytes, seq, inSegment := 0, 0, 0
	var seg *unstructured.Unstructured
	for i := 0; i < len(entries); i += batch {
		items := cd.items(entries[i:min(i+batch, len(entries))])
		b, _ := json.Marshal(items)
		bytes += len(b)
		n := min(batch, len(entries)-i)
		if seg == nil || inSegment+n > segment {
			seq++
			seg = &unstructured.Unstructured{}
			seg.SetGroupVersionKind(cd.gvk())
			seg.SetNamespace("default")
			seg.SetName(fmt.Sprintf("%s-%d", prefix, seq))
			seg.Object["spec"] = map[string]any{"replica": "bench", "entries": items}
			if err := cl.Create(ctx, seg); err != nil {
				return 0, err
			}
			inSegment = n
			continue
		}
		if err := cl.Patch(ctx, seg, client.RawPatch(types.JSONPatchType, appendPatch(items))); err != nil {
			return 0, err
		}
		inSegment += n
	}
	return bytes, nil
}

// appendPatch appends items to spec.entries, one add operation each, as the ledger does.
func appendPatch(items []any) []byte {
	ops := make([]map[string]any, len(items))
	for i, it := range items {
		ops[i] = map[string]any{"op": "add", "path": "/spec/entries/-", "value": it}
	}
	b, err := json.Marshal(ops)
	if err != nil {
		panic(err)
	}
	return b
}

func clear(ctx context.Context, cl client.Client, cd candidate) error {
	seg := &unstructured.Unstructured{}
	seg.SetGroupVersionKind(cd.gvk())
	return cl.DeleteAllOf(ctx, seg, client.InNamespace("default"))
}

// profile takes a CPU profile of kube-apiserver while cd's load runs again and again.
func profile(ctx context.Context, cfg *rest.Config, cl client.Client, cd candidate, entries []qrv1alpha1.LedgerEntry, c config) error {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", strings.TrimSuffix(cfg.Host, "/"), int(c.profileTime.Seconds()))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	type result struct {
		body []byte
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := hc.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer func() { _ = resp.Body.Close() }()
		b, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", url, resp.Status)
		}
		done <- result{b, err}
	}()
	for round := 0; ; round++ {
		select {
		case r := <-done:
			if r.err != nil {
				return r.err
			}
			path := filepath.Join(c.profile, cd.name+".pprof")
			fmt.Fprintf(os.Stderr, "ledgercost: profile of %s (%d loads) in %s\n", cd.name, round, path)
			return os.WriteFile(path, r.body, 0o644)
		default:
		}
		if _, err := load(ctx, cl, cd, entries, c.batch, c.segment, fmt.Sprintf("p%d", round)); err != nil {
			return err
		}
		if err := clear(ctx, cl, cd); err != nil {
			return err
		}
	}
}
