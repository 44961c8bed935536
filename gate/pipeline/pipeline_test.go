package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/gatetest"
	"github.com/memgate/memgate/internal/testlock"
)

// These tests build and run real services under real load. They run one at
// a time: two gates sharing two cores disturb each other's numbers.

func examples(name string) string { return filepath.Join("..", "..", "examples", name) }

// quick is a short gate for tests: 3 s warm-up, a 12 s window.
func quick() config.Config {
	cfg := config.Default()
	cfg.Load.Warmup = 3 * time.Second
	cfg.Load.Duration = 12 * time.Second
	cfg.Load.Cooldown = 5 * time.Second
	return cfg
}

type recorder struct {
	phases  []string
	port    string
	onPhase func(string) // optional
}

func (r *recorder) Phase(p, detail string) {
	r.phases = append(r.phases, p)
	if p == "start" {
		_, r.port, _ = net.SplitHostPort(detail)
	}
	if r.onPhase != nil {
		r.onPhase(p)
	}
}
func (r *recorder) Sample(gate.Sample) {}

func gateRun(t *testing.T, ctx context.Context, dir string, cfg config.Config) (Result, *recorder) {
	t.Helper()
	return gateRunWith(t, ctx, dir, cfg, &recorder{})
}

func gateRunWith(t *testing.T, ctx context.Context, dir string, cfg config.Config, rec *recorder) (Result, *recorder) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real gate; skipped with -short")
	}
	testlock.Gate(t)
	work := gatetest.WorkDir(t)
	res := Run(ctx, Options{
		Dir: dir, Config: cfg, WorkDir: work, Containment: gatetest.Containment(t),
		ToolEnv: service.ToolchainEnv(os.Getenv), ServiceEnv: []string{"PATH=" + os.Getenv("PATH")},
		Version: "test", Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress: rec,
	})
	assertNothingLeftRunning(t, work, rec.port)
	return res, rec
}

// assertNothingLeftRunning: no process started from the run's scratch
// directory survives it, and nothing listens on the port it used.
func assertNothingLeftRunning(t *testing.T, work, port string) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(b), work) {
			t.Errorf("process left running: %s %q", p, strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	if port != "" {
		if c, err := net.DialTimeout("tcp", "127.0.0.1:"+port, 200*time.Millisecond); err == nil {
			c.Close()
			t.Errorf("something still listens on 127.0.0.1:%s", port)
		}
	}
}

func logReport(t *testing.T, r *gate.Report) {
	t.Helper()
	t.Logf("verdict %s: %s (source: %s)", r.Verdict, r.Reason, r.Environment.Source)
	for _, c := range r.Criteria {
		t.Logf("  %-17s %-12s %10.3f %s %-8g %s", c.Name, c.Status, c.Value, c.Comparison, c.Limit, c.Detail)
	}
	if r.Verdict == gate.Error {
		t.Logf("build output:\n%s\nservice output:\n%s", r.BuildOutput, r.ServiceOutput)
	}
}

func want(t *testing.T, r *gate.Report, v gate.Verdict) {
	t.Helper()
	if r.Verdict != v {
		logReport(t, r)
		t.Fatalf("verdict %s, want %s", r.Verdict, v)
	}
}

func criterion(t *testing.T, r *gate.Report, name string) gate.Criterion {
	t.Helper()
	c, ok := r.Criterion(name)
	if !ok {
		t.Fatalf("no criterion %s", name)
	}
	return c
}

func TestHealthyServicesPass(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"healthy-json", nil},
		{"healthy-garbage", nil},
		// 1,200 entries at 200/s fill 3 s into the 12 s window.
		{"healthy-cache", map[string]string{"CACHE_ENTRIES": "1200"}},
		{"no-pprof", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quick()
			cfg.Run.Env = tc.env
			res, _ := gateRun(t, context.Background(), examples(tc.name), cfg)
			r := res.Report
			want(t, r, gate.Pass)
			for _, c := range r.Criteria {
				if c.Status != gate.StatusPass {
					t.Errorf("%s: %s", c.Name, c.Status)
				}
			}
			if len(r.Samples) < 20 || r.Load.Requests < 2000 {
				t.Errorf("%d samples, %d requests", len(r.Samples), r.Load.Requests)
			}
			if r.Environment.GoVersion == "" || r.Environment.GOMAXPROCS == 0 || r.Timings.Build <= 0 || r.Timings.Load <= 0 {
				t.Errorf("environment %+v timings %+v", r.Environment, r.Timings)
			}
			if len(res.Profiles) != 5 {
				t.Errorf("profiles: %d", len(res.Profiles))
			}
			// Read from the service's pprof, or (no-pprof) the reader.
			if p := r.Attribution.ProvenLeaks; p == nil || !p.Read || p.Total != 0 {
				t.Errorf("the runtime's proof on a healthy service: %+v", p)
			}
		})
	}
}

