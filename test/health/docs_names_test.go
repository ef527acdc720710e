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
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/qrcode-operator/wechat-qrcode-operator/internal/dev/proc"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/kubectlplugin"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/metricnames"
	"github.com/qrcode-operator/wechat-qrcode-operator/internal/testenv"
)

var (
	makeTarget = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9_.-]*):([^=]|$)`)
	makeCall   = regexp.MustCompile(`(?:^|[\s;&|(\x60$])make((?:\s+[^\s;&|)#\x60]+)*)`)
)

// TestDocsMakeTargets: every `make <target>` of README.md and docs/ is a target of the
// Makefile of the same tree.
func TestDocsMakeTargets(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]bool{}
	for _, l := range strings.Split(string(raw), "\n") {
		if m := makeTarget.FindStringSubmatch(l); m != nil {
			targets[m[1]] = true
		}
	}
	var checked int
	for _, p := range pages(t) {
		for text, line := range p.code {
			for _, m := range makeCall.FindAllStringSubmatch(text, -1) {
				for _, arg := range strings.Fields(m[1]) {
					// Options and variables are make's; the rest are targets.
					if strings.HasPrefix(arg, "-") || strings.Contains(arg, "=") || arg == "…" || arg == "..." {
						continue
					}
					checked++
					if !targets[arg] {
						t.Errorf("%s:%d: make %s: no such target in the Makefile", p.path, line, arg)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no make target found in the docs")
	}
}

// flagSets are the flags of each of the operator's programs, by the name the docs call it by.
type flagSets map[string]map[string]bool

// programFlags builds the manager and the callback server as `make build` does and reads their
// flags from -help, so that flags bound by libraries (zap, controller-runtime) count too; the
// plugin's and hack/dev's come from their commands.
func programFlags(t *testing.T) flagSets {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	build, bins := proc.BuildCommand(ctx, "go", testenv.RepoRoot(), dir)
	build.Args = append(build.Args, "./hack/dev")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sets := flagSets{
		"manager":  helpFlags(ctx, t, bins.Manager),
		"callback": helpFlags(ctx, t, bins.Callback),
		"dev":      map[string]bool{},
		"plugin":   map[string]bool{},
	}
	for _, sub := range []string{"up", "scan", "message"} {
		for f := range helpFlags(ctx, t, filepath.Join(dir, "dev"), sub) {
			sets["dev"][f] = true
		}
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		// cobra adds --help only when a command runs.
		c.InitDefaultHelpFlag()
		for _, usage := range []string{c.Flags().FlagUsages(), c.InheritedFlags().FlagUsages()} {
			for _, m := range usageFlag.FindAllStringSubmatch(usage, -1) {
				sets["plugin"][m[1]] = true
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(kubectlplugin.NewCommand(genericiooptions.NewTestIOStreamsDiscard(), clocktesting.NewFakePassiveClock(time.Now())))
	return sets
}

var (
	helpFlag  = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][A-Za-z0-9_.-]*)`)
	usageFlag = regexp.MustCompile(`(?m)^ +(?:-[A-Za-z], )?--([a-z0-9][a-z0-9-]*)`)
)

// helpFlags are the flags the flag package lists at -help.
func helpFlags(ctx context.Context, t *testing.T, bin string, args ...string) map[string]bool {
	t.Helper()
	out, err := exec.CommandContext(ctx, bin, append(args, "-help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %v -help: %v\n%s", bin, args, err, out)
	}
	flags := map[string]bool{}
	for _, m := range helpFlag.FindAllStringSubmatch(string(out), -1) {
		flags[m[1]] = true
	}
	if len(flags) == 0 {
		t.Fatalf("%s %v -help lists no flag:\n%s", bin, args, out)
	}
	return flags
}

// has is whether one of the programs has the flag; a name ending in * stands for its prefix.
func (s flagSets) has(flag string, programs ...string) bool {
	prefix, wildcard := strings.CutSuffix(flag, "*")
	for _, p := range programs {
		for f := range s[p] {
			if f == flag || wildcard && strings.HasPrefix(f, prefix) {
				return true
			}
		}
	}
	return false
}

var (
	longFlag = regexp.MustCompile(`(?:^|[\s(\[,/])--([a-z][a-z0-9-]*\*?)`)
	// Commands of the operator's programs, and which program: any other command's flags (kubectl's,
	// helm's, go's) are not the operator's to check.
	commandOf = []struct {
		re      *regexp.Regexp
		program string
	}{
		{regexp.MustCompile(`^(?:\$ )?kubectl[ -]wechat\b`), "plugin"},
		{regexp.MustCompile(`^(?:\$ )?(?:go run \./hack/dev|\S*/dev (?:up|scan|message))\b`), "dev"},
		{regexp.MustCompile(`^(?:\$ )?/?manager\b`), "manager"},
		{regexp.MustCompile(`^(?:\$ )?/?callback\b`), "callback"},
	}
	// A span or line that starts with another command.
	otherCommand = regexp.MustCompile(`^(?:\$ )?(?:kubectl|helm|docker|go|curl|install|make|git|bash|echo|cat|export)\b`)
)

// programOf is the operator's program a command line runs; command is false when the text is
// no command line at all.
func programOf(text string) (programs []string, command bool) {
	for _, c := range commandOf {
		if c.re.MatchString(text) {
			return []string{c.program}, true
		}
	}
	return nil, otherCommand.MatchString(text)
}

// TestDocsFlags: every --flag the docs name exists on the program it is named for: a flag table
// under a heading that names the manager or the callback server is that program's; a command line
// is its program's (other programs' commands are skipped); a flag named alone in the prose of
// the plugin's page is the plugin's, elsewhere one of the operator's programs'.
func TestDocsFlags(t *testing.T) {
	sets := programFlags(t)
	all := []string{"manager", "callback", "plugin", "dev"}
	var checked int
	check := func(p *page, line int, text string, programs []string) {
		for _, m := range longFlag.FindAllStringSubmatch(text, -1) {
			checked++
			if !sets.has(m[1], programs...) {
				t.Errorf("%s:%d: --%s is no flag of %s", p.path, line, m[1], strings.Join(programs, " or "))
			}
		}
	}
	for _, p := range pages(t) {
		for _, b := range p.blocks {
			// A command's flags go with the command of its line, continued lines included.
			var programs []string
			continued := false
			for i, l := range strings.Split(b.body, "\n") {
				if !continued {
					programs, _ = programOf(strings.TrimSpace(l))
				}
				continued = strings.HasSuffix(strings.TrimSpace(l), "\\")
				if programs != nil {
					check(p, b.line+1+i, l, programs)
				}
			}
		}
		for _, s := range p.spans {
			programs, command := programOf(s.text)
			switch {
			case s.row && s.cell == 0 && strings.Contains(strings.ToLower(s.heading), "manager flags"):
				programs = []string{"manager"}
			case s.row && s.cell == 0 && strings.Contains(strings.ToLower(s.heading), "callback server flags"):
				programs = []string{"callback"}
			case !command && p.path == "docs/kubectl-plugin.md":
				programs = []string{"plugin"}
			case !command:
				programs = all
			}
			if programs != nil {
				check(p, s.line, s.text, programs)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no flag found in the docs")
	}
}

// servedMetrics are the names of the operator's own metrics, read from the Go sources that
// define them (the options' Namespace, Subsystem and Name, or a Desc's name), so that a metric
// registered only once a process runs counts too.
func servedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	fset := token.NewFileSet()
	// Every package that may define one: a metric moved to a new package is still found.
	for _, pattern := range []string{"controllers/*.go", "internal/*/*.go"} {
		files, err := filepath.Glob(filepath.Join(testenv.RepoRoot(), pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			file, err := parser.ParseFile(fset, f, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			ast.Inspect(file, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CompositeLit:
					fields := map[string]string{}
					for _, e := range n.Elts {
						kv, ok := e.(*ast.KeyValueExpr)
						if !ok {
							continue
						}
						key, ok := kv.Key.(*ast.Ident)
						if !ok {
							continue
						}
						switch v := kv.Value.(type) {
						case *ast.BasicLit:
							fields[key.Name], _ = strconv.Unquote(v.Value)
						case *ast.SelectorExpr:
							if v.Sel.Name == "Namespace" {
								fields[key.Name] = metricnames.Namespace
							}
						}
					}
					if fields["Namespace"] == metricnames.Namespace && fields["Name"] != "" {
						parts := []string{fields["Namespace"], fields["Subsystem"], fields["Name"]}
						names[strings.Join(slicesNonEmpty(parts), "_")] = true
					}
				case *ast.BinaryExpr:
					sel, ok := n.X.(*ast.SelectorExpr)
					lit, ok2 := n.Y.(*ast.BasicLit)
					if ok && ok2 && sel.Sel.Name == "Namespace" && n.Op == token.ADD {
						s, _ := strconv.Unquote(lit.Value)
						if strings.HasPrefix(s, "_") {
							names[metricnames.Namespace+s] = true
						}
					}
				}
				return true
			})
		}
	}
	if len(names) < 10 {
		t.Fatalf("found only %v: the metrics' definitions changed shape", names)
	}
	return names
}

func slicesNonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}

var (
	fullMetric = regexp.MustCompile(metricnames.Namespace + `_[a-z0-9_]+`)
	// A span that names a metric without the prefix: the metrics table's, or one like
	// `callback_forwards_total{result="timeout"}` in prose.
	shortMetric = regexp.MustCompile(`^((?:callback|code)_[a-z0-9_]+|[a-z0-9_]+_(?:total|duration_seconds|timestamp_seconds))(?:\{.*\})?$`)
)

// TestDocsMetrics: every metric of the operator the docs name is one it serves.
func TestDocsMetrics(t *testing.T) {
	served := servedMetrics(t)
	exists := func(name string) bool {
		for _, suffix := range []string{"", "_bucket", "_sum", "_count"} {
			if base, ok := strings.CutSuffix(name, suffix); ok && served[base] {
				return true
			}
		}
		return false
	}
	var checked int
	for _, p := range pages(t) {
		for i, l := range p.lines {
			for _, name := range fullMetric.FindAllString(l, -1) {
				checked++
				if !exists(name) {
					t.Errorf("%s:%d: %s: no such metric", p.path, i+1, name)
				}
			}
		}
		for _, s := range p.spans {
			m := shortMetric.FindStringSubmatch(s.text)
			inTable := s.row && s.cell == 0 && s.heading == "Metrics"
			if m == nil && !inTable {
				continue
			}
			name := s.text
			if m != nil {
				name = m[1]
			}
			if strings.HasPrefix(name, metricnames.Namespace) || strings.HasPrefix(name, "controller_runtime_") || strings.HasPrefix(name, "apiserver_") {
				continue
			}
			checked++
			if !exists(metricnames.Namespace + "_" + name) {
				t.Errorf("%s:%d: %s: no such metric (%s_%s)", p.path, s.line, s.text, metricnames.Namespace, name)
			}
		}
	}
	if checked == 0 {
		t.Fatal("no metric found in the docs")
	}
}
