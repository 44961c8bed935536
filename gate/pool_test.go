package gate

import (
	"strings"
	"testing"
	"time"
)

// The run of the accuracy bench that failed wrongly: a shared client's
// pool widened from 1 to 6 idle connections in the window, +9 goroutines
// and +5 descriptors after the cooldown. What a second burst then showed
// decides: reused, the pool is left out and the run passes; grown again
// as much per request, it is a leak and fails.
func TestSettledPoolIsLeftOutLeakIsNot(t *testing.T) {
	window := func(p *PoolCheck) Observation {
		obs := series(noisy(1, 6<<20, 0.05*(6<<20)), noisy(2, 10, 2))
		obs.Settle = Settle{WindowStart: 8, Peak: 23, Final: 17, Took: Duration(10 * time.Second),
			IdleFDs: 12, WindowStartFDs: 14, PeakFDs: 23, FinalFDs: 19, Pool: p}
		for i := range obs.Samples {
			obs.Samples[i].FDs = 14
		}
		return obs
	}
	pool := func(burstRequests uint64, more int, valid bool) *PoolCheck {
		return &PoolCheck{Connections: 5, Goroutines: 10, WindowRequests: 8000,
			BurstRequests: burstRequests, BurstConnections: more, BurstValid: valid}
	}
	for _, tc := range []struct {
		name     string
		pool     *PoolCheck
		verdict  Verdict
		gor, fds float64
		inDetail string
	}{
		{"no second burst", nil, Fail, 9, 5, "still 17 goroutines"},
		{"reused", pool(8000, 0, true), Pass, -1, 0, "a second burst of 8000 requests reused them (+0 connections)"},
		{"widened a little more", pool(8000, 2, true), Pass, -1, 0, "reused them (+2 connections)"},
		{"grew as much again", pool(8000, 5, true), Fail, 9, 5, "not a pool: a second burst of 8000 requests left 5 more open"},
		{"half a burst, half as much per request", pool(4000, 1, true), Pass, -1, 0, "reused them (+1 connections)"},
		{"half a burst, as much per request", pool(4000, 2, true), Fail, 9, 5, "left 2 more open"},
		{"too short a burst to tell", pool(3000, 0, true), Fail, 9, 5, "not a pool"},
		{"an invalid burst", pool(8000, 0, false), Fail, 9, 5, "was not a valid load"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Evaluate(window(tc.pool), DefaultThresholds())
			g, f := statusOf(t, d, CritGoroutineSettle), statusOf(t, d, CritFDSettle)
			if d.Verdict != tc.verdict || g.Value != tc.gor || f.Value != tc.fds {
				t.Fatalf("verdict %s, goroutine_settle %v (%s), fd_settle %v (%s); want %s, %v, %v",
					d.Verdict, g.Value, g.Detail, f.Value, f.Detail, tc.verdict, tc.gor, tc.fds)
			}
			if !strings.Contains(g.Detail, tc.inDetail) {
				t.Errorf("goroutine_settle detail %q lacks %q", g.Detail, tc.inDetail)
			}
			if tc.verdict == Pass && !strings.Contains(f.Detail, "(5 descriptors) are left out") {
				t.Errorf("fd_settle detail %q", f.Detail)
			}
		})
	}
}