func TestNoPprofIsReadThroughTheInjectedReader(t *testing.T) {
	cfg := quick()
	cfg.Run.Env = map[string]string{"LEAK_BYTES": "1024"}
	res, _ := gateRun(t, context.Background(), examples("no-pprof"), cfg)
	r := res.Report
	want(t, r, gate.Fail)
	if !strings.Contains(r.Environment.Source, "reader") {
		t.Errorf("source %q: the catch-all route was taken for pprof", r.Environment.Source)
	}
	if len(r.Attribution.Heap) == 0 || r.Attribution.Heap[0].Function != "main.(*router).keep" {
		t.Errorf("heap attribution %+v", r.Attribution.Heap)
	}
	if !strings.Contains(r.Reason, "main.(*router).keep") {
		t.Errorf("reason %q does not name the leak", r.Reason)
	}
	// The reader reads the live heap from runtime/metrics as well.
	var live bool
	for _, s := range r.Samples {
		live = live || s.HeapLive > 0
	}
	if !live {
		t.Error("no heap_live_bytes in reader samples")
	}
}

func TestHeapLeakFailsAndIsNamed(t *testing.T) {
	res, _ := gateRun(t, context.Background(), examples("heap-leak"), quick())
	r := res.Report
	want(t, r, gate.Fail)
	c := criterion(t, r, gate.CritHeapGrowth)
	if c.Status != gate.StatusFail || c.Value < 700 || c.Value > 1500 {
		t.Errorf("heap growth %+v, want about 1 KiB/request", c)
	}
	if len(r.Attribution.Heap) == 0 || r.Attribution.Heap[0].Function != "main.(*orderStore).remember" {
		t.Fatalf("heap attribution %+v", r.Attribution.Heap)
	}
	// The culprit is the example's own line, relative to the gate's
	// directory, and the kind is said.
	if c := r.Attribution.Heap[0].Culprit; c == nil || *c != (gate.Frame{Function: "main.(*orderStore).remember", File: "main.go", Line: 21}) {
		t.Errorf("culprit %+v", c)
	}
	if !strings.Contains(r.Reason, "a cache without a bound: main.(*orderStore).remember (main.go:21)") {
		t.Errorf("reason %q", r.Reason)
	}
	if criterion(t, r, gate.CritGoroutineSettle).Status != gate.StatusPass {
		t.Errorf("a heap leak is not a goroutine leak: %+v", criterion(t, r, gate.CritGoroutineSettle))
	}
}

// 128 B/request over as many requests as the default window holds
// (8,000): at the runtime's default heap profile rate it rests on about 2
// samples, a guess; at the gate's (service.HeapProfileRate) on about 15.
func TestSlowLeakFails(t *testing.T) {
	cfg := quick()
	cfg.Load.Rate, cfg.Load.Duration = 800, 10*time.Second
	cfg.Run.Env = map[string]string{"LEAK_BYTES": "128"}
	res, _ := gateRun(t, context.Background(), examples("slow-leak"), cfg)
	r := res.Report
	want(t, r, gate.Fail)
	if c := criterion(t, r, gate.CritHeapGrowth); c.Status != gate.StatusFail {
		t.Errorf("heap growth %+v", c)
	}
	if len(r.Attribution.Heap) == 0 || !strings.Contains(r.Attribution.Heap[0].Where(), "main.(*sessions).touch") {
		t.Fatalf("heap attribution %+v", r.Attribution.Heap)
	}
	h := r.Attribution.Heap[0]
	t.Logf("%.1f heap profile samples (%s)", h.Samples, gate.FormatBytes(float64(h.DeltaBytes)))
	if h.Samples < gate.MinHeapSamples || strings.Contains(r.Reason, "perhaps") {
		t.Errorf("%.1f heap profile samples (%s): %q", h.Samples, gate.FormatBytes(float64(h.DeltaBytes)), r.Reason)
	}
}

func TestGoroutineLeakFailsAndIsNamed(t *testing.T) {
	cfg := quick()
	// One goroutine per 100 requests: the rate the design must catch.
	cfg.Run.Env = map[string]string{"LEAK_EVERY": "100"}
	res, _ := gateRun(t, context.Background(), examples("goroutine-leak"), cfg)
	r := res.Report
	want(t, r, gate.Fail)
	if c := criterion(t, r, gate.CritGoroutineSettle); c.Status != gate.StatusFail || c.Value < 15 {
		t.Errorf("settle %+v", c)
	}
	if len(r.Attribution.Goroutines) == 0 || r.Attribution.Goroutines[0].Top != "main.main.handleOrder.func1.1" {
		t.Fatalf("goroutine attribution %+v", r.Attribution.Goroutines)
	}
	if !strings.Contains(r.Reason, "blocked on a channel receive with no sender, in main.main.handleOrder.func1.1 (main.go:23)") {
		t.Errorf("reason %q", r.Reason)
	}
	// Each goroutine waits on a channel nobody else holds: the runtime
	// proves them leaked, all of them (3,000 requests, the warm-up's
	// included: 30).
	p := r.Attribution.ProvenLeaks
	if p == nil || p.Total < 25 || len(p.Stacks) == 0 || p.Stacks[0].Top != "main.main.handleOrder.func1.1" {
		t.Fatalf("the runtime's proof %+v", p)
	}
	if !strings.Contains(r.Reason, "proven leaked by the runtime: "+gate.FormatCount(p.Stacks[0].Count)+" in main.main.handleOrder.func1.1") {
		t.Errorf("reason %q", r.Reason)
	}
	if len(res.Profiles[GoroutineLeakEnd]) == 0 {
		t.Error("the goroutineleak profile is not kept with the others")
	}
}

