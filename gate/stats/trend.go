// Package stats holds the pure statistics the gate decides with: the
// Mann-Kendall trend test, the Theil-Sen slope and robust spreads. It depends
// on nothing but the standard library so that it can be checked against
// published values on its own.
package stats

import (
	"errors"
	"math"
	"sort"
)

// ErrTooFewPoints is returned when a series is too short for a statistic.
var ErrTooFewPoints = errors.New("stats: too few points")

// MannKendall is the result of the Mann-Kendall trend test, with the same
// definitions as R's trend::mk.test (continuity-corrected Z, tie-corrected
// variance).
type MannKendall struct {
	N    int     // number of points
	S    float64 // sum over i<j of sgn(x_j - x_i)
	VarS float64 // variance of S under H0, corrected for ties
	Z    float64 // continuity-corrected standard score
	Tau  float64 // Kendall's tau-a, S / (n(n-1)/2)
	// PUpper is the one-sided p-value for an increasing trend, P(Z' >= Z).
	PUpper float64
	// PTwoSided is the two-sided p-value, as mk.test reports it.
	PTwoSided float64
}

// MannKendallTest computes the Mann-Kendall statistic of x, taken in order.
// It needs at least three points.
func MannKendallTest(x []float64) (MannKendall, error) {
	n := len(x)
	if n < 3 {
		return MannKendall{}, ErrTooFewPoints
	}
	var s float64
	for i := 0; i < n-1; i++ {
		for j := i + 1; j < n; j++ {
			s += sign(x[j] - x[i])
		}
	}
	nf := float64(n)
	varS := nf*(nf-1)*(2*nf+5) - tieTerm(x)
	varS /= 18
	var z float64
	switch {
	case varS <= 0:
		z = 0 // every value tied: no trend can be seen
	case s > 0:
		z = (s - 1) / math.Sqrt(varS)
	case s < 0:
		z = (s + 1) / math.Sqrt(varS)
	}
	return MannKendall{
		N:         n,
		S:         s,
		VarS:      varS,
		Z:         z,
		Tau:       s / (nf * (nf - 1) / 2),
		PUpper:    1 - NormalCDF(z),
		PTwoSided: 2 * (1 - NormalCDF(math.Abs(z))),
	}, nil
}

// tieTerm is sum over tied groups p of t_p(t_p-1)(2t_p+5).
func tieTerm(x []float64) float64 {
	sorted := append([]float64(nil), x...)
	sort.Float64s(sorted)
	var sum float64
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j] == sorted[i] {
			j++
		}
		if t := float64(j - i); t > 1 {
			sum += t * (t - 1) * (2*t + 5)
		}
		i = j
	}
	return sum
}

func sign(v float64) float64 {
	switch {
	case v > 0:
		return 1
	case v < 0:
		return -1
	}
	return 0
}

// TheilSen is Sen's slope estimate with its confidence interval, as R's
// trend::sens.slope computes them.
type TheilSen struct {
	Slope     float64 // median of the pairwise slopes
	Intercept float64 // median of y - Slope*t
	Lower     float64 // lower bound of the confidence interval
	Upper     float64 // upper bound of the confidence interval
}

// TheilSenSlope estimates the slope of y over t (t strictly increasing is
// not required, but pairs with equal t are skipped) with a two-sided
// confidence interval at the given level (e.g. 0.95).
func TheilSenSlope(t, y []float64, level float64) (TheilSen, error) {
	if len(t) != len(y) {
		return TheilSen{}, errors.New("stats: t and y differ in length")
	}
	n := len(y)
	if n < 3 {
		return TheilSen{}, ErrTooFewPoints
	}
	slopes := make([]float64, 0, n*(n-1)/2)
	for i := 0; i < n-1; i++ {
		for j := i + 1; j < n; j++ {
			if dt := t[j] - t[i]; dt != 0 {
				slopes = append(slopes, (y[j]-y[i])/dt)
			}
		}
	}
	if len(slopes) == 0 {
		return TheilSen{}, ErrTooFewPoints
	}
	sort.Float64s(slopes)
	res := TheilSen{Slope: medianSorted(slopes)}

	residual := make([]float64, n)
	for i := range y {
		residual[i] = y[i] - res.Slope*t[i]
	}
	res.Intercept = Median(residual)

	// Confidence interval from the order statistics of the pairwise slopes
	// (Gilbert 1987, as in sens.slope): C = z_{1-a/2} sqrt(Var(S)).
	mk, err := MannKendallTest(y)
	if err != nil {
		return TheilSen{}, err
	}
	N := float64(len(slopes))
	c := NormalQuantile(1-(1-level)/2) * math.Sqrt(mk.VarS)
	m1 := int(math.Round((N - c) / 2))
	m2 := int(math.Round((N+c)/2 + 1))
	res.Lower = slopes[clamp(m1-1, 0, len(slopes)-1)]
	res.Upper = slopes[clamp(m2-1, 0, len(slopes)-1)]
	return res, nil
}

func clamp(v, lo, hi int) int {
	return max(lo, min(v, hi))
}
