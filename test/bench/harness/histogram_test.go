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

package harness

import (
	"math"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// TestHistogram: a real client_golang histogram, served and scraped, gives back the quantiles
// and shares of what was observed between two scrapes.
func TestHistogram(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lag_seconds", Help: "lag", Buckets: []float64{0.5, 1, 2.5}})
	reg.MustRegister(h)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	for range 50 {
		h.Observe(10) // before: not part of the difference
	}
	before, err := ScrapeHistogram(srv.URL, "lag_seconds")
	if err != nil {
		t.Fatal(err)
	}
	// 90 observations in (0, 0.5], 8 in (0.5, 1], 2 beyond 2.5.
	for range 90 {
		h.Observe(0.2)
	}
	for range 8 {
		h.Observe(0.7)
	}
	h.Observe(3)
	h.Observe(4)
	after, err := ScrapeHistogram(srv.URL, "lag_seconds")
	if err != nil {
		t.Fatal(err)
	}
	d := after.Minus(before)
	for _, tc := range []struct {
		q, want float64
	}{
		{0.5, 0.5 * 50 / 90},  // rank 50 of 90 in the first bucket, from 0
		{0.94, 0.5 + 0.5*4/8}, // rank 94: the fourth of 8 in (0.5, 1]
		{0.98, 1},
		{0.995, math.Inf(1)},
	} {
		if got := d.Quantile(tc.q); math.Abs(got-tc.want) > 1e-9 && got != tc.want {
			t.Errorf("quantile %v = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := d.Within(1); got != 0.98 {
		t.Errorf("within 1 s: %v, want 0.98", got)
	}
	if d.Count != 100 {
		t.Errorf("count %v, want 100", d.Count)
	}
	empty, err := ScrapeHistogram(srv.URL, "absent_seconds")
	if err != nil || !math.IsNaN(empty.Quantile(0.5)) {
		t.Errorf("an absent histogram: %v, %v", empty, err)
	}
	// Two processes' scrapes together, one of which observed nothing.
	for _, both := range []Histogram{d.Plus(d), empty.Plus(d).Plus(d), d.Plus(empty).Plus(d)} {
		if both.Count != 200 || both.Within(1) != 0.98 || both.Quantile(0.94) != d.Quantile(0.94) {
			t.Errorf("d twice: count %v, within 1 s %v, p94 %v; want 200, 0.98, %v", both.Count, both.Within(1), both.Quantile(0.94), d.Quantile(0.94))
		}
	}
}
