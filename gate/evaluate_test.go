package gate

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// series builds an observation of a 40 s window after a 10 s warm-up at 200
// requests/s: one goroutine count a second and a post-GC heap checkpoint
// every two seconds, from the functions given.
func series(heap func(t float64) float64, goroutines func(t float64) float64) Observation {
	obs := Observation{
		MeasureFrom: 10,
		MeasureTo:   50,
		Load: Load{RequestedRate: 200, AchievedRate: 199.8, Requests: 8000, SuccessRatio: 1,
			StatusCodes: map[string]int{"200": 8000}},
		Settle: Settle{WindowStart: 20, Peak: 22, Final: 19, Settled: true, Took: Duration(300 * time.Millisecond)},
	}
	for i := 0; i <= 50; i++ {
		t := float64(i)
		s := Sample{Offset: t, Phase: PhaseMeasure, Goroutines: int(goroutines(t)), HeapInuse: uint64(2 * heap(t))}
		if t < 10 {
			s.Phase = PhaseWarmup
		}
		if i%2 == 0 {
			s.PostGCHeap = uint64(heap(t))
		}
		obs.Samples = append(obs.Samples, s)
	}
	return obs
}

func noisy(seed uint64, base, amplitude float64) func(float64) float64 {
	r := rand.New(rand.NewPCG(seed, 1))
	return func(float64) float64 { return base + amplitude*(r.Float64()-0.5) }
}

func statusOf(t *testing.T, d Decision, name string) Criterion {
	t.Helper()
	for _, c := range d.Criteria {
		if c.Name == name {
			return c
		}
	}
	t.Fatalf("no criterion %q", name)
	return Criterion{}
}

func TestHealthyNoisyServicePasses(t *testing.T) {
	for seed := uint64(0); seed < 50; seed++ {
		obs := series(noisy(seed, 6<<20, 0.1*(6<<20)), noisy(seed+100, 20, 4))
		d := Evaluate(obs, DefaultThresholds())
		if d.Verdict != Pass {
			for _, c := range d.Criteria {
				t.Logf("%s %s %v: %s", c.Name, c.Status, c.Value, c.Detail)
			}
			t.Fatalf("seed %d: verdict %s, want pass", seed, d.Verdict)
		}
	}
}

// The notes: Mann-Kendall gave Z of 2.4-6.2 on healthy goroutine counts whose
// Theil-Sen slope was exactly 0. A step up in connection count is such a
// series: significant, but no effect.
func TestGoroutineStepWithoutSlopePasses(t *testing.T) {
	step := func(t float64) float64 {
		switch {
		case t < 35:
			return 18
		case t < 48:
			return 19
		}
		return 21
	}
	d := Evaluate(series(noisy(1, 6<<20, 1<<18), step), DefaultThresholds())
	c := statusOf(t, d, CritGoroutineGrowth)
	if c.Status != StatusPass {
		t.Fatalf("step judged as growth: %+v", c)
	}
}

func TestHeapLeakFails(t *testing.T) {
	// 128 bytes per request at 200/s: 25.6 KB/s on a 3 MiB heap with noise.
	base := noisy(7, 3<<20, 64<<10)
	leak := func(t float64) float64 { return base(t) + 128*200*t }
	d := Evaluate(series(leak, noisy(8, 20, 2)), DefaultThresholds())
	c := statusOf(t, d, CritHeapGrowth)
	if c.Status != StatusFail || d.Verdict != Fail {
		t.Fatalf("leak passed: %+v", c)
	}
	if math.Abs(c.Value-128) > 40 {
		t.Errorf("bytes/request = %.1f, want about 128", c.Value)
	}
}

// A slow leak in a big heap barely moves the fluctuation but the trend
// catches it.
func TestSlowLeakInBigHeapFailsOnGrowthOnly(t *testing.T) {
	base := noisy(3, 200<<20, 256<<10)
	leak := func(t float64) float64 { return base(t) + 256*200*t }
	d := Evaluate(series(leak, noisy(4, 20, 2)), DefaultThresholds())
	if c := statusOf(t, d, CritHeapFluctuation); c.Status != StatusPass {
		t.Errorf("fluctuation should not see a slow leak in a big heap: %+v", c)
	}
	if c := statusOf(t, d, CritHeapGrowth); c.Status != StatusFail {
		t.Errorf("growth missed the slow leak: %+v", c)
	}
}

// A cache that is still filling in the first half of the window and then
// stays full is not a leak: growth is judged on the later part.
func TestCacheFillingEarlyInWindowPasses(t *testing.T) {
	base := noisy(5, 4<<20, 32<<10)
	cache := func(t float64) float64 { return base(t) + 4096*math.Min(t, 25)*200/50*50 }
	d := Evaluate(series(cache, noisy(6, 20, 2)), DefaultThresholds())
	if d.Verdict != Pass {
		for _, c := range d.Criteria {
			t.Logf("%s %s %v: %s", c.Name, c.Status, c.Value, c.Detail)
		}
		t.Fatalf("verdict %s, want pass", d.Verdict)
	}
}