func TestInvalidLoadIsInconclusive(t *testing.T) {
	cfg := quick()
	cfg.Load.Targets = []config.Target{{Method: "GET", Path: "/missing"}}
	cfg.Readiness.Path = "/"
	// healthy-json answers every path, so make the load fail another way:
	// a request timeout shorter than any response.
	cfg.Load.Timeout = time.Nanosecond
	res, _ := gateRun(t, context.Background(), examples("healthy-json"), cfg)
	want(t, res.Report, gate.Inconclusive)
	if !strings.Contains(res.Report.Reason, "load not valid") {
		t.Errorf("reason %q", res.Report.Reason)
	}
}

func TestServicesThatCannotBeGated(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	takenPort := held.Addr().(*net.TCPAddr).Port

	for _, tc := range []struct {
		name, dir string
		mutate    func(*config.Config)
		reason    string
		output    string // in the build or service output tail
	}{
		{"not a module", t.TempDir(), nil, "is not a Go module", ""},
		{"compile error", "testdata/compile-error", nil, "build failed", "undefined: undefinedFunction"},
		{"crash at start", "testdata/crash-at-start", nil, "exited before becoming ready", "cannot open database"},
		{"never ready", "testdata/never-ready", func(c *config.Config) { c.Readiness.Timeout = 2 * time.Second }, "not ready after 2s", ""},
		{"panics under load", "testdata/panics-under-load", nil, "exited during the run", "nil map write in reconcile loop"},
		{"port taken", examples("healthy-json"), func(c *config.Config) { c.Run.Port = takenPort }, "port taken", ""},
		{"service pprof required", examples("no-pprof"), func(c *config.Config) { c.Pprof.Mode = "service" }, "but not with a heap profile", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quick()
			if tc.mutate != nil {
				tc.mutate(&cfg)
			}
			res, _ := gateRun(t, context.Background(), tc.dir, cfg)
			r := res.Report
			want(t, r, gate.Error)
			if !strings.Contains(r.Reason, tc.reason) {
				t.Errorf("reason %q, want it to contain %q", r.Reason, tc.reason)
			}
			if tc.output != "" && !strings.Contains(r.BuildOutput+r.ServiceOutput, tc.output) {
				t.Errorf("output tails do not show %q:\nbuild: %s\nservice: %s", tc.output, r.BuildOutput, r.ServiceOutput)
			}
		})
	}
}

func TestInterruptLeavesNothingRunning(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := quick()
	// Interrupt a second into the warm-up: the service is up and under load.
	var cancelledAt atomic.Int64
	rec := &recorder{onPhase: func(p string) {
		if p == "warmup" {
			time.AfterFunc(time.Second, func() {
				cancelledAt.Store(time.Now().UnixNano())
				cancel()
			})
		}
	}}
	res, rec := gateRunWith(t, ctx, examples("goroutine-leak"), cfg, rec)
	if res.Report.Verdict != gate.Error || !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("verdict %s: %s", res.Report.Verdict, res.Report.Reason)
	}
	if took := time.Since(time.Unix(0, cancelledAt.Load())); took > 10*time.Second {
		t.Errorf("interrupted run took %v to stop", took)
	}
	if rec.port == "" {
		t.Fatal("the service never started")
	}
}

// Builds and services get an explicit environment: memgate's own, which
// holds tokens, never reaches them.
func TestSecretsStayOutOfBuildAndService(t *testing.T) {
	const secret = "ghs_memgate_test_secret_value"
	t.Setenv("MEMGATE_GITHUB_TOKEN", secret)
	t.Setenv("MEMGATE_WEBHOOK_SECRET", secret)
	cfg := quick()
	cfg.Load.Warmup = 0
	cfg.Load.Duration = 5 * time.Second
	cfg.Build.Command = "env >&2 && go build -o {{output}} ."
	res, _ := gateRun(t, context.Background(), "testdata/env-dump", cfg)
	r := res.Report
	if r.Verdict == gate.Error {
		logReport(t, r)
		t.Fatalf("gate did not run: %s", r.Reason)
	}
	if !strings.Contains(r.BuildOutput, "GOTOOLCHAIN=local") || !strings.Contains(r.ServiceOutput, "ENV:") {
		t.Fatalf("the fixture did not dump its environment:\nbuild: %s\nservice: %s", r.BuildOutput, r.ServiceOutput)
	}
	if strings.Contains(r.BuildOutput, secret) || strings.Contains(r.ServiceOutput, secret) {
		t.Fatalf("a secret reached the build or the service:\nbuild: %s\nservice: %s", r.BuildOutput, r.ServiceOutput)
	}
	if !strings.Contains(r.ServiceOutput, "PORT=") {
		t.Errorf("the service did not get PORT: %s", r.ServiceOutput)
	}
}
