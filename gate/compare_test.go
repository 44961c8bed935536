package gate

import (
	"strings"
	"testing"
	"time"
)

// run is a fixture run: its heap and goroutine growth per second, its p99
// latency, and the culprits attribution names for each.
type run struct {
	heapPerSec   float64 // bytes/s of post-GC heap growth
	gorPerSec    float64 // goroutines/s
	p99          time.Duration
	heapCulprit  string
	gorCulprit   string
	verdict      Verdict // overrides the evaluated verdict (error, inconclusive)
	uncertainTop bool    // the heap culprit rests on one profile sample
}

// report evaluates a run's synthetic samples the way a gate does: the
// criteria come from Evaluate, so the comparison sees what a real report
// says. The noise is fixed, so every case is repeatable.
func (r run) report() RunRef {
	const rate = 200
	var samples []Sample
	for i := 0; i <= 40; i++ {
		t := float64(i)
		heapNoise := float64((i*7919)%13-6) * 4096
		gorNoise := float64((i*31)%3 - 1)
		samples = append(samples, Sample{
			Offset: t, Phase: PhaseMeasure,
			PostGCHeap: uint64(8<<20 + r.heapPerSec*t + heapNoise),
			Goroutines: int(12 + r.gorPerSec*t + gorNoise),
		})
	}
	last := samples[len(samples)-1].Goroutines
	obs := Observation{
		Samples: samples, MeasureFrom: 0, MeasureTo: 40,
		Load:   Load{RequestedRate: rate, AchievedRate: rate, Requests: 40 * rate, SuccessRatio: 1},
		Settle: Settle{WindowStart: 12, Final: last, Settled: last <= 17},
	}
	th := DefaultThresholds()
	d := Evaluate(obs, th)
	rep := &Report{
		Verdict: d.Verdict, Criteria: d.Criteria, Samples: samples, Load: obs.Load, Settle: obs.Settle,
		Baseline:   Baseline{SteadyFrom: d.SteadyFrom, MeasureFrom: 0, MeasureTo: 40},
		Thresholds: th,
	}
	rep.Load.ScheduledLatency.P99 = Duration(r.p99)
	if r.heapCulprit != "" {
		site := HeapSite{Function: "runtime.mallocgc", Culprit: &Frame{Function: r.heapCulprit, File: "main.go", Line: 40}, DeltaBytes: 1 << 20}
		if r.uncertainTop {
			site.Samples = 1
		}
		rep.Attribution.Heap = []HeapSite{site}
	}
	if r.gorCulprit != "" {
		rep.Attribution.Goroutines = []GoroutineStack{{Top: "main.wait", Delta: 500, Culprit: &Frame{Function: r.gorCulprit}}}
	}
	rep.Reason = Headline(rep)
	if r.verdict != "" {
		rep.Verdict, rep.Reason = r.verdict, "could not build: exit status 1"
	}
	return RunRef{Ref: "main", Verdict: rep.Verdict, Reason: rep.Reason, Report: rep}
}

var (
	healthy    = run{p99: 4 * time.Millisecond}
	heapLeak   = run{heapPerSec: 200 * 1024, p99: 4 * time.Millisecond, heapCulprit: "main.(*cache).put"}
	otherLeak  = run{heapPerSec: 200 * 1024, p99: 4 * time.Millisecond, heapCulprit: "main.session"}
	goroutines = run{gorPerSec: 20, p99: 4 * time.Millisecond, gorCulprit: "main.handler.func1"}
)