// A healthy service whose requests hold big buffers while in flight: a
// forced GC that meets one counts it as live, so the post-GC heap jumps by
// whole buffers at random. Seen on healthy-garbage: a cluster of high
// readings late in the window gave Mann-Kendall p=0.0016 and +266 KiB, with
// a slope interval reaching down to +1.6 KiB/s. That is not a leak.
func TestInFlightBuffersAreNotGrowth(t *testing.T) {
	kib := []float64{968, 1240, 1296, 1000, 1400, 1864, 1832, 1720, 1488, 1512, 1000, 1376, 1040, 1000, 1816, 1440,
		1096, 1072, 1432, 1528, 1496, 1088, 1088, 1088, 1064, 1024, 1448, 1072, 1088, 1432, 1080, 1432, 1104, 1568,
		1088, 1096, 1440, 1448, 1512, 1528, 1440}
	obs := series(func(float64) float64 { return 0 }, noisy(1, 20, 2))
	for i := range obs.Samples {
		obs.Samples[i].PostGCHeap = 0
		if t := obs.Samples[i].Offset; t >= 10 {
			obs.Samples[i].PostGCHeap = uint64(kib[int(t)-10] * 1024)
		}
	}
	c := statusOf(t, Evaluate(obs, DefaultThresholds()), CritHeapGrowth)
	if c.Status != StatusPass {
		t.Fatalf("in-flight noise judged a leak: %+v", c)
	}
}

func TestGoroutineLeakFails(t *testing.T) {
	// One goroutine per 100 requests at 200/s: +2/s.
	leak := func(t float64) float64 { return 20 + 2*t }
	obs := series(noisy(9, 6<<20, 1<<18), leak)
	obs.Settle = Settle{WindowStart: 40, Peak: 122, Final: 120, Took: Duration(10 * time.Second)}
	d := Evaluate(obs, DefaultThresholds())
	if c := statusOf(t, d, CritGoroutineGrowth); c.Status != StatusFail {
		t.Errorf("growth missed: %+v", c)
	} else if math.Abs(c.Value-10) > 1 {
		t.Errorf("per 1k requests = %.2f, want 10", c.Value)
	}
	if c := statusOf(t, d, CritGoroutineSettle); c.Status != StatusFail || c.Value != 80 {
		t.Errorf("settle: %+v", c)
	}
	if d.Verdict != Fail {
		t.Errorf("verdict %s", d.Verdict)
	}
}

func TestInvalidLoadIsInconclusiveNeverPass(t *testing.T) {
	obs := series(noisy(1, 6<<20, 1<<18), noisy(2, 20, 2))
	obs.Load.SuccessRatio = 0.4
	if d := Evaluate(obs, DefaultThresholds()); d.Verdict != Inconclusive {
		t.Fatalf("verdict %s with 40%% success", d.Verdict)
	}
	obs = series(noisy(1, 6<<20, 1<<18), noisy(2, 20, 2))
	obs.Load.AchievedRate = 120
	if d := Evaluate(obs, DefaultThresholds()); d.Verdict != Inconclusive {
		t.Fatalf("verdict %s at 60%% of the rate", d.Verdict)
	}
	// Even a leak is not a fail under an invalid load: overload piles up
	// goroutines without leaking them.
	obs = series(noisy(1, 6<<20, 1<<18), func(t float64) float64 { return 20 + 5*t })
	obs.Load.Requests, obs.Load.SuccessRatio = 0, 0
	if d := Evaluate(obs, DefaultThresholds()); d.Verdict != Inconclusive {
		t.Fatalf("verdict %s with no requests", d.Verdict)
	}
}

func TestTooFewPointsIsInconclusive(t *testing.T) {
	obs := series(noisy(1, 6<<20, 1<<18), noisy(2, 20, 2))
	obs.MeasureFrom, obs.MeasureTo = 10, 14
	d := Evaluate(obs, DefaultThresholds())
	if d.Verdict != Inconclusive {
		t.Fatalf("verdict %s on a 4 s window", d.Verdict)
	}
	if c := statusOf(t, d, CritHeapGrowth); !strings.Contains(c.Detail, "need") {
		t.Errorf("detail does not say what is missing: %q", c.Detail)
	}
}

// In-flight buffers and floating garbage only add to a post-GC reading:
// isolated spikes are not fluctuation of the retained heap, a level that
// moves is.
func TestHeapFluctuationJudgesTheRetainedHeap(t *testing.T) {
	spiky := func(t float64) float64 {
		if int(t)%3 == 1 {
			return 40<<20 + 8<<20 // one reading in three meets 8 MiB in flight
		}
		return 40 << 20
	}
	c := statusOf(t, Evaluate(series(spiky, noisy(1, 20, 2)), DefaultThresholds()), CritHeapFluctuation)
	if c.Status != StatusPass || c.Value > 0.01 {
		t.Fatalf("spikes judged as fluctuation: %+v", c)
	}
	swinging := func(t float64) float64 { return 40<<20 + 12<<20*math.Sin(t/3) }
	c = statusOf(t, Evaluate(series(swinging, noisy(1, 20, 2)), DefaultThresholds()), CritHeapFluctuation)
	if c.Status != StatusFail {
		t.Fatalf("a swinging retained heap passed: %+v", c)
	}
}

