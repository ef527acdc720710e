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
	"fmt"
	"math"
	"net/http"
	"slices"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Histogram is a Prometheus histogram as scraped: the cumulative count at or below each upper
// bound, in increasing order, and the count of all observations.
type Histogram struct {
	Bounds []float64
	Counts []float64
	Count  float64
}

// ScrapeHistogram reads the histogram name (summed over its series) from the exposition at url;
// a histogram nothing was observed in yet is the zero Histogram.
func ScrapeHistogram(url, name string) (Histogram, error) {
	resp, err := http.Get(url)
	if err != nil {
		return Histogram{}, err
	}
	defer func() { _ = resp.Body.Close() }()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return Histogram{}, fmt.Errorf("metrics of %s: %w", url, err)
	}
	var h Histogram
	f, ok := families[name]
	if !ok {
		return h, nil
	}
	for _, m := range f.GetMetric() {
		hist := m.GetHistogram()
		if hist == nil {
			return h, fmt.Errorf("%s is not a histogram", name)
		}
		h.Count += float64(hist.GetSampleCount())
		for _, b := range hist.GetBucket() {
			i, found := slices.BinarySearch(h.Bounds, b.GetUpperBound())
			if !found {
				h.Bounds = slices.Insert(h.Bounds, i, b.GetUpperBound())
				h.Counts = slices.Insert(h.Counts, i, 0)
			}
			h.Counts[i] += float64(b.GetCumulativeCount())
		}
	}
	return h, nil
}

// Minus is what was observed in h since earlier, a scrape of the same histogram.
func (h Histogram) Minus(earlier Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Counts: slices.Clone(h.Counts), Count: h.Count - earlier.Count}
	for i, b := range h.Bounds {
		if j, found := slices.BinarySearch(earlier.Bounds, b); found {
			out.Counts[i] -= earlier.Counts[j]
		}
	}
	return out
}

// Plus is the observations of h and other together, scrapes of the same histogram from two
// processes (either may have observed nothing yet: the zero Histogram).
func (h Histogram) Plus(other Histogram) Histogram {
	if len(h.Bounds) == 0 {
		return other
	}
	out := Histogram{Bounds: h.Bounds, Counts: slices.Clone(h.Counts), Count: h.Count + other.Count}
	for i, b := range h.Bounds {
		if j, found := slices.BinarySearch(other.Bounds, b); found {
			out.Counts[i] += other.Counts[j]
		}
	}
	return out
}

// Quantile is the q-quantile, interpolated linearly within its bucket as Prometheus's
// histogram_quantile does; +Inf when it lies beyond the last bound, NaN without observations.
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 {
		return math.NaN()
	}
	rank := q * h.Count
	lower, below := 0.0, 0.0
	for i, b := range h.Bounds {
		if h.Counts[i] >= rank {
			if h.Counts[i] == below {
				return b
			}
			return lower + (b-lower)*(rank-below)/(h.Counts[i]-below)
		}
		lower, below = b, h.Counts[i]
	}
	return math.Inf(1)
}

// Within is the share of the observations at or below bound, one of the histogram's bounds.
func (h Histogram) Within(bound float64) float64 {
	i, found := slices.BinarySearch(h.Bounds, bound)
	if !found || h.Count == 0 {
		return math.NaN()
	}
	return h.Counts[i] / h.Count
}
