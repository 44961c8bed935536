package gate

import (
	"fmt"
	"slices"
	"time"
)

// compareRows holds head against base on each comparison criterion.
func compareRows(base, head *Report, l CompareLimits) []ComparisonRow {
	rows := []ComparisonRow{
		growthRow(base, head, growthSide{
			criterion: CmpHeapGrowth, absolute: CritHeapGrowth, kind: kindHeap, unit: "bytes/request",
			per: 1, limit: l.HeapGrowthBytesPerRequest, series: postGCSeries,
			amount: func(v float64) string { return signedBytes(v) + "/request" },
		}),
		growthRow(base, head, growthSide{
			criterion: CmpGoroutineGrowth, absolute: CritGoroutineGrowth, kind: kindGoroutines, unit: "goroutines/1k requests",
			per: 1000, limit: l.GoroutineGrowthPer1kRequests, series: goroutineSeries,
			amount: func(v float64) string { return fmt.Sprintf("%+.2f/1k requests", v) },
		}),
		latencyRow(base, head, l),
	}
	return rows
}

// growthSide describes one growth criterion for comparing.
type growthSide struct {
	criterion, absolute, kind, unit string
	per                             float64 // requests the rate is counted over
	limit                           float64
	series                          func([]Sample, float64, float64) (t, y []float64)
	amount                          func(float64) string
}

// growthFit refits a run's growth trend from its samples, as Evaluate
// did, per g.per requests; ok is false when the run had too few points.
func growthFit(r *Report, g growthSide) (slope, lower float64, ok bool) {
	rate := r.Load.AchievedRate
	if rate <= 0 {
		rate = r.Load.RequestedRate
	}
	t, y := g.series(r.Samples, r.Baseline.SteadyFrom, r.Baseline.MeasureTo)
	tr, err := fitTrend(t, y, max(r.Thresholds.MinPoints, 6))
	if err != nil || rate <= 0 {
		return 0, 0, false
	}
	return g.per * tr.ts.Slope / rate, g.per * tr.ts.Lower / rate, true
}

// worsenedLeakRatio is how much faster than the base's a leak the base
// already has must grow on the head before the head is worse: leak rates
// of one service repeat within a few percent run to run (1.04-1.09 KiB/
// request over ten runs of the heap-leak fixture), so twice as fast is a
// change, not noise.
const worsenedLeakRatio = 2.0

// growthRow fails when the lower end of the head's 95% interval of growth
// is above the base's growth (or zero) by more than the limit: the head grows faster
// beyond the noise of its own trend. A kind both runs leak is the base's
// leak (Compare says "already"), unless the head leaks it at least
// worsenedLeakRatio times as fast: a pull request that doubles a leak
// already on main is worse, not innocent.
func growthRow(base, head *Report, g growthSide) ComparisonRow {
	row := ComparisonRow{Criterion: g.criterion, Limit: g.limit, Unit: g.unit, Status: StatusPass}
	if c, ok := base.Criterion(g.absolute); ok {
		row.BaseStatus = c.Status
	}
	if c, ok := head.Criterion(g.absolute); ok {
		row.HeadStatus = c.Status
	}
	bSlope, _, bok := growthFit(base, g)
	hSlope, hLower, hok := growthFit(head, g)
	row.Base, row.Head = bSlope, hSlope
	switch {
	case !bok || !hok:
		row.Status = StatusInconclusive
		row.Detail = fmt.Sprintf("%s: too few points to compare", g.kind)
		return row
	case slices.Contains(leakKinds(base), g.kind) && slices.Contains(leakKinds(head), g.kind):
		// The base's leak, and the pull request's to answer for only if it
		// made it faster: its growth sure (the 95% interval's lower end)
		// to be a multiple of the base's, and by more than the limit.
		if hLower > worsenedLeakRatio*bSlope && hLower-bSlope > g.limit {
			row.Status = StatusFail
			row.Detail = fmt.Sprintf("%s %s vs %s on base: the leak on base, %.1fx as fast (head's 95%% CI from %s; limit %gx)",
				g.kind, g.amount(hSlope), g.amount(bSlope), hSlope/bSlope, g.amount(hLower), worsenedLeakRatio)
			return row
		}
		row.Detail = fmt.Sprintf("%s %s vs %s on base: both leak", g.kind, g.amount(hSlope), g.amount(bSlope))
		return row
	}
	// A base that shrank (a cache evicting, one GC's luck) is held at
	// zero: the head is not worse for growing less than the limit.
	if hLower-max(bSlope, 0) > g.limit {
		row.Status = StatusFail
	}
	row.Detail = fmt.Sprintf("%s %s vs %s on base (head's 95%% CI from %s; limit %s more)",
		g.kind, g.amount(hSlope), g.amount(bSlope), g.amount(hLower), g.amount(g.limit))
	return row
}

// latencyRow fails when the head's p99 latency is both Ratio times the
// base's and Slower above it.
func latencyRow(base, head *Report, l CompareLimits) ComparisonRow {
	b, h := p99(base).Std(), p99(head).Std()
	row := ComparisonRow{Criterion: CmpLatencyP99, Base: ms(b), Head: ms(h), Limit: ms(l.LatencyP99Slower), Unit: "ms", Status: StatusPass}
	ratio := 0.0
	if b > 0 {
		ratio = float64(h) / float64(b)
	}
	if h > 0 && float64(h) > l.LatencyP99Ratio*float64(b) && h-b > l.LatencyP99Slower {
		row.Status = StatusFail
	}
	sign := "+"
	if h < b {
		sign = "" // a negative duration prints its own
	}
	row.Detail = fmt.Sprintf("latency p99 %s vs %s on base (%.1fx, %s%v; limit %gx and +%v)",
		formatMs(row.Head), formatMs(row.Base), ratio, sign, (h - b).Round(100*time.Microsecond), l.LatencyP99Ratio, l.LatencyP99Slower)
	return row
}

// p99 is the measured window's p99 latency from the load's schedule, or
// from the send in a report that has only that.
func p99(r *Report) Duration {
	if p := r.Load.ScheduledLatency.P99; p > 0 {
		return p
	}
	return r.Load.Latency.P99
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
