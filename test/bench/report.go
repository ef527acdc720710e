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

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/qrcode-operator/wechat-qrcode-operator/test/bench/harness"
)

// Figure is one measured number. Goal and Met are set for the figures the project has a goal
// for; Met is nil when there is no goal.
type Figure struct {
	Bench  string  `json:"bench"`
	Name   string  `json:"figure"`
	Value  float64 `json:"value"`
	Unit   string  `json:"unit"`
	Goal   string  `json:"goal,omitempty"`
	Met    *bool   `json:"met,omitempty"`
	Detail string  `json:"detail,omitempty"`
}

func figure(bench, name string, value float64, unit, detail string) Figure {
	return Figure{Bench: bench, Name: name, Value: value, Unit: unit, Detail: detail}
}

// goal sets f's goal and whether the value meets it.
func (f Figure) goal(goal string, met bool) Figure {
	f.Goal, f.Met = goal, &met
	return f
}

func (f Figure) value() string {
	switch {
	case f.Value == float64(int64(f.Value)):
		return fmt.Sprintf("%d %s", int64(f.Value), f.Unit)
	case f.Value < 10:
		return fmt.Sprintf("%.2f %s", f.Value, f.Unit)
	default:
		return fmt.Sprintf("%.1f %s", f.Value, f.Unit)
	}
}

func (f Figure) verdict() string {
	switch {
	case f.Met == nil:
		return ""
	case *f.Met:
		return "met (" + f.Goal + ")"
	default:
		return "MISSED (" + f.Goal + ")"
	}
}

// writeTable writes the figures for people: one row each, with the goal's verdict.
func writeTable(w io.Writer, figures []Figure) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BENCH\tFIGURE\tVALUE\tGOAL\tDETAIL")
	for _, f := range figures {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", f.Bench, f.Name, f.value(), f.verdict(), f.Detail)
	}
	_ = tw.Flush()
}

// writeJSON writes one JSON object per line per figure, for machines.
func writeJSON(w io.Writer, figures []Figure) {
	enc := json.NewEncoder(w)
	for _, f := range figures {
		_ = enc.Encode(f)
	}
}

// machine describes where the figures were measured: they mean nothing elsewhere.
func machine() string { return harness.Machine() }

// writeResults writes the results file: date, machine, settings, the table and the JSON lines.
func writeResults(path string, started time.Time, mach, settings string, figures []Figure) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\n")
	fmt.Fprintf(&b, "- date: %s (took %s)\n", started.UTC().Format(time.RFC3339), time.Since(started).Round(time.Second))
	fmt.Fprintf(&b, "- machine: %s\n", mach)
	fmt.Fprintf(&b, "- settings: %s\n\n", settings)
	fmt.Fprintf(&b, "Written by `make bench` (test/bench). Times are only meaningful as ratios against the baseline\n")
	fmt.Fprintf(&b, "measured in the same run: the machine is shared and noisy.\n\n```\n")
	writeTable(&b, figures)
	fmt.Fprintf(&b, "```\n\n```json\n")
	writeJSON(&b, figures)
	fmt.Fprintf(&b, "```\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
