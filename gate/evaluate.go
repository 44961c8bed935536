package gate

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/memgate/memgate/gate/stats"
)

// Observation is everything a run measured that the criteria judge.
type Observation struct {
	Samples     []Sample
	MeasureFrom float64 // offset (s) where the measured window starts
	MeasureTo   float64 // offset (s) where it ends
	Load        Load    // load during the measured window
	Settle      Settle
}

// Decision is the outcome of Evaluate.
type Decision struct {
	Verdict    Verdict
	Criteria   []Criterion
	SteadyFrom float64 // offset (s) from which growth and fluctuation were judged
}

// Evaluate judges an observation against the thresholds. It is pure: the
// same numbers always give the same decision.
func Evaluate(obs Observation, th Thresholds) Decision {
	steadyFrom := obs.MeasureTo - th.SteadyFraction*(obs.MeasureTo-obs.MeasureFrom)
	heapT, heapY := postGCSeries(obs.Samples, steadyFrom, obs.MeasureTo)
	gorT, gorY := goroutineSeries(obs.Samples, steadyFrom, obs.MeasureTo)
	rate := obs.Load.AchievedRate
	if rate <= 0 {
		rate = obs.Load.RequestedRate
	}
	crit := []Criterion{
		heapFluctuation(heapT, heapY, th),
		heapGrowth(heapT, heapY, rate, th),
		goroutineGrowth(gorT, gorY, rate, th),
		goroutineSettle(obs.Settle, th),
	}
	crit = append(crit, fdCriteria(obs, steadyFrom, rate, th)...)
	crit = append(crit, loadSuccess(obs.Load, th), loadRate(obs.Load, th))
	v := verdictOf(crit, obs.Settle.FDLimitReached())
	if v == Inconclusive && heldAfterLoad(crit, obs) {
		v = Fail
	}
	return Decision{Verdict: v, Criteria: crit, SteadyFrom: steadyFrom}
}

// heldAfterLoad: the load was not valid, yet a settle criterion failed and
// what it counts did not drain at all once the load stopped: an overloaded
// service works through its backlog after the load (its goroutines and
// connections fall), a leaking one holds them. Seen on a real exporter
// that leaked an HTTP client per upstream call: slowed to 35 of 200
// requests/s by its own leak, it held 37,619 goroutines flat through the
// whole cooldown, and was called inconclusive.
func heldAfterLoad(crit []Criterion, obs Observation) bool {
	var settle []Sample
	for _, s := range obs.Samples {
		if s.Phase == PhaseSettle {
			settle = append(settle, s)
		}
	}
	// Readings over at least 2 s of the cooldown, to see a trend.
	if len(settle) < 3 || settle[len(settle)-1].Offset-settle[0].Offset < 2 {
		return false
	}
	first, last := settle[0], settle[len(settle)-1]
	for _, c := range crit {
		if c.Status != StatusFail {
			continue
		}
		var before, after, start int
		switch c.Name {
		case CritGoroutineSettle:
			before, after, start = first.Goroutines, last.Goroutines, obs.Settle.WindowStart
		case CritFDSettle:
			before, after, start = first.FDs, last.FDs, obs.Settle.WindowStartFDs
		default:
			continue
		}
		// Draining means losing at least a twentieth of the excess.
		if excess := before - start; excess > 0 && float64(after-start) >= 0.95*float64(excess) {
			return true
		}
	}
	return false
}

// verdictOf: an invalid load makes the run inconclusive whatever else it
// shows (an overloaded service piles up goroutines without leaking them;
// but see heldAfterLoad),
// unless the service ran out of file descriptors and a descriptor criterion
// failed: then the leak is what broke the load. Otherwise any failed
// criterion fails it; then too little data is inconclusive.
func verdictOf(crit []Criterion, fdLimitReached bool) Verdict {
	if fdLimitReached {
		for _, c := range crit {
			if isFDCriterion(c.Name) && c.Status == StatusFail {
				return Fail
			}
		}
	}
	for _, c := range crit {
		if isLoadCriterion(c.Name) && c.Status != StatusPass {
			return Inconclusive
		}
	}
	v := Pass
	for _, c := range crit {
		switch c.Status {
		case StatusFail:
			return Fail
		case StatusInconclusive:
			v = Inconclusive
		}
	}
	return v
}

func isLoadCriterion(name string) bool {
	return name == CritLoadSuccess || name == CritLoadRate
}

func postGCSeries(samples []Sample, from, to float64) (t, y []float64) {
	for _, s := range samples {
		if s.PostGCHeap > 0 && s.Phase == PhaseMeasure && s.Offset >= from && s.Offset <= to {
			t = append(t, s.Offset)
			y = append(y, float64(s.PostGCHeap))
		}
	}
	return t, y
}

