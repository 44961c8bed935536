// Command accuracy runs every example fixture several times through
// `memgate check` at the default settings and prints a Markdown table of
// verdicts, false positives and negatives, and each criterion's values
// against its limit, with the margin each fixture kept. It is a benchmark,
// not a test: it takes about a minute a run. Each run holds the machine-wide
// gate lock, so a test suite running meanwhile never overlaps a gate. See
// docs/benchmarks.md.
//
//	go run ./bench/accuracy -runs 10 > bench/out/accuracy.md
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testlock"
)

type fixture struct {
	name   string
	dir    string
	env    map[string]string
	expect gate.Verdict
}

var fixtures = []fixture{
	{"healthy-json", "healthy-json", nil, gate.Pass},
	{"healthy-garbage", "healthy-garbage", nil, gate.Pass},
	{"healthy-cache (fills 25 s into the load)", "healthy-cache", nil, gate.Pass},
	{"no-pprof (injected reader)", "no-pprof", nil, gate.Pass},
	{"heap-leak 1 KiB/req", "heap-leak", nil, gate.Fail},
	{"slow-leak 256 B/req", "slow-leak", nil, gate.Fail},
	{"heap-leak 128 B/req (required)", "heap-leak", map[string]string{"LEAK_BYTES": "128"}, gate.Fail},
	{"goroutine-leak every request", "goroutine-leak", nil, gate.Fail},
	{"goroutine-leak 1 per 100 req (required)", "goroutine-leak", map[string]string{"LEAK_EVERY": "100"}, gate.Fail},
	{"big-heap 256 MiB, no leak", "big-heap", map[string]string{"LEAK_BYTES": "0"}, gate.Pass},
	{"big-heap 256 MiB, 128 B/req leak", "big-heap", nil, gate.Fail},
	{"request-leak (sessions registry keyed by *http.Request)", "request-leak", nil, gate.Fail},
	{"healthy-requests (the registry cleared)", "healthy-requests", nil, gate.Pass},
	{"sse-fixed (streams held 1 s)", "sse-fixed", nil, gate.Pass},
	{"sse-leak (ticker left blocked per stream)", "sse-leak", nil, gate.Fail},
	{"disconnect-fixed (half leave after 50 ms)", "disconnect-fixed", nil, gate.Pass},
	{"disconnect-leak (handler blocked once left)", "disconnect-leak", nil, gate.Fail},
	{"fd-fixed", "fd-fixed", nil, gate.Pass},
	{"fd-leak 1 fd/req", "fd-leak", nil, gate.Fail},
	{"fd-leak at RLIMIT_NOFILE 1024", "fd-leak", map[string]string{"FD_LIMIT": "1024"}, gate.Fail},
	// With dependencies, declared in their own .memgate.yml.
	{"upstream-client-healthy (stub dependency)", "upstream-client-healthy", nil, gate.Pass},
	{"upstream-client-leak (client per request; stub dependency)", "upstream-client-leak", nil, gate.Fail},
	{"redis-cache-healthy (Redis dependency)", "redis-cache-healthy", nil, gate.Pass},
	{"redis-cache-leak (key per request; Redis dependency)", "redis-cache-leak", nil, gate.Fail},
	{"postgres-cache-healthy (Postgres dependency)", "postgres-cache-healthy", nil, gate.Pass},
	{"postgres-cache-leak (key per request; Postgres dependency)", "postgres-cache-leak", nil, gate.Fail},
	{"old-go-healthy (go 1.16, reader)", "old-go-healthy", nil, gate.Pass},
	{"old-go-leak goroutine per request (go 1.16, reader)", "old-go-leak", nil, gate.Fail},
	{"vendored-healthy (vendor/)", "vendored-healthy", nil, gate.Pass},
	{"vendored-leak 1 KiB/req (vendor/)", "vendored-leak", nil, gate.Fail},
	{"gopath-healthy (no go.mod)", "_gopath-healthy", nil, gate.Pass},
	{"gopath-leak 1 KiB/req (no go.mod)", "_gopath-leak", nil, gate.Fail},
}

var sweep = []fixture{
	{"heap-leak 64 B/req", "heap-leak", map[string]string{"LEAK_BYTES": "64"}, gate.Fail},
	{"heap-leak 32 B/req", "heap-leak", map[string]string{"LEAK_BYTES": "32"}, gate.Fail},
	{"heap-leak 16 B/req", "heap-leak", map[string]string{"LEAK_BYTES": "16"}, gate.Fail},
	{"goroutine-leak 1 per 500 req", "goroutine-leak", map[string]string{"LEAK_EVERY": "500"}, gate.Fail},
	{"goroutine-leak 1 per 2000 req", "goroutine-leak", map[string]string{"LEAK_EVERY": "2000"}, gate.Fail},
}

