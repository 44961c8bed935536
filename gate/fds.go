package gate

import "fmt"

// Open file descriptors are judged like goroutines: a trend per 1k requests
// and a settle check. A service leaking connections or files until its
// RLIMIT_NOFILE runs flat from then on, and its requests fail: the trend
// can miss it and the load is invalid, so reaching the limit is reported
// on its own and makes a failed descriptor criterion decide the verdict.

// fdsMeasured reports whether the run counted the service's descriptors.
func fdsMeasured(obs Observation) bool {
	if obs.Settle.WindowStartFDs <= 0 {
		return false
	}
	for _, s := range obs.Samples {
		if s.Phase == PhaseMeasure && s.FDs > 0 {
			return true
		}
	}
	return false
}

func fdSeries(samples []Sample, from, to float64) (t, y []float64) {
	for _, s := range samples {
		if s.FDs > 0 && s.Phase == PhaseMeasure && s.Offset >= from && s.Offset <= to {
			t = append(t, s.Offset)
			y = append(y, float64(s.FDs))
		}
	}
	return t, y
}

// FDLimitReached reports whether the service's open descriptors came
// within a few of its RLIMIT_NOFILE: from there on every accept and open
// fails. The margin covers the reader's own descriptors and a count taken
// a moment before the last few were opened.
func (s Settle) FDLimitReached() bool {
	if s.FDLimit == 0 || s.PeakFDs <= 0 {
		return false
	}
	margin := max(s.FDLimit/100, 8)
	return uint64(s.PeakFDs)+margin >= s.FDLimit
}

func fdGrowth(t, y []float64, rate float64, th Thresholds) Criterion {
	return judgeGrowth(t, y, rate, th, growthRule{
		criterion: Criterion{Name: CritFDGrowth, Limit: th.FDGrowthPer1kRequests, Unit: "fds/1k requests", Comparison: "<="},
		subject:   "open file descriptors", per: 1000, minPer: th.FDGrowthPer1kRequests, minTotal: th.FDGrowthTotal,
		amount:  func(v float64) string { return fmt.Sprintf("%+.2f", v) },
		minText: fmt.Sprintf("%g per 1k requests", th.FDGrowthPer1kRequests),
	})
}

// fdSettle holds the count after the load against the window's start; a
// service that reached its limit may have done so in the warm-up, so it is
// held against the idle count before any load instead.
func fdSettle(s Settle, th Thresholds) Criterion {
	c := Criterion{Name: CritFDSettle, Limit: float64(th.FDSettleTolerance), Unit: "fds", Comparison: "<="}
	from, fromName := s.WindowStartFDs, "the start of the measured window"
	if s.FDLimitReached() && s.IdleFDs > 0 {
		from, fromName = s.IdleFDs, "the idle service, before any load"
	}
	pooled, why := s.Pool.leftOut(s.FinalFDs-from, "descriptors", th)
	c.Value = float64(s.FinalFDs - from - pooled)
	c.Status = statusIf(c.Value <= c.Limit)
	switch {
	case pooled > 0:
		c.Detail = fmt.Sprintf("%d open file descriptors %.1f s after the load stopped (%d at %s, peak %d); %s",
			s.FinalFDs, s.Took.Std().Seconds(), from, fromName, s.PeakFDs, why)
	case c.Status == StatusPass:
		c.Detail = fmt.Sprintf("back to %d open file descriptors (%d at %s, peak %d) after the load stopped",
			s.FinalFDs, from, fromName, s.PeakFDs)
	default:
		c.Detail = fmt.Sprintf("still %d open file descriptors %.1f s after the load stopped and its connections closed; %d at %s, peak %d",
			s.FinalFDs, s.Took.Std().Seconds(), from, fromName, s.PeakFDs)
	}
	if c.Status == StatusFail {
		c.Detail += s.Pool.notAPool(th)
	}
	if line := s.FDLimitLine(); line != "" {
		c.Detail = line + "; " + c.Detail
	}
	return c
}

// FDLimitLine is the report's line for a service that reached its limit of
// open files, "" for one that did not.
func (s Settle) FDLimitLine() string {
	if !s.FDLimitReached() {
		return ""
	}
	return fmt.Sprintf("the service reached its limit of open files (RLIMIT_NOFILE %d, peak %d open): from there on it cannot accept connections or open files",
		s.FDLimit, s.PeakFDs)
}

// fdCriteria are the descriptor criteria, none when descriptors were not
// counted (the environment says why).
func fdCriteria(obs Observation, steadyFrom, rate float64, th Thresholds) []Criterion {
	if !fdsMeasured(obs) {
		return nil
	}
	t, y := fdSeries(obs.Samples, steadyFrom, obs.MeasureTo)
	return []Criterion{fdGrowth(t, y, rate, th), fdSettle(obs.Settle, th)}
}

func isFDCriterion(name string) bool { return name == CritFDGrowth || name == CritFDSettle }
