// Package gate is memgate's domain: what a gate run observes (samples, load,
// profiles), the criteria it is judged by, and the report it ends with. The
// evaluation here is pure: it reads numbers and returns a verdict, so it can
// be tested without building or running anything.
package gate

import (
	"fmt"
	"time"
)

// Verdict is the outcome of a gate run.
type Verdict string

// The verdicts, with the exit status `memgate check` gives each.
const (
	Pass         Verdict = "pass"         // exit 0 (as is a comparison's Neutral)
	Fail         Verdict = "fail"         // exit 1
	Error        Verdict = "error"        // exit 2: memgate could not run the gate
	Inconclusive Verdict = "inconclusive" // exit 3: the load was not valid, or too little data
)

// ExitCode maps a verdict to the process exit status of `memgate check`.
func (v Verdict) ExitCode() int {
	switch v {
	case Pass, Neutral:
		return 0
	case Fail:
		return 1
	case Inconclusive:
		return 3
	}
	return 2
}

// Status is the outcome of one criterion.
type Status string

// Criterion statuses. Inconclusive means the data could not support a
// decision either way (too few points).
const (
	StatusPass         Status = "pass"
	StatusFail         Status = "fail"
	StatusInconclusive Status = "inconclusive"
)

// Phase is the part of a run a sample was taken in.
type Phase string

// The phases of a run, in order.
const (
	PhaseIdle    Phase = "idle"    // started, before any load
	PhaseWarmup  Phase = "warmup"  // load running, not judged
	PhaseMeasure Phase = "measure" // the measured window
	PhaseSettle  Phase = "settle"  // load stopped, waiting for goroutines to go
)

// Sample is one reading of the service. PostGCHeap is the in-use heap right
// after a forced GC and is only known on checkpoint samples (0 otherwise).
type Sample struct {
	Time       time.Time `json:"time"`
	Offset     float64   `json:"t"` // seconds since the load started
	Phase      Phase     `json:"phase"`
	HeapInuse  uint64    `json:"heap_inuse_bytes"`
	PostGCHeap uint64    `json:"post_gc_heap_bytes,omitempty"`
	HeapLive   uint64    `json:"heap_live_bytes,omitempty"` // marked by the last GC (runtime/metrics only)
	// PostGCObjects is the heap's live objects right after the forced GC
	// of a checkpoint (HeapAlloc then, or the reader's live heap): object
	// bytes, where PostGCHeap counts whole spans. Kept beside it to judge
	// whether it is the steadier measure on small heaps; 0 when unknown.
	PostGCObjects uint64  `json:"post_gc_objects_bytes,omitempty"`
	Goroutines    int     `json:"goroutines"`
	GCCycles      uint64  `json:"gc_cycles"`
	Requests      uint64  `json:"requests"`     // requests completed so far
	AchievedRPS   float64 `json:"achieved_rps"` // over the second before the sample
	// FDs is the service's open file descriptors, Sockets those of them
	// that are sockets; 0 when they could not be read.
	FDs     int `json:"fds,omitempty"`
	Sockets int `json:"sockets,omitempty"`
}

// Criterion is one rule the run is judged by, with the numbers behind it.
type Criterion struct {
	Name   string  `json:"name"`
	Status Status  `json:"status"`
	Value  float64 `json:"value"`
	Limit  float64 `json:"limit"`
	Unit   string  `json:"unit"`
	// Comparison says how Value is held against Limit: "<=" or ">=".
	Comparison string `json:"comparison"`
	Detail     string `json:"detail"`
}

// Criterion names, stable across versions: tools match on them.
const (
	CritHeapFluctuation = "heap_fluctuation"
	CritHeapGrowth      = "heap_growth"
	CritGoroutineGrowth = "goroutine_growth"
	CritGoroutineSettle = "goroutine_settle"
	CritFDGrowth        = "fd_growth"
	CritFDSettle        = "fd_settle"
	CritLoadSuccess     = "load_success"
	CritLoadRate        = "load_rate"
)

