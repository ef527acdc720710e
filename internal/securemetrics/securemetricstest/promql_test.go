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

package securemetricstest

import (
	"slices"
	"testing"
)

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`up`, []string{"up"}},
		{`sum by (le, endpoint) (rate(a_bucket{x="by (b)", y=~'c|d'}[$__rate_interval]))`, []string{"a_bucket"}},
		{`histogram_quantile(0.99, sum without(le) (rate(h_bucket[5m:1m] offset 1h)))`, []string{"h_bucket"}},
		{`count((exp_seconds - time()) < 86400) or vector(0)`, []string{"exp_seconds"}},
		{`a_sum / on(job) group_left(instance) b_count > bool 1e3`, []string{"a_sum", "b_count"}},
		{"sum(rate(x_total{a=`}`}[1m])) unless ignoring (k) y:recorded", []string{"x_total", "y:recorded"}},
		{`max(z) and min(w) @ start()`, []string{"z", "w"}},
	} {
		got, err := MetricNames(c.expr)
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("MetricNames(%s) = %q, %v; want %q", c.expr, got, err, c.want)
		}
	}
	for _, bad := range []string{`x{a="b"`, `rate(x[5m)`, `x{a="b}`, `x}`} {
		if got, err := MetricNames(bad); err == nil {
			t.Errorf("MetricNames(%s) = %q, want an error", bad, got)
		}
	}
}
