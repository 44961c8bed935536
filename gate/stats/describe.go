package stats

import (
	"math"
	"sort"
)

// Quantile returns the p-quantile of x by linear interpolation between
// order statistics (R's default, type 7). It returns NaN for an empty x.
func Quantile(x []float64, p float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	sorted := append([]float64(nil), x...)
	sort.Float64s(sorted)
	return quantileSorted(sorted, p)
}

func quantileSorted(sorted []float64, p float64) float64 {
	h := (float64(len(sorted)) - 1) * p
	lo := math.Floor(h)
	hi := math.Ceil(h)
	return sorted[int(lo)] + (h-lo)*(sorted[int(hi)]-sorted[int(lo)])
}

// Median returns the median of x (NaN when empty).
func Median(x []float64) float64 { return Quantile(x, 0.5) }

func medianSorted(sorted []float64) float64 { return quantileSorted(sorted, 0.5) }

// Spread describes how much a series moves around its centre.
type Spread struct {
	Median float64
	Mean   float64
	P5     float64
	P95    float64
	Min    float64
	Max    float64
}

// Describe computes the spread of x. An empty x gives a zero Spread.
func Describe(x []float64) Spread {
	if len(x) == 0 {
		return Spread{}
	}
	sorted := append([]float64(nil), x...)
	sort.Float64s(sorted)
	var sum float64
	for _, v := range sorted {
		sum += v
	}
	return Spread{
		Median: quantileSorted(sorted, 0.5),
		Mean:   sum / float64(len(sorted)),
		P5:     quantileSorted(sorted, 0.05),
		P95:    quantileSorted(sorted, 0.95),
		Min:    sorted[0],
		Max:    sorted[len(sorted)-1],
	}
}

// Robust is (p95 - p5) / denominator: a spread that one outlier cannot
// drive. The denominator is normally the median; callers may pass a floor.
func (s Spread) Robust(denominator float64) float64 {
	if denominator <= 0 {
		return 0
	}
	return (s.P95 - s.P5) / denominator
}

// Range is (max - min) / mean, reported beside Robust for comparison.
func (s Spread) Range() float64 {
	if s.Mean <= 0 {
		return 0
	}
	return (s.Max - s.Min) / s.Mean
}

// NormalCDF is the standard normal cumulative distribution function.
func NormalCDF(z float64) float64 {
	return 0.5 * math.Erfc(-z/math.Sqrt2)
}

// NormalQuantile is the inverse of NormalCDF for p in (0, 1).
func NormalQuantile(p float64) float64 {
	return -math.Sqrt2 * math.Erfcinv(2*p)
}

// RollingMin returns the minimum of each window of w consecutive values
// (len(x)-w+1 values). A series shorter than w is returned as it is.
func RollingMin(x []float64, w int) []float64 {
	if w <= 1 || len(x) < w {
		return append([]float64(nil), x...)
	}
	out := make([]float64, 0, len(x)-w+1)
	for i := 0; i+w <= len(x); i++ {
		m := x[i]
		for _, v := range x[i+1 : i+w] {
			m = math.Min(m, v)
		}
		out = append(out, m)
	}
	return out
}