// Load summarises the HTTP load of one phase.
type Load struct {
	RequestedRate float64        `json:"requested_rate"`
	AchievedRate  float64        `json:"achieved_rate"`
	Requests      uint64         `json:"requests"`
	SuccessRatio  float64        `json:"success_ratio"`
	Duration      Duration       `json:"duration"`
	Latency       Latency        `json:"latency"`
	StatusCodes   map[string]int `json:"status_codes"`
	Errors        []string       `json:"errors,omitempty"` // distinct errors, at most a few
	// Streams are the requests held open as streams (counted in Requests);
	// LeftEarly the ordinary requests the client left on purpose before
	// they finished (counted in Requests, succeeded unless they failed
	// before the client left).
	Streams   uint64 `json:"streams,omitempty"`
	LeftEarly uint64 `json:"left_early,omitempty"`
	// ScheduledLatency is measured from when the load's schedule meant to
	// send each request, not from when a connection was free to send it:
	// a stall that holds every connection delays the requests queued
	// behind it, and Latency (from the send) never sees them wait. Zero
	// in reports from before memgate measured it.
	ScheduledLatency Latency `json:"scheduled_latency"`
}

// Latency percentiles of a load phase.
type Latency struct {
	P50  Duration `json:"p50"`
	P95  Duration `json:"p95"`
	P99  Duration `json:"p99"`
	Max  Duration `json:"max"`
	Mean Duration `json:"mean"`
}

// Settle is what happened to the goroutine and open file counts after the
// load stopped and the load generator closed its idle connections.
type Settle struct {
	WindowStart int      `json:"window_start_goroutines"` // at the start of the measured window
	Peak        int      `json:"peak_goroutines"`         // highest count seen under load
	Final       int      `json:"final_goroutines"`        // last count read while settling
	Settled     bool     `json:"settled"`                 // back within tolerance before the deadline
	Took        Duration `json:"took"`                    // time to settle, or the deadline
	// Open file descriptors, alike; all 0 when they could not be read.
	IdleFDs        int `json:"idle_fds,omitempty"` // before any load
	WindowStartFDs int `json:"window_start_fds,omitempty"`
	PeakFDs        int `json:"peak_fds,omitempty"`
	FinalFDs       int `json:"final_fds,omitempty"`
	// FDLimit is the service's RLIMIT_NOFILE (soft), 0 when unknown.
	FDLimit uint64 `json:"fd_limit,omitempty"`
	// Pool is the second burst run when what did not settle was the
	// service's own idle HTTP client connections; nil when none was run.
	Pool *PoolCheck `json:"pool,omitempty"`
}

// Baseline holds the reference points the criteria compare against.
type Baseline struct {
	IdleGoroutines        int     `json:"idle_goroutines"`         // before any load
	IdleHeap              uint64  `json:"idle_post_gc_heap_bytes"` // before any load, after a GC
	WindowStartGoroutines int     `json:"window_start_goroutines"` // end of warm-up
	WindowStartHeap       uint64  `json:"window_start_heap_bytes"` // end of warm-up, after a GC
	EndHeap               uint64  `json:"end_post_gc_heap_bytes"`  // end of the window, after a GC
	SettledGoroutines     int     `json:"settled_goroutines"`      // after load and settle
	SteadyFrom            float64 `json:"steady_from"`             // offset (s) where judging starts
	MeasureFrom           float64 `json:"measure_from"`            // offset (s) of the measured window
	MeasureTo             float64 `json:"measure_to"`
}

// HeapSite is one function whose in-use heap grew between the two heap
// profiles.
type HeapSite struct {
	Function   string   `json:"function"`         // the allocating function (leaf frame)
	Origin     string   `json:"origin,omitempty"` // first frame outside the runtime and standard library
	DeltaBytes int64    `json:"delta_bytes"`      // growth in inuse_space
	DeltaObjs  int64    `json:"delta_objects"`    // growth in inuse_objects
	Stack      []string `json:"stack"`            // a representative stack, leaf first
	// Culprit is the first frame the repository owns (its module, or its
	// vendored code) on the stack that grew most: the line a reviewer opens.
	// nil when no frame of the repository is on the stack.
	Culprit *Frame `json:"culprit,omitempty"`
	// Samples is about how many heap-profile samples the growth rests on
	// (DeltaBytes over the profile's sampling period: 512 KiB by the
	// runtime's default, 64 KiB in a gate); 0 when unknown. Under
	// MinHeapSamples the function is a guess.
	Samples float64 `json:"samples,omitempty"`
}

// MinHeapSamples is how many heap-profile samples a site's growth needs
// before memgate names it without hedging: the runtime samples one
// allocation per 512 KiB by default (a gate lowers it to 64 KiB, where the
// service lets it), so a small leak may rest on a single sample, and a
// single sample may land on any allocation of the window.
const MinHeapSamples = 3

