package stats

import (
	"math"
	"testing"
)

func near(t *testing.T, name string, got, want, tol float64) {
	t.Helper()
	if math.Abs(got-want) > tol {
		t.Errorf("%s = %.6f, want %.6f (±%g)", name, got, want, tol)
	}
}

// The series 1..100: the published test vector of pyMannKendall and
// MannKendall.jl, which both check against R's trend::mk.test
// (S = 4950, varS = 112750, z = 14.73869998208331, tau = 1).
func TestMannKendallPerfectTrend(t *testing.T) {
	x := make([]float64, 100)
	for i := range x {
		x[i] = float64(i + 1)
	}
	mk, err := MannKendallTest(x)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "S", mk.S, 4950, 0)
	near(t, "VarS", mk.VarS, 112750, 1e-9)
	near(t, "Z", mk.Z, 14.73869998208331, 1e-9)
	near(t, "Tau", mk.Tau, 1, 1e-12)
	if mk.PUpper > 1e-40 {
		t.Errorf("PUpper = %g, want ~0", mk.PUpper)
	}
}

// Ties: x = 1,2,2,3. S = 5 (one tied pair scores 0); the tied group of two
// removes 2*1*9 = 18 from n(n-1)(2n+5) = 156, so VarS = 138/18.
func TestMannKendallTies(t *testing.T) {
	mk, err := MannKendallTest([]float64{1, 2, 2, 3})
	if err != nil {
		t.Fatal(err)
	}
	near(t, "S", mk.S, 5, 0)
	near(t, "VarS", mk.VarS, 138.0/18, 1e-12)
	near(t, "Z", mk.Z, 4/math.Sqrt(138.0/18), 1e-12)
}

// The measurement notes: a perfectly rising series reaches Z = 2.20 at n = 5
// and 3.94 at n = 10.
func TestMannKendallSmallN(t *testing.T) {
	for _, tc := range []struct {
		n int
		z float64
	}{{5, 2.2045}, {10, 3.9354}} {
		x := make([]float64, tc.n)
		for i := range x {
			x[i] = float64(i)
		}
		mk, _ := MannKendallTest(x)
		near(t, "Z", mk.Z, tc.z, 1e-4)
	}
}

func TestMannKendallNoTrend(t *testing.T) {
	flat := []float64{7, 7, 7, 7, 7, 7, 7, 7, 7, 7}
	mk, err := MannKendallTest(flat)
	if err != nil {
		t.Fatal(err)
	}
	if mk.Z != 0 || mk.S != 0 {
		t.Errorf("flat series: S=%v Z=%v, want 0", mk.S, mk.Z)
	}
	near(t, "PUpper", mk.PUpper, 0.5, 1e-12)

	// A sawtooth repeats without drifting: S must stay small.
	saw := []float64{1, 5, 9, 1, 5, 9, 1, 5, 9, 1, 5, 9}
	mk, _ = MannKendallTest(saw)
	if mk.PUpper < 0.05 {
		t.Errorf("sawtooth judged rising: Z=%.3f p=%.4f", mk.Z, mk.PUpper)
	}
}

func TestMannKendallDecreasing(t *testing.T) {
	mk, _ := MannKendallTest([]float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1})
	near(t, "Z", mk.Z, -3.9354, 1e-4)
	if mk.PUpper < 0.99 {
		t.Errorf("a falling series must not look like growth: PUpper=%v", mk.PUpper)
	}
}

func TestMannKendallTooShort(t *testing.T) {
	if _, err := MannKendallTest([]float64{1, 2}); err != ErrTooFewPoints {
		t.Fatalf("err = %v, want ErrTooFewPoints", err)
	}
}

// Hand-computed: t = 1..5, y = 1,3,2,5,4. The ten pairwise slopes sorted are
// -1 -1 1/3 1/2 3/4 1 1 4/3 2 3, whose median is (3/4 + 1)/2 = 0.875.
func TestTheilSenHandComputed(t *testing.T) {
	ts, err := TheilSenSlope([]float64{1, 2, 3, 4, 5}, []float64{1, 3, 2, 5, 4}, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "Slope", ts.Slope, 0.875, 1e-12)
	// Residuals y - 0.875 t: 0.125 1.25 -0.625 1.5 -0.375, median 0.125.
	near(t, "Intercept", ts.Intercept, 0.125, 1e-12)
	if ts.Lower > ts.Slope || ts.Upper < ts.Slope {
		t.Errorf("interval [%v, %v] does not hold the slope %v", ts.Lower, ts.Upper, ts.Slope)
	}
}

// A noise-free line has every pairwise slope equal, so the estimate and
// both bounds are exactly the line's slope, as sens.slope reports.
func TestTheilSenExactLine(t *testing.T) {
	n := 30
	tt := make([]float64, n)
	y := make([]float64, n)
	for i := range y {
		tt[i] = float64(i) * 0.5
		y[i] = 1000 + 250*tt[i]
	}
	ts, err := TheilSenSlope(tt, y, 0.95)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "Slope", ts.Slope, 250, 1e-9)
	near(t, "Lower", ts.Lower, 250, 1e-9)
	near(t, "Upper", ts.Upper, 250, 1e-9)
	near(t, "Intercept", ts.Intercept, 1000, 1e-9)
}

// One wild outlier moves least squares but not Theil-Sen.
func TestTheilSenResistsOutlier(t *testing.T) {
	tt := []float64{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	y := []float64{0, 2, 4, 6, 8, 1000, 12, 14, 16, 18}
	ts, _ := TheilSenSlope(tt, y, 0.95)
	near(t, "Slope", ts.Slope, 2, 1e-9)
}

func TestTheilSenMismatch(t *testing.T) {
	if _, err := TheilSenSlope([]float64{1, 2, 3}, []float64{1, 2}, 0.95); err == nil {
		t.Fatal("want an error for different lengths")
	}
}

func TestQuantileType7(t *testing.T) {
	// R: quantile(c(1,2,3,4,10), c(.05,.5,.95)) = 1.2 3.0 8.8
	x := []float64{10, 1, 3, 2, 4}
	near(t, "p5", Quantile(x, 0.05), 1.2, 1e-12)
	near(t, "p50", Quantile(x, 0.5), 3, 1e-12)
	near(t, "p95", Quantile(x, 0.95), 8.8, 1e-12)
	if !math.IsNaN(Quantile(nil, 0.5)) {
		t.Error("empty quantile must be NaN")
	}
}

func TestDescribeSpreads(t *testing.T) {
	s := Describe([]float64{100, 100, 100, 100, 100, 100, 100, 100, 100, 200})
	// One outlier: the range rule sees 100/110, the robust one much less.
	near(t, "Range", s.Range(), 100.0/110, 1e-12)
	near(t, "Robust", s.Robust(s.Median), 0.55, 1e-12)
	if got := (Spread{}).Robust(0); got != 0 {
		t.Errorf("zero denominator gave %v", got)
	}
}

func TestNormal(t *testing.T) {
	near(t, "q975", NormalQuantile(0.975), 1.959963984540054, 1e-12)
	near(t, "q99", NormalQuantile(0.99), 2.326347874040841, 1e-12)
	near(t, "cdf", NormalCDF(1.959963984540054), 0.975, 1e-12)
}

func TestRollingMin(t *testing.T) {
	got := RollingMin([]float64{5, 1, 7, 3, 9, 2}, 3)
	want := []float64{1, 1, 3, 2}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
	if short := RollingMin([]float64{4, 2}, 3); len(short) != 2 {
		t.Fatalf("short series: %v", short)
	}
}