func goroutineSeries(samples []Sample, from, to float64) (t, y []float64) {
	for _, s := range samples {
		if s.Phase == PhaseMeasure && s.Offset >= from && s.Offset <= to {
			t = append(t, s.Offset)
			y = append(y, float64(s.Goroutines))
		}
	}
	return t, y
}

func heapFluctuation(t, y []float64, th Thresholds) Criterion {
	c := Criterion{Name: CritHeapFluctuation, Limit: th.HeapFluctuation, Unit: "ratio", Comparison: "<="}
	if len(y) < 3 {
		c.Status = StatusInconclusive
		c.Detail = fmt.Sprintf("only %d post-GC heap checkpoints in the steady window; need 3", len(y))
		return c
	}
	// What a forced GC leaves includes memory that is not retained:
	// buffers of requests in flight at that instant, and objects
	// allocated while the GC was marking (they survive one cycle). Both
	// only ever add, so the retained heap is the floor under the readings:
	// judge the rolling minimum of three consecutive checkpoints.
	env := stats.RollingMin(y, 3)
	shrinking := ""
	if ts, err := stats.TheilSenSlope(t, env, 0.95); err == nil && ts.Upper < 0 {
		// A heap that gives memory back over the window (connections of
		// the warm-up closing, a cache expiring) is neither a leak nor
		// unsteady: judge the spread around its decline, not the decline
		// (seen: a real exporter's fixed commit, 3.5 MiB falling to 2.7
		// MiB, failed at 21 %). A rising heap is heap_growth's to judge,
		// and keeps its spread here.
		mid := (t[0] + t[len(t)-1]) / 2
		for i := range env {
			env[i] -= ts.Slope * (t[i] - mid)
		}
		shrinking = fmt.Sprintf(" around its decline of %s/s", FormatBytes(-ts.Slope))
	}
	sp := stats.Describe(env)
	denom := math.Max(sp.Median, float64(th.HeapFloorBytes))
	c.Value = sp.Robust(denom)
	c.Status = statusIf(c.Value <= c.Limit)
	floorNote := ""
	if denom > sp.Median {
		floorNote = fmt.Sprintf(", taken over the %s floor", FormatBytes(float64(th.HeapFloorBytes)))
	}
	raw := stats.Describe(y)
	c.Detail = fmt.Sprintf("retained heap (rolling minimum of 3 post-GC checkpoints%s) p5 %s, median %s, p95 %s over %d checkpoints%s; raw post-GC p5-p95 %s to %s, (max-min)/mean %.1f%%",
		shrinking, FormatBytes(sp.P5), FormatBytes(sp.Median), FormatBytes(sp.P95), len(y), floorNote,
		FormatBytes(raw.P5), FormatBytes(raw.P95), 100*raw.Range())
	return c
}

// trend is a significance test paired with a minimum effect: Mann-Kendall
// alone flags healthy series whose Theil-Sen slope is exactly zero.
type trend struct {
	mk    stats.MannKendall
	ts    stats.TheilSen
	span  float64 // seconds covered
	total float64 // slope * span
}

func fitTrend(t, y []float64, minPoints int) (trend, error) {
	if len(y) < minPoints {
		return trend{}, fmt.Errorf("only %d points in the steady window; need %d (lengthen --duration)", len(y), minPoints)
	}
	mk, err := stats.MannKendallTest(y)
	if err != nil {
		return trend{}, err
	}
	ts, err := stats.TheilSenSlope(t, y, 0.95)
	if err != nil {
		return trend{}, err
	}
	span := t[len(t)-1] - t[0]
	if span <= 0 {
		return trend{}, errors.New("steady window has no length")
	}
	return trend{mk: mk, ts: ts, span: span, total: ts.Slope * span}, nil
}

// growthRule is a trend criterion: what grows, per how many requests it is
// judged, and its minimum effects.
type growthRule struct {
	criterion Criterion
	subject   string
	per       float64 // requests the per-request effect is counted over (1 or 1000)
	minPer    float64 // minimum effect per `per` requests
	minTotal  float64 // minimum effect over the judged window
	amount    func(float64) string
	minText   string
}

