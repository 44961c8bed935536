package gate

import "fmt"

// Thresholds are the limits the criteria use. DefaultThresholds documents
// why each default is what it is.
type Thresholds struct {
	// HeapFluctuation is the design's rule: the robust spread (p95-p5) of
	// the post-GC heap in the steady window, over its median, at most this.
	HeapFluctuation float64 `json:"heap_fluctuation" yaml:"heap_fluctuation"`
	// HeapFloorBytes is the smallest denominator the fluctuation is taken
	// over. Below the runtime's 4 MiB minimum heap goal a few spans of
	// allocator noise are a large fraction of the heap; the growth
	// criterion, not this one, catches leaks in small heaps.
	HeapFloorBytes uint64 `json:"heap_floor_bytes" yaml:"heap_floor_bytes"`
	// HeapGrowthBytesPerRequest and HeapGrowthTotalBytes are the minimum
	// effect a significant post-GC heap trend must have to fail the gate.
	HeapGrowthBytesPerRequest float64 `json:"heap_growth_bytes_per_request" yaml:"heap_growth_bytes_per_request"`
	HeapGrowthTotalBytes      uint64  `json:"heap_growth_total_bytes" yaml:"heap_growth_total_bytes"`
	// GoroutineGrowthPer1kRequests and GoroutineGrowthTotal are the minimum
	// effect a significant goroutine trend must have to fail the gate.
	GoroutineGrowthPer1kRequests float64 `json:"goroutine_growth_per_1k_requests" yaml:"goroutine_growth_per_1k_requests"`
	GoroutineGrowthTotal         float64 `json:"goroutine_growth_total" yaml:"goroutine_growth_total"`
	// GoroutineSettleTolerance is how many goroutines above the count at the
	// start of the measured window may remain after the load has stopped.
	GoroutineSettleTolerance int `json:"goroutine_settle_tolerance" yaml:"goroutine_settle_tolerance"`
	// FDGrowthPer1kRequests and FDGrowthTotal are the minimum effect a
	// significant trend of open file descriptors must have to fail the
	// gate; FDSettleTolerance is how many more than at the start of the
	// measured window may remain open once the load has stopped.
	FDGrowthPer1kRequests float64 `json:"fd_growth_per_1k_requests" yaml:"fd_growth_per_1k_requests"`
	FDGrowthTotal         float64 `json:"fd_growth_total" yaml:"fd_growth_total"`
	FDSettleTolerance     int     `json:"fd_settle_tolerance" yaml:"fd_settle_tolerance"`
	// Alpha is the one-sided significance level of the trend tests.
	Alpha float64 `json:"alpha" yaml:"alpha"`
	// SteadyFraction is the later part of the measured window that growth
	// and fluctuation are judged on (0.5: the second half), so a cache that
	// is still filling early in the window is not called a leak.
	SteadyFraction float64 `json:"steady_fraction" yaml:"steady_fraction"`
	// MinSuccessRatio and MinRateRatio make the load valid: below either the
	// verdict is inconclusive, never pass.
	MinSuccessRatio float64 `json:"min_success_ratio" yaml:"min_success_ratio"`
	MinRateRatio    float64 `json:"min_rate_ratio" yaml:"min_rate_ratio"`
	// MinPoints is the fewest points a trend test is run on; fewer makes
	// the criterion inconclusive. Mann-Kendall cannot reach one-sided
	// significance at 0.01 below 6 points.
	MinPoints int `json:"min_points" yaml:"min_points"`
}

// DefaultThresholds are the limits used when a config sets none.
func DefaultThresholds() Thresholds {
	return Thresholds{
		HeapFluctuation:              0.15,
		HeapFloorBytes:               4 << 20,
		HeapGrowthBytesPerRequest:    32,
		HeapGrowthTotalBytes:         256 << 10,
		GoroutineGrowthPer1kRequests: 1,
		GoroutineGrowthTotal:         10,
		GoroutineSettleTolerance:     5,
		// A leaked descriptor is a leaked connection or file: the same
		// minimum effects as goroutines (one per 1k requests, ten in
		// total). A healthy service's descriptors follow its connections,
		// which the load holds fixed and closes before the settle check.
		FDGrowthPer1kRequests: 1,
		FDGrowthTotal:         10,
		FDSettleTolerance:     5,
		Alpha:                 0.01,
		SteadyFraction:        0.5,
		MinSuccessRatio:       0.95,
		MinRateRatio:          0.9,
		MinPoints:             8,
	}
}

// Validate reports the first threshold that cannot be used, naming its key.
func (t Thresholds) Validate() error {
	switch {
	case t.HeapFluctuation <= 0:
		return fmt.Errorf("heap_fluctuation must be > 0, got %v", t.HeapFluctuation)
	case t.HeapGrowthBytesPerRequest < 0:
		return fmt.Errorf("heap_growth_bytes_per_request must be >= 0, got %v", t.HeapGrowthBytesPerRequest)
	case t.GoroutineGrowthPer1kRequests < 0:
		return fmt.Errorf("goroutine_growth_per_1k_requests must be >= 0, got %v", t.GoroutineGrowthPer1kRequests)
	case t.GoroutineGrowthTotal < 0:
		return fmt.Errorf("goroutine_growth_total must be >= 0, got %v", t.GoroutineGrowthTotal)
	case t.GoroutineSettleTolerance < 0:
		return fmt.Errorf("goroutine_settle_tolerance must be >= 0, got %v", t.GoroutineSettleTolerance)
	case t.FDGrowthPer1kRequests < 0:
		return fmt.Errorf("fd_growth_per_1k_requests must be >= 0, got %v", t.FDGrowthPer1kRequests)
	case t.FDGrowthTotal < 0:
		return fmt.Errorf("fd_growth_total must be >= 0, got %v", t.FDGrowthTotal)
	case t.FDSettleTolerance < 0:
		return fmt.Errorf("fd_settle_tolerance must be >= 0, got %v", t.FDSettleTolerance)
	case t.Alpha <= 0 || t.Alpha >= 0.5:
		return fmt.Errorf("alpha must be in (0, 0.5), got %v", t.Alpha)
	case t.SteadyFraction <= 0 || t.SteadyFraction > 1:
		return fmt.Errorf("steady_fraction must be in (0, 1], got %v", t.SteadyFraction)
	case t.MinSuccessRatio < 0 || t.MinSuccessRatio > 1:
		return fmt.Errorf("min_success_ratio must be in [0, 1], got %v", t.MinSuccessRatio)
	case t.MinRateRatio < 0 || t.MinRateRatio > 1:
		return fmt.Errorf("min_rate_ratio must be in [0, 1], got %v", t.MinRateRatio)
	case t.MinPoints < 6:
		return fmt.Errorf("min_points must be >= 6 (Mann-Kendall needs 6 for alpha 0.01), got %v", t.MinPoints)
	}
	return nil
}