func main() {
	runs := flag.Int("runs", 10, "runs per fixture")
	sweepRuns := flag.Int("sweep-runs", 2, "runs per fixture of the smallest-leak sweep (0 to skip)")
	memgate := flag.String("memgate", "", "memgate binary (default: build ./cmd/memgate)")
	outDir := flag.String("out", "bench/out/accuracy", "where the JSON reports go")
	only := flag.String("only", "", "run only fixtures whose name contains this (or one of these, comma-separated)")
	flag.BoolVar(&reuse, "reuse", false, "do not run: make the tables from the JSON reports already in -out")
	flag.BoolVar(&resume, "resume", false, "run only the runs whose report is not in -out yet, and reuse the others (reports accumulate across sessions)")
	flag.BoolVar(&rejudge, "rejudge", false, "judge every report again from its own samples with this build's rules (after a rule change; naming stays the run's)")
	flag.Parse()
	log.SetFlags(0)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	bin := *memgate
	if bin == "" && !reuse {
		bin = filepath.Join(*outDir, "memgate")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/memgate").CombinedOutput(); err != nil {
			log.Fatalf("build memgate: %v\n%s", err, out)
		}
	}
	host, _ := os.Hostname()
	fmt.Printf("Accuracy run of %s on %s (%s), %d runs per fixture at the default settings.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, cpuModel(), *runs)
	table(bin, *outDir, filter(fixtures, *only), *runs)
	if *sweepRuns > 0 {
		fmt.Printf("\nSmallest leak caught (%d runs each):\n\n", *sweepRuns)
		table(bin, *outDir, filter(sweep, *only), *sweepRuns)
	}
}

