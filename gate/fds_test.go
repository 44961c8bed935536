package gate

import (
	"strings"
	"testing"
)

// withFDs adds a descriptor count per sample from f and settle numbers.
func withFDs(obs Observation, f func(t float64) float64, settle Settle) Observation {
	for i := range obs.Samples {
		obs.Samples[i].FDs = int(f(obs.Samples[i].Offset))
	}
	s := obs.Settle
	s.IdleFDs, s.WindowStartFDs, s.PeakFDs, s.FinalFDs, s.FDLimit = settle.IdleFDs, settle.WindowStartFDs, settle.PeakFDs, settle.FinalFDs, settle.FDLimit
	obs.Settle = s
	return obs
}

func TestHealthyDescriptorsPass(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		obs := series(noisy(seed, 6<<20, 0.1*(6<<20)), noisy(seed+100, 20, 4))
		// Connections come and go around 25 (10 load, pool, listeners).
		obs = withFDs(obs, noisy(seed+200, 25, 6), Settle{WindowStartFDs: 26, PeakFDs: 31, FinalFDs: 15, FDLimit: 65536})
		d := Evaluate(obs, DefaultThresholds())
		if d.Verdict != Pass {
			for _, c := range d.Criteria {
				t.Logf("%s %s %v: %s", c.Name, c.Status, c.Value, c.Detail)
			}
			t.Fatalf("seed %d: verdict %s, want pass", seed, d.Verdict)
		}
		if c := statusOf(t, d, CritFDSettle); c.Value != -11 {
			t.Fatalf("fd_settle value %v, want -11", c.Value)
		}
	}
}

// A descriptor leaked per request: goroutines and heap flat, descriptors
// up by one per request at 200 requests/s.
func TestDescriptorLeakFailsGrowthAndSettle(t *testing.T) {
	obs := series(noisy(3, 6<<20, 1<<18), noisy(4, 20, 2))
	obs = withFDs(obs, func(t float64) float64 { return 20 + 200*t }, Settle{WindowStartFDs: 2020, PeakFDs: 10020, FinalFDs: 10010, FDLimit: 65536})
	d := Evaluate(obs, DefaultThresholds())
	if d.Verdict != Fail {
		t.Fatalf("verdict %s, want fail", d.Verdict)
	}
	g := statusOf(t, d, CritFDGrowth)
	if g.Status != StatusFail || g.Value < 990 || g.Value > 1010 {
		t.Fatalf("fd_growth %s %v, want fail at about 1000/1k requests: %s", g.Status, g.Value, g.Detail)
	}
	if s := statusOf(t, d, CritFDSettle); s.Status != StatusFail || s.Value != 7990 {
		t.Fatalf("fd_settle %s %v, want fail at 7990", s.Status, s.Value)
	}
	for _, name := range []string{CritGoroutineGrowth, CritGoroutineSettle, CritHeapGrowth} {
		if c := statusOf(t, d, name); c.Status != StatusPass {
			t.Errorf("%s %s, want pass: the leak is in descriptors only", name, c.Status)
		}
	}
	r := &Report{Verdict: d.Verdict, Criteria: d.Criteria, Settle: obs.Settle, Baseline: Baseline{MeasureFrom: 10, MeasureTo: 50}}
	if h := Headline(r); !strings.Contains(h, "+7,990 open files not closed after the load") {
		t.Errorf("headline %q does not name the open files", h)
	}
}

// The exporter of the issue: it leaked connections until its limit, then
// ran flat with failing requests. Growth sees nothing in the steady half,
// the load is invalid; the limit is reported and the settle check decides.
func TestDescriptorLimitReachedFailsDespiteInvalidLoad(t *testing.T) {
	obs := series(noisy(5, 6<<20, 1<<18), noisy(6, 20, 2))
	obs = withFDs(obs, func(float64) float64 { return 1024 }, Settle{IdleFDs: 9, WindowStartFDs: 1024, PeakFDs: 1024, FinalFDs: 1024, FDLimit: 1024})
	obs.Settle.Final = obs.Settle.WindowStart // goroutines settled
	obs.Load.SuccessRatio = 0.4
	obs.Load.Errors = []string{"connection reset by peer (4800)"}
	d := Evaluate(obs, DefaultThresholds())
	if d.Verdict != Fail {
		t.Fatalf("verdict %s, want fail", d.Verdict)
	}
	if g := statusOf(t, d, CritFDGrowth); g.Status != StatusPass {
		t.Fatalf("fd_growth %s: a flat series at the limit should not show growth", g.Status)
	}
	// At the limit since the warm-up, the window's start is no baseline:
	// the idle count is.
	s := statusOf(t, d, CritFDSettle)
	if s.Status != StatusFail || s.Value != 1015 {
		t.Fatalf("fd_settle %s %v, want fail at 1015 over the idle count: %s", s.Status, s.Value, s.Detail)
	}
	if !strings.Contains(s.Detail, "reached its limit of open files (RLIMIT_NOFILE 1024") {
		t.Errorf("fd_settle detail lacks the limit line: %s", s.Detail)
	}
	r := &Report{Verdict: d.Verdict, Criteria: d.Criteria, Settle: obs.Settle}
	if h := Headline(r); h != "+1,015 open files not closed after the load (reached its RLIMIT_NOFILE of 1024)" {
		t.Errorf("headline %q", h)
	}
}

// Without the limit, the same invalid load stays inconclusive: an
// overloaded service holds connections open without leaking them.
func TestDescriptorsBelowLimitKeepInvalidLoadInconclusive(t *testing.T) {
	obs := series(noisy(5, 6<<20, 1<<18), noisy(6, 20, 2))
	obs = withFDs(obs, func(t float64) float64 { return 20 + 10*t }, Settle{IdleFDs: 9, WindowStartFDs: 120, PeakFDs: 520, FinalFDs: 500, FDLimit: 65536})
	obs.Load.SuccessRatio = 0.4
	if d := Evaluate(obs, DefaultThresholds()); d.Verdict != Inconclusive {
		t.Fatalf("verdict %s, want inconclusive", d.Verdict)
	}
}

func TestDescriptorsNotCountedAddNoCriteria(t *testing.T) {
	d := Evaluate(series(noisy(1, 6<<20, 1<<18), noisy(2, 20, 2)), DefaultThresholds())
	for _, c := range d.Criteria {
		if isFDCriterion(c.Name) {
			t.Fatalf("criterion %s without descriptor counts", c.Name)
		}
	}
	if d.Verdict != Pass {
		t.Fatalf("verdict %s, want pass", d.Verdict)
	}
}

func TestFDLimitReached(t *testing.T) {
	for _, c := range []struct {
		peak  int
		limit uint64
		want  bool
	}{{1024, 1024, true}, {1014, 1024, true}, {1013, 1024, false}, {65000, 65536, true}, {64000, 65536, false}, {500, 0, false}} {
		if got := (Settle{PeakFDs: c.peak, FDLimit: c.limit}).FDLimitReached(); got != c.want {
			t.Errorf("peak %d of %d: reached %v, want %v", c.peak, c.limit, got, c.want)
		}
	}
}
