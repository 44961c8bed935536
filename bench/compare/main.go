// Command compare is the A/A calibration of `memgate check --base`: each
// healthy fixture is committed to a git repository as the base, and a
// change that touches nothing the service runs (a new commit each pair,
// so the order of base and head alternates) is gated against it, pairs
// times. Every comparison should pass; the table gives the failures before
// and after confirmation and the noise of each comparison criterion (head
// minus base). It also times a head-only gate, a cold pair and a pair
// whose base report is reused, side by side. Each memgate run holds the
// machine-wide gate lock. See docs/benchmarks.md.
//
//	go run ./bench/compare -pairs 20 > bench/out/compare.md
package main

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
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

func main() {
	pairs := flag.Int("pairs", 20, "A/A pairs per fixture")
	fixtures := flag.String("fixtures", "healthy-json,healthy-garbage,healthy-cache,no-pprof", "example fixtures, comma-separated")
	warmup := flag.Duration("warmup", 0, "load warm-up (0: the config's)")
	duration := flag.Duration("duration", 0, "measured window (0: the config's)")
	timing := flag.Bool("timing", true, "time head-only, cold pair and reused-base pair gates")
	memgate := flag.String("memgate", "", "memgate binary (default: build ./cmd/memgate)")
	outDir := flag.String("out", "bench/out/compare", "where the JSON reports go")
	reuse := flag.Bool("reuse", false, "do not run: make the noise table from the pair JSON already in -out")
	resume := flag.Bool("resume", false, "count the pairs already in -out towards -pairs and run only the rest (pairs accumulate across sessions)")
	flag.Parse()
	log.SetFlags(0)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	out, err := filepath.Abs(*outDir)
	if err != nil {
		log.Fatal(err)
	}
	if *reuse {
		fmt.Println(noiseHeader)
		for _, fx := range strings.Split(*fixtures, ",") {
			fmt.Println(noiseRow(fx, readPairs(filepath.Join(out, fx))))
		}
		return
	}
	bin := *memgate
	if bin == "" {
		bin = filepath.Join(out, "memgate")
		if b, err := exec.Command("go", "build", "-o", bin, "./cmd/memgate").CombinedOutput(); err != nil {
			log.Fatalf("build memgate: %v\n%s", err, b)
		}
	}
	var load []string
	if *warmup > 0 {
		load = append(load, "--warmup", warmup.String())
	}
	if *duration > 0 {
		load = append(load, "--duration", duration.String())
	}
	fmt.Printf("A/A comparison run of %s: %d pairs per fixture, load flags %v.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), *pairs, load)
	var noise, times []string
	for _, fx := range strings.Split(*fixtures, ",") {
		b := bench{bin: bin, out: filepath.Join(out, fx), load: load}
		if err := b.init(fx); err != nil {
			log.Fatalf("%s: %v", fx, err)
		}
		if *timing {
			times = append(times, b.timing(fx))
		}
		var cs []gate.Comparison
		if *resume {
			cs = readPairs(b.out)
			log.Printf("%s: %d pairs already in %s", fx, len(cs), b.out)
		}
		for i := len(cs); i < *pairs; i++ {
			c, _, err := b.pair(fmt.Sprintf("pair-%s-%02d", time.Now().UTC().Format("20060102-150405"), i), nil)
			if err != nil {
				log.Fatalf("%s pair %d: %v", fx, i, err)
			}
			log.Printf("%s pair %d: %s (%s) %s", fx, i, c.Verdict, c.Outcome, c.Headline)
			cs = append(cs, c)
		}
		noise = append(noise, noiseRow(fx, cs))
	}
	fmt.Println(noiseHeader)
	for _, r := range noise {
		fmt.Println(r)
	}
	if len(times) > 0 {
		fmt.Println("\n| fixture | head only | base+head, cold | ratio | base+head, base reused | ratio |")
		fmt.Println("|---|---|---|---|---|---|")
		for _, r := range times {
			fmt.Println(r)
		}
	}
}

const noiseHeader = `| fixture | pairs | head first | failed (first run) | failed (after confirmation) | heap growth head-base, B/request: median abs, max (limit +32) | goroutines head-base /1k: max (limit +1) | p99 base / head, ms: medians | p99 head/base: max ratio (limit 1.5x), at +ms (limit +20) |
|---|---|---|---|---|---|---|---|---|`

func readPairs(dir string) []gate.Comparison {
	paths, _ := filepath.Glob(filepath.Join(dir, "pair-*.json"))
	gz, _ := filepath.Glob(filepath.Join(dir, "pair-*.json.gz"))
	var cs []gate.Comparison
	for _, p := range append(paths, gz...) {
		var c gate.Comparison
		data, err := readMaybeGzip(p)
		if err == nil {
			err = json.Unmarshal(data, &c)
		}
		if err != nil {
			log.Fatalf("%s: %v", p, err)
		}
		cs = append(cs, c)
	}
	return cs
}

func readMaybeGzip(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil || !strings.HasSuffix(path, ".gz") {
		return data, err
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return io.ReadAll(zr)
}

type bench struct {
	bin, out, repo string
	load           []string
	commits        int
}

// init commits the fixture as main and branches the change off it.
func (b *bench) init(fixture string) error {
	if err := os.MkdirAll(b.out, 0o755); err != nil {
		return err
	}
	repo, err := os.MkdirTemp("", "memgate-aa-")
	if err != nil {
		return err
	}
	b.repo = repo
	if err := os.CopyFS(repo, os.DirFS(filepath.Join("examples", fixture))); err != nil {
		return err
	}
	for _, args := range [][]string{{"init", "-q", "-b", "main"}, {"add", "-A"}, {"commit", "-q", "-m", "base"}, {"checkout", "-q", "-b", "change"}} {
		if err := b.git(args...); err != nil {
			return err
		}
	}
	return nil
}

func (b *bench) git(args ...string) error {
	cmd := exec.Command("git", args...)
	cmd.Dir = b.repo
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=aa", "GIT_AUTHOR_EMAIL=aa@example.com", "GIT_COMMITTER_NAME=aa", "GIT_COMMITTER_EMAIL=aa@example.com")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("git %v: %v\n%s", args, err, out)
	}
	return nil
}

// change commits a change that touches nothing the service runs.
func (b *bench) change() error {
	b.commits++
	if err := os.WriteFile(filepath.Join(b.repo, "CHANGES.md"), fmt.Appendf(nil, "change %d\n", b.commits), 0o644); err != nil {
		return err
	}
	if err := b.git("add", "-A"); err != nil {
		return err
	}
	return b.git("commit", "-q", "-m", fmt.Sprintf("change %d", b.commits))
}

// memgate runs memgate check under the gate lock and times it (the wait
// for the lock is not counted).
func (b *bench) memgate(args ...string) (time.Duration, error) {
	release, err := testlock.Acquire()
	if err != nil {
		return 0, err
	}
	defer release()
	cmd := exec.Command(b.bin, append(append([]string{"check", "--progress", "plain", "--ci", "none"}, args...), b.load...)...)
	start := time.Now()
	out, err := cmd.CombinedOutput()
	took := time.Since(start)
	// Exit 2 (a gate could not run) still writes the JSON: the pair is
	// counted as an error, not a verdict.
	if code := cmd.ProcessState.ExitCode(); code < 0 {
		return took, fmt.Errorf("memgate %v: %v\n%s", args, err, tail(out))
	}
	return took, nil
}

// pair gates a new change against main; baseReport reuses a stored base.
func (b *bench) pair(name string, baseReport *string) (gate.Comparison, time.Duration, error) {
	var c gate.Comparison
	if err := b.change(); err != nil {
		return c, 0, err
	}
	jsonPath := filepath.Join(b.out, name+".json")
	args := []string{"--base", "main", "--json", jsonPath}
	if baseReport != nil {
		args = append(args, "--base-report", *baseReport)
	}
	took, err := b.memgate(append(args, b.repo)...)
	if err != nil {
		return c, took, err
	}
	data, err := os.ReadFile(jsonPath)
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err == nil && strings.HasPrefix(name, "pair-") {
		err = compress(jsonPath, data)
	}
	return c, took, err
}

// compress keeps an A/A pair's JSON gzipped (PATH.json.gz): the pairs are
// kept in the repository so they accumulate across sessions (-resume).
func compress(jsonPath string, data []byte) error {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(data)
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath+".gz", buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Remove(jsonPath)
}

// timing: a head-only gate, a cold pair, and a pair reusing that pair's
// base report, one after the other on the same change.
func (b *bench) timing(fixture string) string {
	if err := b.change(); err != nil {
		log.Fatal(err)
	}
	head, err := b.memgate("--json", filepath.Join(b.out, "head-only.json"), b.repo)
	if err != nil {
		log.Fatal(err)
	}
	c, cold, err := b.pair("timing-cold", nil)
	if err != nil {
		log.Fatal(err)
	}
	basePath := filepath.Join(b.out, "timing-base.json")
	data, err := json.Marshal(c.Base.Report)
	if err == nil {
		err = os.WriteFile(basePath, data, 0o644)
	}
	if err != nil {
		log.Fatal(err)
	}
	_, reused, err := b.pair("timing-reused", &basePath)
	if err != nil {
		log.Fatal(err)
	}
	s := func(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
	log.Printf("%s: head only %s, cold pair %s, reused base %s", fixture, s(head), s(cold), s(reused))
	return fmt.Sprintf("| %s | %s | %s | %.2fx | %s | %.2fx |", fixture, s(head), s(cold), cold.Seconds()/head.Seconds(),
		s(reused), reused.Seconds()/head.Seconds())
}

// noiseRow summarises a fixture's A/A pairs: failures and each
// criterion's head-minus-base spread.
func noiseRow(fixture string, cs []gate.Comparison) string {
	var firstFail, fail, headFirst, errs int
	var heap, gor, pb, ph []float64
	worstRatio, worstAt := 0.0, 0.0
	for _, c := range cs {
		if c.Verdict == gate.Error || c.Verdict == gate.Inconclusive {
			errs++
			continue
		}
		if c.Verdict == gate.Fail {
			fail++
		}
		if c.Verdict == gate.Fail || c.Flake {
			firstFail++
		}
		if c.Base.Report != nil && c.Head.Report != nil && c.Head.Report.StartedAt.Before(c.Base.Report.StartedAt) {
			headFirst++
		}
		// The noise is the first run's: a flake's rows are its
		// confirmation's.
		first := c
		if c.Flake {
			first = gate.Compare(c.Base, c.Head, c.Limits)
		}
		for _, r := range first.Rows {
			switch r.Criterion {
			case gate.CmpHeapGrowth:
				heap = append(heap, r.Head-r.Base)
			case gate.CmpGoroutineGrowth:
				gor = append(gor, r.Head-r.Base)
			case gate.CmpLatencyP99:
				pb, ph = append(pb, r.Base), append(ph, r.Head)
				if r.Base > 0 && r.Head/r.Base > worstRatio {
					worstRatio, worstAt = r.Head/r.Base, r.Head-r.Base
				}
			}
		}
	}
	absHeap := make([]float64, len(heap))
	for i, v := range heap {
		absHeap[i] = math.Abs(v)
	}
	return fmt.Sprintf("| %s | %d (%d errors) | %d | %d | %d | %.1f, %+.1f | %+.2f | %.1f / %.1f | %.2fx at %+.1f ms |", fixture, len(cs)-errs, errs, headFirst, firstFail, fail,
		median(absHeap), maxAbs(heap), maxAbs(gor), median(pb), median(ph), worstRatio, worstAt)
}

func median(x []float64) float64 {
	if len(x) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), x...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// maxAbs is the value furthest from zero, with its sign.
func maxAbs(x []float64) float64 {
	m := 0.0
	for _, v := range x {
		if math.Abs(v) > math.Abs(m) {
			m = v
		}
	}
	return m
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}