func TestHeapFluctuationUsesFloorForSmallHeaps(t *testing.T) {
	// 1 MiB heap moving ±150 KiB: 30% of the median, under 15% of the 4 MiB floor.
	obs := series(noisy(11, 1<<20, 300<<10), noisy(12, 20, 2))
	c := statusOf(t, Evaluate(obs, DefaultThresholds()), CritHeapFluctuation)
	if c.Status != StatusPass || !strings.Contains(c.Detail, "floor") {
		t.Fatalf("small heap: %+v", c)
	}
	// A big heap swinging 40% fails the design rule.
	obs = series(noisy(13, 64<<20, 0.4*(64<<20)), noisy(14, 20, 2))
	c = statusOf(t, Evaluate(obs, DefaultThresholds()), CritHeapFluctuation)
	if c.Status != StatusFail {
		t.Fatalf("big swinging heap passed: %+v", c)
	}
}

func TestHeadlineNamesTheLeak(t *testing.T) {
	obs := series(noisy(9, 6<<20, 1<<18), func(t float64) float64 { return 20 + 2*t })
	obs.Settle = Settle{WindowStart: 40, Final: 2440, Took: Duration(10 * time.Second)}
	d := Evaluate(obs, DefaultThresholds())
	r := &Report{Verdict: d.Verdict, Criteria: d.Criteria, Settle: obs.Settle, Load: obs.Load,
		Baseline:    Baseline{MeasureFrom: 10, MeasureTo: 70, SteadyFrom: 30},
		Attribution: Attribution{Goroutines: []GoroutineStack{{Top: "main.handleOrder.func1", Delta: 2400}}}}
	h := Headline(r)
	if want := "goroutines +2,400 over 60 s, stuck in main.handleOrder.func1"; h != want {
		t.Fatalf("headline %q, want %q", h, want)
	}
}

func TestExitCodes(t *testing.T) {
	for v, want := range map[Verdict]int{Pass: 0, Fail: 1, Error: 2, Inconclusive: 3} {
		if got := v.ExitCode(); got != want {
			t.Errorf("%s exit %d, want %d", v, got, want)
		}
	}
}

func TestThresholdsValidateNamesKey(t *testing.T) {
	th := DefaultThresholds()
	if err := th.Validate(); err != nil {
		t.Fatal(err)
	}
	th.Alpha = 0.7
	if err := th.Validate(); err == nil || !strings.Contains(err.Error(), "alpha") {
		t.Fatalf("err = %v", err)
	}
}

func TestFormat(t *testing.T) {
	if got := FormatBytes(3.5 * (1 << 20)); got != "3.5 MiB" {
		t.Error(got)
	}
	if got := FormatCount(35012); got != "35,012" {
		t.Error(got)
	}
	if got := FormatCount(-1234567); got != "-1,234,567" {
		t.Error(got)
	}
}

// withSettle appends settle-phase readings of the goroutine count, one a
// second from the end of the window.
func withSettle(obs Observation, goroutines ...int) Observation {
	for i, g := range goroutines {
		obs.Samples = append(obs.Samples, Sample{Offset: obs.MeasureTo + float64(i+1), Phase: PhaseSettle, Goroutines: g})
	}
	obs.Settle.Final, obs.Settle.Settled = goroutines[len(goroutines)-1], false
	return obs
}

// A service slowed by its own leak makes the load invalid; what it holds
// flat after the load is still the leak: fail, not inconclusive. One that
// works through a backlog (its count falls) stays inconclusive.
func TestLeakHeldAfterAnInvalidLoadFails(t *testing.T) {
	for _, tc := range []struct {
		name    string
		settle  []int
		verdict Verdict
	}{
		{"held flat", []int{37600, 37619, 37619, 37619, 37619}, Fail},
		{"draining backlog", []int{9000, 7000, 5200, 3100, 1500}, Inconclusive},
		{"too short to tell", []int{37600, 37619}, Inconclusive},
	} {
		t.Run(tc.name, func(t *testing.T) {
			obs := series(noisy(3, 6<<20, 1<<18), func(t float64) float64 { return 20 + 700*t })
			obs.Load.AchievedRate, obs.Load.RequestedRate = 35, 200
			obs.Settle.WindowStart = 17806
			obs = withSettle(obs, tc.settle...)
			d := Evaluate(obs, DefaultThresholds())
			if d.Verdict != tc.verdict {
				t.Fatalf("verdict %s, want %s (%+v)", d.Verdict, tc.verdict, d.Criteria)
			}
			if statusOf(t, d, CritLoadRate).Status != StatusFail {
				t.Fatal("the load should be invalid here")
			}
		})
	}
}