func filter(fs []fixture, only string) []fixture {
	var out []fixture
	for _, f := range fs {
		for _, o := range strings.Split(only, ",") {
			if strings.Contains(f.name, o) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

func table(bin, outDir string, fs []fixture, runs int) {
	names := []string{gate.CritHeapFluctuation, gate.CritHeapGrowth, gate.CritGoroutineGrowth, gate.CritGoroutineSettle,
		gate.CritFDGrowth, gate.CritFDSettle, gate.CritLoadRate}
	fmt.Printf("| fixture | expected | verdicts | wrong | culprit named | margin | %s | mean time |\n", strings.Join(names, " | "))
	fmt.Printf("|---|---|---|---|---|---|%s---|\n", strings.Repeat("---|", len(names)))
	for _, f := range fs {
		var reports []*gate.Report
		var took time.Duration
		for i := 0; i < runs; i++ {
			start := time.Now()
			r, err := runOnce(bin, outDir, f, i)
			if reuse && errors.Is(err, os.ErrNotExist) {
				continue // not run yet: the row shows the runs there are
			}
			if reuse && r != nil {
				took += time.Duration(r.Timings.Total)
			} else {
				took += time.Since(start)
			}
			if err != nil {
				log.Printf("%s run %d: %v", f.name, i, err)
				r = &gate.Report{Verdict: gate.Error, Reason: err.Error()}
			}
			log.Printf("%s run %d: %s: %s", f.name, i, r.Verdict, r.Reason)
			if c := culpritOf(f.dir); f.expect == gate.Fail && c != "" {
				log.Printf("%s run %d: culprit %s named: %v", f.name, i, c, namesCulprit(r, c))
			}
			reports = append(reports, r)
		}
		if len(reports) == 0 {
			continue
		}
		counts := map[gate.Verdict]int{}
		wrong := 0
		for _, r := range reports {
			counts[r.Verdict]++
			if r.Verdict != f.expect {
				wrong++
			}
		}
		var vs []string
		for _, v := range []gate.Verdict{gate.Pass, gate.Fail, gate.Inconclusive, gate.Error} {
			if counts[v] > 0 {
				vs = append(vs, fmt.Sprintf("%d %s", counts[v], v))
			}
		}
		kind := "FN"
		if f.expect == gate.Pass {
			kind = "FP"
		}
		cells := make([]string, len(names))
		for i, n := range names {
			cells[i] = criterionCell(reports, n)
		}
		named := "-"
		if f.expect == gate.Fail {
			named = namedCell(reports, culpritOf(f.dir))
		}
		fmt.Printf("| %s | %s | %s | %d %s | %s | %s | %s | %.0f s |\n", f.name, f.expect, strings.Join(vs, ", "), wrong, kind,
			named, margin(reports, f.expect), strings.Join(cells, " | "), took.Seconds()/float64(len(reports)))
	}
}

// margin says how far the worst run stayed from the wrong verdict, on the
// leak criteria. For a service that should pass: the criterion that came closest to its limit,
// as the share of the limit it reached (a point estimate; growth criteria
// also need their interval to clear the limit). For one that should fail:
// the weakest run's strongest failing criterion, as a multiple of its limit.
func margin(reports []*gate.Report, expect gate.Verdict) string {
	worstName, worst := "", -1.0
	if expect == gate.Fail {
		worst = math.Inf(1)
	}
	for _, r := range reports {
		runName, run := "", -1.0
		for _, c := range r.Criteria {
			x := ofLimit(c)
			// The load criteria say whether the run is valid, not whether
			// the service leaks: a perfect run sits at 90% of load_rate.
			if strings.HasPrefix(c.Name, "load_") || math.IsNaN(x) || (expect == gate.Fail && c.Status != gate.StatusFail) {
				continue
			}
			if x > run {
				runName, run = c.Name, x
			}
		}
		if runName == "" {
			continue
		}
		if (expect == gate.Pass && run > worst) || (expect == gate.Fail && run < worst) {
			worstName, worst = runName, run
		}
	}
	if worstName == "" {
		return "-"
	}
	if expect == gate.Pass {
		return fmt.Sprintf("%s at %.0f%% of its limit", worstName, 100*worst)
	}
	return fmt.Sprintf("%s %.1fx its limit", worstName, worst)
}

// ofLimit is how far a criterion's value went towards failing: value/limit
// for upper limits, limit/value for lower ones (load rate, success); for
// the settle count, which can be negative, the rise over its tolerance.
func ofLimit(c gate.Criterion) float64 {
	switch {
	case c.Limit == 0:
		return math.NaN()
	case c.Comparison == ">=":
		if c.Value <= 0 {
			return math.Inf(1)
		}
		return c.Limit / c.Value
	case c.Value < 0:
		return 0
	default:
		return c.Value / c.Limit
	}
}

// criterionCell shows the median value against the limit, the range over
// runs, and how many runs failed the criterion.
func criterionCell(reports []*gate.Report, name string) string {
	var vals []float64
	var limit float64
	var unit, cmp string
	fails := 0
	for _, r := range reports {
		c, ok := r.Criterion(name)
		if !ok {
			continue
		}
		vals = append(vals, c.Value)
		limit, unit, cmp = c.Limit, c.Unit, c.Comparison
		if c.Status == gate.StatusFail {
			fails++
		}
	}
	if len(vals) == 0 {
		return "-"
	}
	sort.Float64s(vals)
	f := func(v float64) string {
		if unit == "ratio" {
			return fmt.Sprintf("%.1f%%", 100*v)
		}
		return fmt.Sprintf("%.3g", v)
	}
	return fmt.Sprintf("%s (%s..%s) %s %s, %d fail", f(vals[len(vals)/2]), f(vals[0]), f(vals[len(vals)-1]), cmp, f(limit), fails)
}

// culpritOf is the function a fixture's CULPRIT file says a correct
// headline names ("" when it has none, or says none).
func culpritOf(dir string) string {
	b, err := os.ReadFile(filepath.Join("examples", dir, "CULPRIT"))
	if err != nil {
		log.Printf("%s: no CULPRIT file: %v", dir, err)
		return ""
	}
	c := strings.TrimSpace(string(b))
	if c == "none" {
		return ""
	}
	return c
}

// namesCulprit: the run failed and its headline names the culprit.
func namesCulprit(r *gate.Report, culprit string) bool {
	return culprit != "" && r.Verdict == gate.Fail && strings.Contains(r.Reason, culprit)
}

// namedCell says in how many runs the headline named the culprit, and
// which: "3/3 (YYY)", N for a run that did not.
func namedCell(reports []*gate.Report, culprit string) string {
	if culprit == "" {
		return "no CULPRIT"
	}
	n, marks := 0, ""
	for _, r := range reports {
		if namesCulprit(r, culprit) {
			n++
			marks += "Y"
		} else {
			marks += "N"
		}
	}
	return fmt.Sprintf("%d/%d (%s)", n, len(reports), marks)
}

// reuse makes the tables from earlier runs' reports instead of running;
// resume runs only what has no report yet; rejudge re-evaluates each
// report's own observation with the current rules.
var reuse, resume, rejudge bool

// configFor is the config a fixture runs with: its own .memgate.yml when
// the run adds nothing to it, else that (or the defaults) with the run's
// environment added.
func configFor(outDir, slug string, f fixture) (string, error) {
	ownPath := filepath.Join("examples", f.dir, ".memgate.yml")
	own, err := os.ReadFile(ownPath)
	switch {
	case err == nil && len(f.env) == 0:
		return ownPath, nil
	case err != nil && !os.IsNotExist(err):
		return "", err
	}
	var cfg strings.Builder
	if len(own) > 0 {
		if strings.Contains("\n"+string(own), "\nrun:") {
			return "", fmt.Errorf("%s: its .memgate.yml has a run section, which the run's environment would repeat", f.dir)
		}
		cfg.Write(own)
		cfg.WriteString("\n")
	}
	if len(f.env) > 0 {
		cfg.WriteString("run:\n  env:\n")
		for k, v := range f.env {
			fmt.Fprintf(&cfg, "    %s: %q\n", k, v)
		}
	}
	path := filepath.Join(outDir, slug+".yml")
	return path, os.WriteFile(path, []byte(cfg.String()), 0o644)
}

func runOnce(bin, outDir string, f fixture, i int) (*gate.Report, error) {
	slug := strings.NewReplacer(" ", "-", "/", "-", "(", "", ")", "").Replace(f.name)
	cfgPath, err := configFor(outDir, slug, f)
	if err != nil {
		return nil, err
	}
	jsonPath := filepath.Join(outDir, fmt.Sprintf("%s-%d.json", slug, i))
	if reuse {
		return readReport(jsonPath)
	}
	if resume {
		if r, err := readReport(jsonPath); err == nil {
			return r, nil
		}
	}
	release, err := testlock.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	os.Remove(jsonPath) // an earlier run's report must not stand in for this one
	cmd := exec.Command(bin, "check", "--config", cfgPath, "--json", jsonPath, filepath.Join("examples", f.dir))
	cmd.Stdout, cmd.Stderr = nil, nil
	_ = cmd.Run() // the exit status is the verdict; the JSON says more
	if err := compress(jsonPath); err != nil {
		return nil, err
	}
	return readReport(jsonPath)
}

// compress gzips a report in place (PATH.json becomes PATH.json.gz): the
// reports are kept in the repository so runs accumulate across sessions,
// and their samples compress about tenfold.
func compress(jsonPath string) error {
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(data); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath+".gz", buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Remove(jsonPath)
}

// readReport reads PATH.json, or PATH.json.gz where it was compressed,
// judging it again with this build's rules under -rejudge.
func readReport(jsonPath string) (*gate.Report, error) {
	data, err := os.ReadFile(jsonPath)
	if os.IsNotExist(err) {
		data, err = readGzip(jsonPath + ".gz")
	}
	if err != nil {
		return nil, err
	}
	var r gate.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	if rejudge {
		judgeAgain(&r)
	}
	return &r, nil
}

func readGzip(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return io.ReadAll(zr)
}

// judgeAgain replaces a measured report's verdict and criteria with what
// gate.Evaluate says of its own observation now. Reports that measured
// nothing (build errors, services that never started) keep theirs; the
// headline (and so the culprit named) stays the run's.
func judgeAgain(r *gate.Report) {
	if len(r.Samples) == 0 || r.Verdict == gate.Error {
		return
	}
	d := gate.Evaluate(gate.Observation{
		Samples: r.Samples, MeasureFrom: r.Baseline.MeasureFrom, MeasureTo: r.Baseline.MeasureTo,
		Load: r.Load, Settle: r.Settle,
	}, r.Thresholds)
	if d.Verdict != r.Verdict {
		log.Printf("rejudged: %s -> %s (%s)", r.Verdict, d.Verdict, r.Reason)
	}
	r.Verdict, r.Criteria = d.Verdict, d.Criteria
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "model name") {
			_, v, _ := strings.Cut(l, ":")
			return fmt.Sprintf("%s, %d cores", strings.TrimSpace(v), strings.Count(string(b), "processor\t:"))
		}
	}
	return "unknown CPU"
}
