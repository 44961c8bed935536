package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
)

// The twins of issue 15 run through the real pipeline with the
// .memgate.yml a user writes from the README, shortened: a leaking twin
// fails on the criterion of its kind and its goroutines are named by the
// function in its CULPRIT file; the fixed twin passes every criterion.

// fixtureConfig is an example's own .memgate.yml with a short load.
func fixtureConfig(t *testing.T, name string) config.Config {
	t.Helper()
	cfg, err := config.LoadFile(filepath.Join(examples(name), config.FileName))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Load.Warmup = 3 * time.Second
	cfg.Load.Duration = 12 * time.Second
	cfg.Load.Cooldown = 5 * time.Second
	return cfg
}

func culprit(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(examples(name), "CULPRIT"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestStreamsAndEarlyLeaversAreGated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		verdict gate.Verdict
		fails   string // the leak's criterion
		named   bool   // its goroutines are named
	}{
		{"sse-leak", gate.Fail, gate.CritGoroutineGrowth, true},
		{"sse-fixed", gate.Pass, "", false},
		{"disconnect-leak", gate.Fail, gate.CritGoroutineGrowth, true},
		{"disconnect-fixed", gate.Pass, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := gateRun(t, context.Background(), examples(tc.name), fixtureConfig(t, tc.name))
			r := res.Report
			want(t, r, tc.verdict)
			defer logReport(t, r) // the margins, with -v
			for _, c := range r.Criteria {
				wantStatus := gate.StatusPass
				if c.Name == tc.fails {
					wantStatus = gate.StatusFail
				}
				if c.Name == tc.fails || tc.verdict == gate.Pass || strings.HasPrefix(c.Name, "load_") {
					if c.Status != wantStatus {
						logReport(t, r)
						t.Errorf("%s: %s, want %s", c.Name, c.Status, wantStatus)
					}
				}
			}
			if l := r.Load; l.Streams == 0 && l.LeftEarly == 0 {
				t.Errorf("load %+v: neither streams nor requests that left early", l)
			}
			if strings.HasPrefix(tc.name, "sse") && r.Load.Latency.P99.Std() >= time.Second {
				t.Errorf("p99 %v: a stream's latency is its time to first byte, not its 1 s hold", r.Load.Latency.P99.Std())
			}
			if _, ok := r.Criterion(gate.CritFDSettle); !ok {
				t.Errorf("no fd criteria; descriptors: %s", r.Environment.FDs)
			}
			if tc.named {
				fn := culprit(t, tc.name)
				if len(r.Attribution.Goroutines) == 0 {
					t.Fatalf("no goroutine attribution: %s", r.Attribution.Note)
				}
				g := r.Attribution.Goroutines[0]
				if g.Top != fn && !slices.Contains(g.Stack, fn) {
					t.Errorf("top goroutine stack %s %v, want %s on it", g.Top, g.Stack, fn)
				}
			}
		})
	}
}

func TestOpenFilesAreGated(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		verdict gate.Verdict
		fails   []string
	}{
		{"fd-fixed", nil, gate.Pass, nil},
		{"fd-leak", nil, gate.Fail, []string{gate.CritFDGrowth, gate.CritFDSettle}},
		// Out of descriptors in the warm-up: requests fail from then on
		// and the load is not valid, yet the verdict is the leak's.
		{"fd-leak", map[string]string{"FD_LIMIT": "300"}, gate.Fail, []string{gate.CritFDSettle}},
	} {
		t.Run(tc.name+fmtEnv(tc.env), func(t *testing.T) {
			cfg := fixtureConfig(t, tc.name)
			cfg.Run.Env = tc.env
			res, _ := gateRun(t, context.Background(), examples(tc.name), cfg)
			r := res.Report
			want(t, r, tc.verdict)
			defer logReport(t, r) // the margins, with -v
			if !strings.HasPrefix(r.Environment.FDs, "counted") {
				t.Errorf("descriptors: %s", r.Environment.FDs)
			}
			for _, c := range r.Criteria {
				failed := c.Status == gate.StatusFail
				if slices.Contains(tc.fails, c.Name) != failed && !strings.HasPrefix(c.Name, "load_") {
					logReport(t, r)
					t.Errorf("%s: %s", c.Name, c.Status)
				}
			}
			limited := tc.env["FD_LIMIT"] != ""
			if r.Settle.FDLimitReached() != limited || (limited && !strings.Contains(r.Reason, "RLIMIT_NOFILE of 300")) {
				t.Errorf("limit reached %v (settle %+v), reason %q", r.Settle.FDLimitReached(), r.Settle, r.Reason)
			}
			if g := criterion(t, r, gate.CritGoroutineGrowth); g.Status != gate.StatusPass {
				t.Errorf("goroutine_growth %s: the leak is in descriptors only", g.Status)
			}
			// No profile names the code holding a descriptor: the report
			// names what they are open on, as its CULPRIT says.
			if c := culprit(t, tc.name); c != "none" && (len(r.Attribution.OpenFiles) == 0 || !strings.Contains(r.Reason, c)) {
				t.Errorf("open files %+v; reason %q does not name %s", r.Attribution.OpenFiles, r.Reason, c)
			}
		})
	}
}

func fmtEnv(env map[string]string) string {
	var s string
	for k, v := range env {
		s += " " + k + "=" + v
	}
	return s
}
