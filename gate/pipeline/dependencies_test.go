package pipeline

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
)

// needWorkerPrograms skips when this worker lacks the programs a kind
// runs (the CI image has them: see docs/deploy.md).
func needWorkerPrograms(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := resolveProgram("test", n, workerPath()); err != nil {
			t.Skipf("this worker lacks %s, which the test's dependency runs (install redis-server and postgresql: docs/deploy.md): %v", n, err)
		}
	}
}

// assertDependenciesGone: no process of the gate's dependencies (their
// ports are on their command lines) survives it.
func assertDependenciesGone(t *testing.T, r *gate.Report) {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, d := range r.Dependencies {
		port := strconv.Itoa(d.Port)
		for _, p := range procs {
			b, err := os.ReadFile(p)
			args := strings.Split(string(b), "\x00")
			if err == nil && len(args) > 2 && (slices.Contains(args, port) || slices.Contains(args, "127.0.0.1:"+port)) {
				t.Errorf("dependency %s left running: %q", d.Name, strings.Join(args, " "))
			}
		}
	}
}

// The leaking twins fail, naming their culprit where the heap holds it,
// and the healthy ones pass, each with its real dependency (a stub built
// from the repository, a Redis, a Postgres) started in its sandbox; the
// dependency's output is reported apart from the service's.
func TestDependencyFixtures(t *testing.T) {
	for _, tc := range []struct {
		fixture  string
		programs []string
		verdict  gate.Verdict
		banner   string // what the dependency writes, never in the service's output
	}{
		{"upstream-client-leak", nil, gate.Fail, "upstream stub on"},
		{"upstream-client-healthy", nil, gate.Pass, "upstream stub on"},
		{"redis-cache-leak", []string{"redis-server"}, gate.Fail, "Ready to accept connections"},
		{"redis-cache-healthy", []string{"redis-server"}, gate.Pass, "Ready to accept connections"},
		{"postgres-cache-leak", []string{"initdb", "postgres"}, gate.Fail, "database system is ready to accept connections"},
		{"postgres-cache-healthy", []string{"initdb", "postgres"}, gate.Pass, "database system is ready to accept connections"},
	} {
		t.Run(tc.fixture, func(t *testing.T) {
			needWorkerPrograms(t, tc.programs...)
			res, _ := gateRun(t, context.Background(), examples(tc.fixture), fixtureConfig(t, tc.fixture))
			r := res.Report
			want(t, r, tc.verdict)
			assertDependenciesGone(t, r)
			if len(r.Dependencies) != 1 {
				t.Fatalf("dependencies %+v", r.Dependencies)
			}
			d := r.Dependencies[0]
			if !strings.Contains(d.Output, tc.banner) || strings.Contains(r.ServiceOutput, tc.banner) {
				t.Errorf("dependency output %q, service output %q: want %q in the dependency's alone", d.Output, r.ServiceOutput, tc.banner)
			}
			if d.Port == 0 || d.ReadyAfter <= 0 || d.PeakMemoryBytes == 0 {
				t.Errorf("dependency %+v", d)
			}
			if !strings.Contains(r.Environment.Isolation, "dependencies in the same sandbox") {
				t.Errorf("isolation %q", r.Environment.Isolation)
			}
			if name := culprit(t, tc.fixture); tc.verdict == gate.Fail && name != "none" && !strings.Contains(r.Reason, name) {
				t.Errorf("reason %q does not name %s", r.Reason, name)
			}
		})
	}
}

// The dependency's memory is its own: a dependency holding 200 MiB does
// not pass the service's 100 MiB limit, and is held to its own.
func TestDependencyMemoryIsCountedApart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		depLimit config.Bytes
		verdict  gate.Verdict
	}{
		{"own limit", 400 << 20, gate.Pass},
		{"over its limit", 120 << 20, gate.Error},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quick()
			cfg.Load.Duration = 6 * time.Second
			cfg.Load.Warmup = time.Second
			cfg.Run.MemoryLimit = 100 << 20
			cfg.Dependencies = map[string]config.Dependency{"hog": {Package: "./hog", Env: map[string]string{"HOG_MIB": "200"},
				Timeout: 30 * time.Second, MemoryLimit: tc.depLimit}}
			res, _ := gateRun(t, context.Background(), filepath.Join("testdata", "hungry-dependency"), cfg)
			r := res.Report
			if r.Verdict != tc.verdict {
				logReport(t, r)
				t.Fatalf("verdict %s, want %s", r.Verdict, tc.verdict)
			}
			if tc.verdict == gate.Pass {
				if len(r.Dependencies) != 1 || r.Dependencies[0].PeakMemoryBytes < 200<<20 {
					t.Errorf("dependencies %+v: want its 200 MiB seen as its own", r.Dependencies)
				}
				return
			}
			if !strings.Contains(r.Reason, "the dependencies' memory") || !strings.Contains(r.Reason, "passed their 120 MiB limit") {
				t.Errorf("reason %q", r.Reason)
			}
		})
	}
}

