package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestEmptyIsDefault(t *testing.T) {
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Load.Rate != 200 || cfg.Load.Warmup != 10*time.Second || cfg.Load.Duration != 40*time.Second {
		t.Fatalf("defaults changed: %+v", cfg.Load)
	}
	if len(cfg.Load.Targets) != 1 || cfg.Load.Targets[0].Path != "/" {
		t.Fatalf("default target: %+v", cfg.Load.Targets)
	}
}

func TestFullConfig(t *testing.T) {
	cfg, err := Parse([]byte(`
build:
  package: ./cmd/api
  env: {CGO_ENABLED: "0"}
run:
  args: ["-addr", "127.0.0.1:{{port}}"]
readiness: {path: /healthz, timeout: 20s}
pprof: {mode: service, address: "127.0.0.1:6060"}
load:
  rate: 350
  warmup: 15s
  duration: 1m
  targets:
    - {method: POST, path: /orders, headers: {Content-Type: application/json}, body: '{"id":1}'}
    - {method: GET, path: /orders/1}
thresholds:
  heap_fluctuation: 0.1
  goroutine_settle_tolerance: 2
compare:
  already_leaking: failure
  latency_p99_slower: 50ms
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Build.Package != "./cmd/api" || cfg.Run.Args[1] != "127.0.0.1:{{port}}" || cfg.Pprof.Mode != "service" {
		t.Fatalf("parsed: %+v", cfg)
	}
	if cfg.Load.Rate != 350 || cfg.Load.Duration != time.Minute || len(cfg.Load.Targets) != 2 {
		t.Fatalf("load: %+v", cfg.Load)
	}
	if cfg.Load.Targets[0].Headers["Content-Type"] != "application/json" {
		t.Fatalf("headers: %+v", cfg.Load.Targets[0])
	}
	// Keys not in the file keep their defaults.
	if cfg.Thresholds.HeapFluctuation != 0.1 || cfg.Thresholds.Alpha != 0.01 || cfg.Load.Cooldown != 10*time.Second {
		t.Fatalf("thresholds: %+v", cfg.Thresholds)
	}
	if cfg.Compare.AlreadyLeaking != "failure" || cfg.Compare.LatencyP99Slower != 50*time.Millisecond ||
		cfg.Compare.LatencyP99Ratio != 1.5 || cfg.Compare.Confirmations != 1 {
		t.Fatalf("compare: %+v", cfg.Compare)
	}
}

func TestBrokenConfigNamesKeyAndLine(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "load:\n  rat: 300\n", "line 2: field rat is not a known key in Load"},
		{"wrong type", "load:\n  warmup: 10s\n  rate: fast\n", "line 3: load.rate: cannot unmarshal"},
		{"bad duration", "load:\n  duration: soon\n", "line 2: load.duration"},
		{"invalid value", "build:\n  package: .\nload:\n  rate: -5\n", "line 4: load.rate: must be > 0"},
		{"bad mode", "pprof:\n  mode: magic\n", `line 2: pprof.mode: must be auto, service or reader, not "magic"`},
		{"bad target", "load:\n  targets:\n    - method: get\n      path: /\n", "line 3: load.targets.0.method"},
		{"threshold", "thresholds:\n  alpha: 0.9\n", "line 2: thresholds.alpha"},
		{"already leaking", "compare:\n  already_leaking: ignore\n", `line 2: compare.already_leaking: already_leaking must be neutral or failure, got "ignore"`},
		{"latency ratio", "compare:\n  latency_p99_ratio: 0.5\n", "line 2: compare.latency_p99_ratio"},
		{"syntax", "load: [\n", "line 1: did not find expected node content"},
		{"command without output", "build:\n  command: make\n", "line 2: build.command: the command must write the binary to {{output}}"},
		{"absolute targets file", "load:\n  targets_file: /etc/shadow\n", `line 2: load.targets_file: "/etc/shadow" must be a path inside the repository`},
		{"targets file outside", "load:\n  targets_file: load/../../x\n", `line 2: load.targets_file: "load/../../x" must be a path inside the repository`},
		{"import path escapes", "build:\n  import_path: github.com/../../etc\n", "line 2: build.import_path: must be an import path like github.com/you/service"},
		{"absolute import path", "build:\n  import_path: /srv/app\n", "line 2: build.import_path: must be an import path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestLoadFileLimits(t *testing.T) {
	dir := t.TempDir()
	big := filepath.Join(dir, "big.yml")
	if err := os.WriteFile(big, []byte("# "+strings.Repeat("x", MaxSize)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(big); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yml")); err == nil {
		t.Fatal("missing file gave no error")
	}
}

func TestAutoSampling(t *testing.T) {
	cfg := Default()
	if s := cfg.Effective(); s.Interval != time.Second || s.CheckpointInterval != time.Second {
		t.Fatalf("default window: %+v", s)
	}
	cfg.Load.Duration = 12 * time.Second
	if s := cfg.Effective(); s.Interval != 300*time.Millisecond || s.CheckpointInterval != 300*time.Millisecond {
		t.Fatalf("12s window: %+v", s)
	}
	cfg.Sampling.Interval = 3 * time.Second
	if s := cfg.Effective(); s.CheckpointInterval != 3*time.Second {
		t.Fatalf("checkpoints faster than readings: %+v", s)
	}
}

func TestImportPathIsAPlainPath(t *testing.T) {
	for p, ok := range map[string]bool{
		"github.com/acme/legacy": true, "gopkg.in/yaml.v2": true, "example.com/a_b/c-d~e": true,
		"": false, "/abs": false, "a/../b": false, "./a": false, "a//b": false, "a/": false, "a b": false, "a/.": false, "-x": false,
	} {
		if ValidImportPath(p) != ok {
			t.Errorf("ValidImportPath(%q) = %v", p, !ok)
		}
	}
}