// Uncertain reports whether the site rests on too few samples to be sure.
func (h HeapSite) Uncertain() bool { return h.Samples > 0 && h.Samples < MinHeapSamples }

// GoroutineStack is one goroutine stack whose count grew between the two
// goroutine profiles.
type GoroutineStack struct {
	Top   string   `json:"top"`   // the first frame outside the runtime: where they wait
	Delta int64    `json:"delta"` // change in count
	Count int64    `json:"count"` // count in the later profile
	Stack []string `json:"stack"` // leaf first
	// Culprit is the first frame the repository owns on the stack; nil
	// when the stack is the standard library's or a dependency's alone.
	Culprit *Frame `json:"culprit,omitempty"`
}

// Frame is one function on a stack and where its code is.
type Frame struct {
	Function string `json:"function"`
	// File is relative to the repository's root when the frame is the
	// repository's (e.g. "internal/api/handler.go"), so it can be linked
	// and annotated; otherwise the path the binary recorded.
	File     string `json:"file,omitempty"`
	Line     int    `json:"line,omitempty"`
	Vendored bool   `json:"vendored,omitempty"` // under the repository's vendor/
}

// String names the frame as a headline does: "main.getClient (exporter.go:123)".
func (f Frame) String() string {
	switch {
	case f.File == "":
		return f.Function
	case f.Line == 0:
		return fmt.Sprintf("%s (%s)", f.Function, f.File)
	}
	return fmt.Sprintf("%s (%s:%d)", f.Function, f.File, f.Line)
}

// LeakKind is a kind of leak, named in the words a reviewer knows.
type LeakKind string

// The kinds of leak attribution recognises.
const (
	// KindRequestsRetained: whole requests kept (their headers, URL and
	// context, which net/http allocated) by something that holds each.
	KindRequestsRetained LeakKind = "requests_retained"
	// KindConnectionsLeaked: HTTP client connections nobody closes.
	KindConnectionsLeaked LeakKind = "connections_leaked"
	// KindGoroutinesBlocked: goroutines waiting on a channel or a lock
	// that no other goroutine will ever serve.
	KindGoroutinesBlocked LeakKind = "goroutines_blocked"
	// KindTimersNotStopped: timers and tickers never stopped.
	KindTimersNotStopped LeakKind = "timers_not_stopped"
	// KindUnboundedCache: a repository function keeps what it adds to a
	// map, slice or cache that nothing evicts from.
	KindUnboundedCache LeakKind = "unbounded_cache"
)

// Goroutines reports whether the kind is found in the goroutine profiles
// (else in the heap's).
func (k LeakKind) Goroutines() bool {
	return k == KindConnectionsLeaked || k == KindGoroutinesBlocked
}

// Finding is one leak attribution recognised, with the function to fix.
type Finding struct {
	Kind LeakKind `json:"kind"`
	// Summary says it in one line, naming the culprit: "2,840 HTTP client
	// connections leaked, made by main.getHttpClient (exporter.go:123)".
	Summary string `json:"summary"`
	// Culprit is the repository's frame to fix; nil when none is known.
	Culprit *Frame `json:"culprit,omitempty"`
	Count   int64  `json:"count,omitempty"` // goroutines or connections
	Bytes   int64  `json:"bytes,omitempty"` // heap growth behind it
}

// OpenFileSite is what the descriptors that stayed open are open on: a
// file's path as the service saw it, "TCP connection to ADDR", "pipe".
type OpenFileSite struct {
	Target string `json:"target"`
	Delta  int    `json:"delta"` // from the window's start to the end of settle
	Count  int    `json:"count"` // open at the end of settle
}

// Attribution says where to look when a gate fails.
type Attribution struct {
	// OpenFiles are the targets whose descriptors grew, most first: no
	// profile shows which code holds a descriptor, but what it is open on
	// (a file, an upstream's address) is what a reviewer can search for.
	OpenFiles  []OpenFileSite   `json:"open_files,omitempty"`
	Heap       []HeapSite       `json:"heap"`
	Goroutines []GoroutineStack `json:"goroutines"`
	// Findings are the leaks recognised, heap kinds first (largest growth
	// first), then goroutine kinds (most goroutines first).
	Findings []Finding `json:"findings,omitempty"`
	// DiffCommand is the pprof command that reproduces the heap diff from
	// the profiles written with --profiles.
	DiffCommand string `json:"diff_command,omitempty"`
	Note        string `json:"note,omitempty"` // why attribution is missing, when it is
	// ProvenLeaks is the runtime's own proof, where the build has it; nil
	// in reports from before it existed.
	ProvenLeaks *ProvenLeaks `json:"proven_leaks,omitempty"`
}