// A dependency that cannot be had ends the gate as an error that says
// which, and why, with the tail of its output.
func TestDependencyErrors(t *testing.T) {
	sh := func(script string, ready config.DependencyReadiness) config.Dependency {
		return config.Dependency{Program: "sh", Args: []string{"-c", script}, Readiness: ready, Timeout: 3 * time.Second, MemoryLimit: 64 << 20}
	}
	for _, tc := range []struct {
		name string
		dep  config.Dependency
		want []string
	}{
		{"not installed", config.Dependency{Program: "no-such-program-memgate", Timeout: time.Second},
			[]string{"dependencies.x.program: no-such-program-memgate is not installed on this worker", "docs/deploy.md"}},
		// The last attempt's error: refused, or on a loaded machine the dial's own timeout.
		{"never ready", sh("echo warming up; exec sleep 60", config.DependencyReadiness{}),
			[]string{"dependency x (the worker's /usr/bin/sh) not ready after 3s", "tcp 127.0.0.1:", "warming up"}},
		{"exits first", sh("echo boom >&2; exit 3", config.DependencyReadiness{}),
			[]string{"dependency x (the worker's /usr/bin/sh) exited with status 3 before becoming ready", "boom"}},
		{"ends mid-run", sh("echo short-lived; exec sleep 4", config.DependencyReadiness{Command: []string{"true"}}),
			[]string{"x (the worker's /usr/bin/sh) exited with status 0 during the run", "short-lived"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := quick()
			cfg.Load.Duration = 8 * time.Second
			cfg.Load.Warmup = time.Second
			cfg.Dependencies = map[string]config.Dependency{"x": tc.dep}
			res, _ := gateRun(t, context.Background(), examples("healthy-json"), cfg)
			r := res.Report
			want(t, r, gate.Error)
			for _, w := range tc.want {
				if !strings.Contains(r.Reason, w) {
					t.Errorf("reason %q, want %q in it", r.Reason, w)
				}
			}
		})
	}
}

// A dependency that names another ({{dep.cache.port}}) starts after it and
// gets its port, though its name sorts first: here a program that checks,
// as it starts and as its readiness, that the Redis it names answers.
func TestDependencyStartsAfterTheOneItNames(t *testing.T) {
	needWorkerPrograms(t, "redis-server", "redis-cli")
	cfg := quick()
	cfg.Load.Duration = 6 * time.Second
	cfg.Load.Warmup = time.Second
	cfg.Dependencies = map[string]config.Dependency{
		"cache": {Kind: "redis", Timeout: 30 * time.Second, MemoryLimit: 128 << 20},
		"api": {Program: "sh", Args: []string{"-c",
			`redis-cli -p {{dep.cache.port}} ping | grep -q PONG || { echo "no Redis at {{dep.cache.addr}}" >&2; exit 7; }; echo "api saw Redis at $REDIS"; exec sleep 600`},
			Env:       map[string]string{"REDIS": "{{dep.cache.addr}}"},
			Readiness: config.DependencyReadiness{Command: []string{"redis-cli", "-p", "{{dep.cache.port}}", "ping"}},
			Timeout:   30 * time.Second, MemoryLimit: 64 << 20},
	}
	res, _ := gateRun(t, context.Background(), examples("healthy-json"), cfg)
	r := res.Report
	want(t, r, gate.Pass)
	if len(r.Dependencies) != 2 || r.Dependencies[0].Name != "cache" || r.Dependencies[1].Name != "api" {
		t.Fatalf("dependencies %+v: want cache started before api", r.Dependencies)
	}
	if want := fmt.Sprintf("api saw Redis at 127.0.0.1:%d", r.Dependencies[0].Port); !strings.Contains(r.Dependencies[1].Output, want) {
		t.Errorf("api's output %q, want %q", r.Dependencies[1].Output, want)
	}
}

// A service that hard-codes its database (localhost:5432, user readonly,
// database gis, as a real PostGIS API did) is gated with the config a
// user writes: the dependency on that port in the sandbox's own network,
// the user and database made as the official image makes them.
func TestPostgresWhereTheServiceHardCodesIt(t *testing.T) {
	needWorkerPrograms(t, "initdb", "postgres")
	cfg, err := config.Parse([]byte(`
load: {warmup: 2s, duration: 8s, cooldown: 3s, targets: [{method: GET, path: "/orders?customer=1"}]}
dependencies:
  db:
    kind: postgres
    port: 5432
    env: {POSTGRES_USER: readonly, POSTGRES_DB: gis}
run:
  env:
    DATABASE_URL: "postgres://readonly@localhost:5432/gis?sslmode=disable"
`))
	if err != nil {
		t.Fatal(err)
	}
	res, _ := gateRun(t, context.Background(), examples("postgres-cache-healthy"), cfg)
	r := res.Report
	want(t, r, gate.Pass)
	assertDependenciesGone(t, r)
	if len(r.Dependencies) != 1 || r.Dependencies[0].Port != 5432 {
		t.Fatalf("dependencies %+v: want the db on 5432", r.Dependencies)
	}
}
