package gate

import (
	"fmt"
	"time"
)

// Neutral is a comparison's verdict when the leak it found is already on
// the base and the config says not to block on it: the finding is shown,
// the pull request is not blamed. Only a Comparison has it, never a
// Report. `memgate check --base` exits 0 with it; a check run concludes
// "neutral".
const Neutral Verdict = "neutral"

// Outcome is what a comparison found the pull request did.
type Outcome string

// The outcomes of a comparison of head against base.
const (
	OutcomeIntroduced Outcome = "introduced" // head fails a criterion the base passes
	OutcomeAlready    Outcome = "already"    // both fail alike: the leak is the base's
	OutcomeFixed      Outcome = "fixed"      // base fails, head passes
	OutcomeWorse      Outcome = "worse"      // head worse than base beyond the noise (Rows say where)
	OutcomeSame       Outcome = "same"       // nothing changed beyond the noise
	// OutcomeUnjudged: base or head could not be judged (an error or an
	// inconclusive run); the verdict is the head's alone.
	OutcomeUnjudged Outcome = "unjudged"
)

// Comparison criteria: how head is held against base. Their rows' Limit
// is the most head may exceed base by.
const (
	CmpHeapGrowth      = "heap_growth_vs_base"      // bytes/request, head minus base
	CmpGoroutineGrowth = "goroutine_growth_vs_base" // goroutines/1k requests, head minus base
	CmpLatencyP99      = "latency_p99_vs_base"      // ms, head minus base (and a ratio, see CompareLimits)
)

// ComparisonRow is one criterion of base and head side by side. Base and
// Head are the two runs' values in Unit; Status is the comparison's, not
// either run's: it fails only when head is worse than base beyond Limit.
type ComparisonRow struct {
	Criterion string  `json:"criterion"`
	Base      float64 `json:"base"`
	Head      float64 `json:"head"`
	Limit     float64 `json:"limit"` // head may exceed base by at most this
	Unit      string  `json:"unit"`
	Status    Status  `json:"status"`
	Detail    string  `json:"detail"`
	// BaseStatus and HeadStatus are the runs' own statuses of the
	// absolute criterion behind the row ("" when there is none, as for
	// latency).
	BaseStatus Status `json:"base_status,omitempty"`
	HeadStatus Status `json:"head_status,omitempty"`
}

// RunRef names one gate run of a comparison: which commit, its verdict
// and report. RunID is the server's run id of a stored run (a reused
// base), 0 for a run made here.
type RunRef struct {
	SHA     string  `json:"sha,omitempty"`
	Ref     string  `json:"ref,omitempty"` // e.g. "main": what a headline calls it
	RunID   int64   `json:"run_id,omitempty"`
	Verdict Verdict `json:"verdict"`
	Reason  string  `json:"reason"`
	Reused  bool    `json:"reused,omitempty"` // a stored result, not run for this comparison
	Report  *Report `json:"report,omitempty"`
}

// Comparison is a pull request judged against its base: base and head
// gated alike, their criteria side by side, and what the head changed.
type Comparison struct {
	Verdict  Verdict         `json:"verdict"` // pass, fail, neutral, error or inconclusive
	Outcome  Outcome         `json:"outcome"`
	Headline string          `json:"headline"` // the check run's title
	Rows     []ComparisonRow `json:"rows"`
	Base     RunRef          `json:"base"`
	Head     RunRef          `json:"head"`
	// Confirmations are the runs of the head (or of the pair) on a fresh
	// process made to confirm a failure before it is reported, in order.
	Confirmations []RunRef `json:"confirmations,omitempty"`
	// BaseConfirmations are the base's runs gated again beside a
	// confirmation of a worse head (a slow machine slows both), in order.
	BaseConfirmations []RunRef `json:"base_confirmations,omitempty"`
	// Flake: the first run failed and a confirmation did not; the verdict
	// is the confirmation's, and both runs are kept above.
	Flake bool `json:"flake,omitempty"`
	// Unconfirmed says why a failure was reported without the
	// confirmations asked for: the time left could not hold them.
	Unconfirmed string        `json:"unconfirmed,omitempty"`
	Limits      CompareLimits `json:"limits"`
}

// CompareLimits are how far head may be worse than base, and what a leak
// already on the base concludes. The config's `compare:` section.
type CompareLimits struct {
	// AlreadyLeaking is the conclusion when base and head fail alike:
	// "neutral" (shown, not blocking) or "failure".
	AlreadyLeaking string `json:"already_leaking" yaml:"already_leaking"`
	// HeapGrowthBytesPerRequest is how much faster head's post-GC heap may
	// grow than base's.
	HeapGrowthBytesPerRequest float64 `json:"heap_growth_bytes_per_request" yaml:"heap_growth_bytes_per_request"`
	// GoroutineGrowthPer1kRequests is how much faster head's goroutines
	// may grow than base's.
	GoroutineGrowthPer1kRequests float64 `json:"goroutine_growth_per_1k_requests" yaml:"goroutine_growth_per_1k_requests"`
	// LatencyP99Ratio and LatencyP99Slower: head's p99 latency fails when
	// it is both more than Ratio times base's and more than Slower above
	// it (a ratio alone fails 1 ms against 0.5 ms).
	LatencyP99Ratio  float64       `json:"latency_p99_ratio" yaml:"latency_p99_ratio"`
	LatencyP99Slower time.Duration `json:"latency_p99_slower_ns" yaml:"latency_p99_slower"`
	// Confirmations is how many fresh runs must fail again before a
	// failure is reported; a failure that does not repeat is a flake.
	Confirmations int `json:"confirmations" yaml:"confirmations"`
}

// DefaultCompareLimits are the limits used when a config sets none.
func DefaultCompareLimits() CompareLimits {
	th := DefaultThresholds()
	return CompareLimits{
		AlreadyLeaking:               "neutral",
		HeapGrowthBytesPerRequest:    th.HeapGrowthBytesPerRequest,
		GoroutineGrowthPer1kRequests: th.GoroutineGrowthPer1kRequests,
		LatencyP99Ratio:              1.5,
		LatencyP99Slower:             20 * time.Millisecond,
		Confirmations:                1,
	}
}

// Validate reports the first limit that cannot be used, naming its key.
func (l CompareLimits) Validate() error {
	switch {
	case l.AlreadyLeaking != "neutral" && l.AlreadyLeaking != "failure":
		return fmt.Errorf("already_leaking must be neutral or failure, got %q", l.AlreadyLeaking)
	case l.HeapGrowthBytesPerRequest < 0:
		return fmt.Errorf("heap_growth_bytes_per_request must be >= 0, got %v", l.HeapGrowthBytesPerRequest)
	case l.GoroutineGrowthPer1kRequests < 0:
		return fmt.Errorf("goroutine_growth_per_1k_requests must be >= 0, got %v", l.GoroutineGrowthPer1kRequests)
	case l.LatencyP99Ratio < 1:
		return fmt.Errorf("latency_p99_ratio must be >= 1, got %v", l.LatencyP99Ratio)
	case l.LatencyP99Slower < 0:
		return fmt.Errorf("latency_p99_slower must be >= 0, got %v", l.LatencyP99Slower)
	case l.Confirmations < 0 || l.Confirmations > 5:
		return fmt.Errorf("confirmations must be between 0 and 5, got %v", l.Confirmations)
	}
	return nil
}