// ProvenLeaks is the runtime's goroutine leak profile (Go 1.26's
// GOEXPERIMENT=goroutineleakprofile), read once at the end of the gate:
// goroutines a GC found blocked on a channel or lock that no running
// goroutine can reach, so that nothing can ever wake them. Unlike growth,
// it is not a statistic: each one is proven leaked. It holds every such
// goroutine of the process, those leaked before the window included.
type ProvenLeaks struct {
	Read   bool             `json:"read"`  // the profile was read
	Total  int64            `json:"total"` // goroutines proven leaked
	Stacks []GoroutineStack `json:"stacks,omitempty"`
	// Note says why the profile was not read (a toolchain without the
	// experiment, a build that failed with it, a source that does not
	// serve it).
	Note string `json:"note,omitempty"`
}

// Environment records what the numbers were measured under.
type Environment struct {
	GoVersion      string `json:"go_version"` // the service's toolchain
	GOMAXPROCS     int    `json:"gomaxprocs"` // the service's
	GOGC           string `json:"gogc"`       // the service's, "100" by default
	MemgateVersion string `json:"memgate_version"`
	Source         string `json:"source"`    // how the numbers were read
	Isolation      string `json:"isolation"` // how the service was contained
	// FDs says how open file descriptors were counted, or why they were not.
	FDs  string `json:"fds,omitempty"`
	CPUs int    `json:"cpus"`
	OS   string `json:"os"`
}

// Timings of a run's phases.
type Timings struct {
	Build Duration `json:"build"`
	Start Duration `json:"start"`
	Load  Duration `json:"load"`
	Total Duration `json:"total"`
}

// Settings records the run's effective load settings, so a report can be
// read without its config.
type Settings struct {
	Rate        float64  `json:"rate"`
	Warmup      Duration `json:"warmup"`
	Duration    Duration `json:"duration"`
	Cooldown    Duration `json:"cooldown"`
	Connections int      `json:"connections"`
	Targets     []string `json:"targets"`
}

// Report is the full result of one gate run: what `memgate check --json`
// writes and what the server stores.
type Report struct {
	Verdict       Verdict     `json:"verdict"`
	Reason        string      `json:"reason"`
	Criteria      []Criterion `json:"criteria"`
	Load          Load        `json:"load"`
	WarmupLoad    Load        `json:"warmup_load"`
	Samples       []Sample    `json:"samples"`
	Baseline      Baseline    `json:"baseline"`
	Settle        Settle      `json:"settle"`
	Attribution   Attribution `json:"attribution"`
	Environment   Environment `json:"environment"`
	Timings       Timings     `json:"timings"`
	Settings      Settings    `json:"settings"`
	Thresholds    Thresholds  `json:"thresholds"`
	Profiles      []string    `json:"profiles,omitempty"`       // files written with --profiles
	BuildOutput   string      `json:"build_output,omitempty"`   // tail
	ServiceOutput string      `json:"service_output,omitempty"` // tail
	// Dependencies ran beside the service (see dependency.go).
	Dependencies []Dependency `json:"dependencies,omitempty"`
	StartedAt    time.Time    `json:"started_at"`
	FinishedAt   time.Time    `json:"finished_at"`
}

// Criterion returns the named criterion and whether the report has it.
func (r *Report) Criterion(name string) (Criterion, bool) {
	for _, c := range r.Criteria {
		if c.Name == name {
			return c, true
		}
	}
	return Criterion{}, false
}

// Reading is one read of a service's runtime numbers.
type Reading struct {
	HeapInuse  uint64 // in-use heap spans, HeapInuse in runtime.MemStats terms
	HeapAlloc  uint64 // bytes of allocated heap objects, where the source knows it
	HeapLive   uint64 // heap marked live by the last GC, where the source knows it
	Goroutines int
	GCCycles   uint64
	GOGC       string // where the source knows it
	GOMAXPROCS int    // where the source knows it
	GoVersion  string // where the source knows it
	FDs        int    // open file descriptors, where the source knows them
	Sockets    int    // of FDs, the sockets
	FDLimit    uint64 // RLIMIT_NOFILE (soft), where the source knows it
}