func TestCompare(t *testing.T) {
	slow := func(r run, p99 time.Duration) run { r.p99 = p99; return r }
	with := func(r run, v Verdict) run { r.verdict = v; return r }
	unsure := heapLeak
	unsure.heapCulprit, unsure.uncertainTop = "main.other", true
	failing := DefaultCompareLimits()
	failing.AlreadyLeaking = "failure"
	for _, tc := range []struct {
		name       string
		base, head run
		limits     *CompareLimits
		verdict    Verdict
		outcome    Outcome
		headline   string // a part of the headline
	}{
		{"healthy both", healthy, healthy, nil, Pass, OutcomeSame, "no leak, and not worse than main (p99 4ms, base 4ms)"},
		{"leak introduced", healthy, heapLeak, nil, Fail, OutcomeIntroduced, "introduced by this change: heap +1.0 KiB/request"},
		{"leak already on base", heapLeak, heapLeak, nil, Neutral, OutcomeAlready, "already leaks on main: heap +1.0 KiB/request"},
		{"already on base, config says failure", heapLeak, heapLeak, &failing, Fail, OutcomeAlready, "already leaks on main"},
		{"same kind, another culprit", heapLeak, otherLeak, nil, Fail, OutcomeIntroduced, "introduced by this change"},
		{"another culprit named on one sample is no proof", heapLeak, unsure, nil, Neutral, OutcomeAlready, "already leaks on main"},
		{"fixed", heapLeak, healthy, nil, Pass, OutcomeFixed, "fixes the leak on main: heap +1.0 KiB/request"},
		{"goroutine leak on base, heap leak added", goroutines, run{heapPerSec: 200 * 1024, gorPerSec: 20, p99: 4 * time.Millisecond, heapCulprit: "main.(*cache).put", gorCulprit: "main.handler.func1"},
			nil, Fail, OutcomeIntroduced, "(goroutine leak already on main)"},
		{"p99 300 ms slower", healthy, slow(healthy, 310*time.Millisecond), nil, Fail, OutcomeWorse, "worse than main: latency p99 310ms vs 4ms on base (77.5x, +306ms"},
		{"p99 +20 ms exactly is within", healthy, slow(healthy, 24*time.Millisecond), nil, Pass, OutcomeSame, "p99 24ms"},
		{"p99 just over both limits", healthy, slow(healthy, 25*time.Millisecond), nil, Fail, OutcomeWorse, "latency p99 25ms"},
		{"p99 1.4x of a slow base is within", slow(healthy, 100*time.Millisecond), slow(healthy, 140*time.Millisecond), nil, Pass, OutcomeSame, "p99 140ms"},
		{"a leak on base made three times as fast is worse", heapLeak, run{heapPerSec: 600 * 1024, p99: 4 * time.Millisecond, heapCulprit: "main.(*cache).put"},
			nil, Fail, OutcomeWorse, "worse than main: heap +3.0 KiB/request vs +1.0 KiB/request on base"},
		{"a leak on base made 1.5x as fast is still the base's", heapLeak, run{heapPerSec: 300 * 1024, p99: 4 * time.Millisecond, heapCulprit: "main.(*cache).put"},
			nil, Neutral, OutcomeAlready, "already leaks on main"},
		{"a goroutine leak on base made three times as fast is worse", goroutines, run{gorPerSec: 60, p99: 4 * time.Millisecond, gorCulprit: "main.handler.func1"},
			nil, Fail, OutcomeWorse, "goroutine +300.00/1k requests vs +100.00/1k requests on base: the leak on base, 3.0x as fast"},
		{"slower and already leaking is worse", heapLeak, slow(heapLeak, 400*time.Millisecond), nil, Fail, OutcomeWorse, "latency p99 400ms"},
		{"head could not run", healthy, with(healthy, Error), nil, Error, OutcomeUnjudged, "could not build"},
		{"head inconclusive", heapLeak, with(healthy, Inconclusive), nil, Inconclusive, OutcomeUnjudged, "could not build"},
		{"base could not run, head leaks", with(healthy, Error), heapLeak, nil, Fail, OutcomeUnjudged, "(main could not be compared: could not build"},
		{"base could not run, head healthy", with(healthy, Error), healthy, nil, Pass, OutcomeUnjudged, "no leak"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := DefaultCompareLimits()
			if tc.limits != nil {
				l = *tc.limits
			}
			c := Compare(tc.base.report(), tc.head.report(), l)
			if c.Verdict != tc.verdict || c.Outcome != tc.outcome || !strings.Contains(c.Headline, tc.headline) {
				t.Fatalf("got %s/%s %q; want %s/%s containing %q", c.Verdict, c.Outcome, c.Headline, tc.verdict, tc.outcome, tc.headline)
			}
		})
	}
}

// TestCompareRowsSideBySide: the rows carry both runs' numbers and fail
// only the criterion that is worse.
func TestCompareRowsSideBySide(t *testing.T) {
	head := healthy
	head.p99 = 310 * time.Millisecond
	c := Compare(healthy.report(), head.report(), DefaultCompareLimits())
	if len(c.Rows) != 3 {
		t.Fatalf("rows: %+v", c.Rows)
	}
	for _, r := range c.Rows {
		want := StatusPass
		if r.Criterion == CmpLatencyP99 {
			want = StatusFail
			if r.Base != 4 || r.Head != 310 || r.Limit != 20 || r.Unit != "ms" {
				t.Errorf("latency row: %+v", r)
			}
		}
		if r.Status != want {
			t.Errorf("%s: %s, want %s (%s)", r.Criterion, r.Status, want, r.Detail)
		}
	}
	heap := c.Rows[0]
	if heap.Criterion != CmpHeapGrowth || heap.BaseStatus != StatusPass || heap.HeadStatus != StatusPass || heap.Head > 5 || heap.Head < -5 {
		t.Errorf("heap row: %+v", heap)
	}
}

// TestCompareHeapRowWorse: a head whose heap grows beyond the base's by
// more than the limit fails the row even when a loose absolute threshold
// lets it pass alone.
func TestCompareHeapRowWorse(t *testing.T) {
	loose := func(r run) RunRef {
		ref := r.report()
		th := DefaultThresholds()
		th.HeapGrowthBytesPerRequest = 4096
		obs := Observation{Samples: ref.Report.Samples, MeasureTo: 40, Load: ref.Report.Load, Settle: ref.Report.Settle}
		d := Evaluate(obs, th)
		ref.Report.Criteria, ref.Report.Verdict, ref.Verdict = d.Criteria, d.Verdict, d.Verdict
		return ref
	}
	base, head := loose(healthy), loose(run{heapPerSec: 200 * 512, p99: 4 * time.Millisecond})
	if head.Verdict != Pass {
		t.Fatalf("head alone should pass under the loose threshold: %+v", head.Report.Criteria)
	}
	c := Compare(base, head, DefaultCompareLimits())
	if c.Outcome != OutcomeWorse || c.Verdict != Fail || !strings.Contains(c.Headline, "heap +515 B/request vs +3 B/request on base") {
		t.Fatalf("%s/%s %q", c.Verdict, c.Outcome, c.Headline)
	}
}

func TestCompareLimitsValidate(t *testing.T) {
	if err := DefaultCompareLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	bad := DefaultCompareLimits()
	bad.Confirmations = 9
	if err := bad.Validate(); err == nil || !strings.HasPrefix(err.Error(), "confirmations ") {
		t.Fatalf("err = %v", err)
	}
	if Neutral.ExitCode() != 0 {
		t.Fatal("a leak already on the base must not fail memgate check by default")
	}
}