// judgeGrowth fails a series only when its rise is significant, the lower
// end of its slope's 95% confidence interval clears the minimum effect per
// request, and the rise over the window clears the minimum in total. A
// noisy healthy series (requests in flight at a checkpoint hold their
// buffers) can make a significant-looking slope whose interval reaches
// down to zero: that is not growth.
func judgeGrowth(t, y []float64, rate float64, th Thresholds, g growthRule) Criterion {
	c := g.criterion
	tr, err := fitTrend(t, y, th.MinPoints)
	if err != nil {
		c.Status = StatusInconclusive
		c.Detail = g.subject + ": " + err.Error()
		return c
	}
	c.Value = g.per * tr.ts.Slope / rate
	significant := tr.mk.PUpper < th.Alpha
	sure := g.per*tr.ts.Lower/rate >= g.minPer
	bigTotal := tr.total >= g.minTotal
	c.Status = statusIf(!(significant && sure && bigTotal))
	c.Detail = fmt.Sprintf("%s %s/s (95%% CI %s to %s), %s over %.0f s; Mann-Kendall Z=%.2f p=%.2g (alpha %g); fails only if significant, its CI's lower end >= %s, and >= %s in total",
		g.subject, g.amount(tr.ts.Slope), g.amount(tr.ts.Lower), g.amount(tr.ts.Upper), g.amount(tr.total), tr.span,
		tr.mk.Z, tr.mk.PUpper, th.Alpha, g.minText, strings.TrimPrefix(g.amount(g.minTotal), "+"))
	return c
}

func heapGrowth(t, y []float64, rate float64, th Thresholds) Criterion {
	return judgeGrowth(t, y, rate, th, growthRule{
		criterion: Criterion{Name: CritHeapGrowth, Limit: th.HeapGrowthBytesPerRequest, Unit: "bytes/request", Comparison: "<="},
		subject:   "post-GC heap", per: 1, minPer: th.HeapGrowthBytesPerRequest, minTotal: float64(th.HeapGrowthTotalBytes),
		amount: signedBytes, minText: FormatBytes(th.HeapGrowthBytesPerRequest) + "/request",
	})
}

func goroutineGrowth(t, y []float64, rate float64, th Thresholds) Criterion {
	return judgeGrowth(t, y, rate, th, growthRule{
		criterion: Criterion{Name: CritGoroutineGrowth, Limit: th.GoroutineGrowthPer1kRequests, Unit: "goroutines/1k requests", Comparison: "<="},
		subject:   "goroutines", per: 1000, minPer: th.GoroutineGrowthPer1kRequests, minTotal: th.GoroutineGrowthTotal,
		amount:  func(v float64) string { return fmt.Sprintf("%+.2f", v) },
		minText: fmt.Sprintf("%g per 1k requests", th.GoroutineGrowthPer1kRequests),
	})
}

func goroutineSettle(s Settle, th Thresholds) Criterion {
	c := Criterion{Name: CritGoroutineSettle, Limit: float64(th.GoroutineSettleTolerance), Unit: "goroutines", Comparison: "<="}
	pooled, why := s.Pool.leftOut(s.Final-s.WindowStart, "goroutines", th)
	c.Value = float64(s.Final - s.WindowStart - pooled)
	c.Status = statusIf(c.Value <= c.Limit)
	switch {
	case pooled > 0:
		c.Detail = fmt.Sprintf("%d goroutines %.1f s after the load stopped (%d at the start of the measured window, peak %d); %s",
			s.Final, s.Took.Std().Seconds(), s.WindowStart, s.Peak, why)
	case c.Status == StatusPass:
		c.Detail = fmt.Sprintf("back to %d (window start %d, peak %d) %.1f s after the load stopped",
			s.Final, s.WindowStart, s.Peak, s.Took.Std().Seconds())
	default:
		c.Detail = fmt.Sprintf("still %d goroutines %.1f s after the load stopped and idle connections closed; %d at the start of the measured window, peak %d",
			s.Final, s.Took.Std().Seconds(), s.WindowStart, s.Peak)
	}
	c.Detail += s.Pool.notAPool(th)
	return c
}

func loadSuccess(l Load, th Thresholds) Criterion {
	c := Criterion{Name: CritLoadSuccess, Value: l.SuccessRatio, Limit: th.MinSuccessRatio, Unit: "ratio", Comparison: ">="}
	c.Status = statusIf(l.Requests > 0 && c.Value >= c.Limit)
	c.Detail = fmt.Sprintf("%.1f%% of %d requests succeeded", 100*l.SuccessRatio, l.Requests)
	if l.Streams > 0 || l.LeftEarly > 0 {
		c.Detail += fmt.Sprintf(" (%d held as streams until the client left, %d left early on purpose)", l.Streams, l.LeftEarly)
	}
	if len(l.Errors) > 0 {
		c.Detail += "; errors: " + l.Errors[0]
	}
	return c
}

func loadRate(l Load, th Thresholds) Criterion {
	c := Criterion{Name: CritLoadRate, Limit: th.MinRateRatio, Unit: "ratio", Comparison: ">="}
	if l.RequestedRate > 0 {
		c.Value = l.AchievedRate / l.RequestedRate
	}
	c.Status = statusIf(c.Value >= c.Limit)
	c.Detail = fmt.Sprintf("%.1f of %.0f requests/s achieved", l.AchievedRate, l.RequestedRate)
	return c
}

func statusIf(ok bool) Status {
	if ok {
		return StatusPass
	}
	return StatusFail
}
