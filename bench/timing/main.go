// Command timing measures time to verdict: `memgate check` against the
// same work done by hand (bench/byhand.sh: go build, start the service, the
// vegeta command line at the same rate for the warm-up plus the window, curl
// sampling pprof once a second), side by side, alternating, with a first
// untimed round of each so that both find their build caches warm. It prints
// a Markdown table of every round and the medians. See docs/benchmarks.md.
//
//	go run ./bench/timing -rounds 5 > bench/out/timing.md
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/gate/stats"
	"github.com/memgate/memgate/internal/testlock"
)

type round struct {
	memgate, memBuild, memStart, memLoad time.Duration
	hand, handBuild, handStart, handLoad time.Duration
	verdict                              gate.Verdict
}

func main() {
	rounds := flag.Int("rounds", 5, "timed rounds of each")
	fixture := flag.String("fixture", "examples/healthy-json", "the service to gate")
	memgate := flag.String("memgate", "", "memgate binary (default: build ./cmd/memgate)")
	vegeta := flag.String("vegeta", "bench/out/bin/vegeta", "the vegeta command line (go install github.com/tsenart/vegeta/v12@v12.13.0)")
	outDir := flag.String("out", "bench/out/timing", "where reports and samples go")
	flag.Parse()
	log.SetFlags(0)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	bin := *memgate
	if bin == "" {
		bin = filepath.Join(*outDir, "memgate")
		if out, err := exec.Command("go", "build", "-o", bin, "./cmd/memgate").CombinedOutput(); err != nil {
			log.Fatalf("build memgate: %v\n%s", err, out)
		}
	}
	veg, err := filepath.Abs(*vegeta)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat(veg); err != nil {
		log.Fatalf("vegeta command line: %v (install it: GOBIN=$PWD/bench/out/bin go install github.com/tsenart/vegeta/v12@v12.13.0)", err)
	}
	cfg := config.Default()
	loadSeconds := int((cfg.Load.Warmup + cfg.Load.Duration).Seconds())

	var timed []round
	for i := 0; i <= *rounds; i++ {
		var r round
		// Alternate which goes first, so neither always follows the other.
		steps := []func() error{
			func() error { return runMemgate(bin, *fixture, *outDir, i, &r) },
			func() error { return runByHand(*fixture, cfg.Load.Rate, loadSeconds, veg, *outDir, i, &r) },
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			if err := step(); err != nil {
				log.Fatal(err)
			}
		}
		log.Printf("round %d: memgate %s (build %s, load %s), by hand %s (build %s, load %s)", i,
			r.memgate.Round(time.Millisecond), r.memBuild.Round(time.Millisecond), r.memLoad.Round(time.Millisecond),
			r.hand.Round(time.Millisecond), r.handBuild.Round(time.Millisecond), r.handLoad.Round(time.Millisecond))
		if i > 0 { // round 0 warms the build caches
			timed = append(timed, r)
		}
	}

	host, _ := os.Hostname()
	fmt.Printf("Time to verdict, %s on %s, %s at the default settings (%g requests/s, %s warm-up + %s window; by hand: %d s of vegeta at the same rate), %d rounds after one untimed round of each.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, *fixture, cfg.Load.Rate, cfg.Load.Warmup, cfg.Load.Duration, loadSeconds, len(timed))
	fmt.Println("| round | memgate | its build | its start | its load (incl. settle) | rest (memgate's own work) | by hand | its build | its start | its load | ratio memgate / by hand | verdict |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|---|")
	var ratios, mem, hand, rest, memBuild, handBuild []float64
	for i, r := range timed {
		other := r.memgate - r.memBuild - r.memStart - r.memLoad
		ratio := r.memgate.Seconds() / r.hand.Seconds()
		fmt.Printf("| %d | %.1f s | %.1f s | %.2f s | %.1f s | %.2f s | %.1f s | %.1f s | %.2f s | %.1f s | %.2f | %s |\n", i+1,
			r.memgate.Seconds(), r.memBuild.Seconds(), r.memStart.Seconds(), r.memLoad.Seconds(), other.Seconds(),
			r.hand.Seconds(), r.handBuild.Seconds(), r.handStart.Seconds(), r.handLoad.Seconds(), ratio, r.verdict)
		ratios = append(ratios, ratio)
		mem = append(mem, r.memgate.Seconds())
		hand = append(hand, r.hand.Seconds())
		rest = append(rest, other.Seconds())
		memBuild = append(memBuild, r.memBuild.Seconds())
		handBuild = append(handBuild, r.handBuild.Seconds())
	}
	fmt.Printf("\nMedians: memgate %.1f s, by hand %.1f s, **ratio %.2f**; memgate's build %.1f s against %.1f s by hand; memgate's own work beyond build, start and load: %.1f s.\n",
		stats.Median(mem), stats.Median(hand), stats.Median(ratios), stats.Median(memBuild), stats.Median(handBuild), stats.Median(rest))
}

func runMemgate(bin, fixture, outDir string, i int, r *round) error {
	release, err := testlock.Acquire()
	if err != nil {
		return err
	}
	defer release()
	jsonPath := filepath.Join(outDir, fmt.Sprintf("memgate-%d.json", i))
	start := time.Now()
	cmd := exec.Command(bin, "check", "--json", jsonPath, fixture)
	_ = cmd.Run() // the exit status is the verdict
	r.memgate = time.Since(start)
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return fmt.Errorf("memgate report: %w", err)
	}
	var rep gate.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return err
	}
	r.verdict = rep.Verdict
	r.memBuild, r.memStart, r.memLoad = time.Duration(rep.Timings.Build), time.Duration(rep.Timings.Start), time.Duration(rep.Timings.Load)
	return nil
}

func runByHand(fixture string, rate float64, seconds int, vegeta, outDir string, i int, r *round) error {
	release, err := testlock.Acquire()
	if err != nil {
		return err
	}
	defer release()
	port, err := service.FreePort()
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(fixture)
	if err != nil {
		return err
	}
	work, err := filepath.Abs(filepath.Join(outDir, fmt.Sprintf("byhand-%d", i)))
	if err != nil {
		return err
	}
	start := time.Now()
	out, err := exec.Command("bash", "bench/byhand.sh", dir, strconv.FormatFloat(rate, 'f', -1, 64),
		strconv.Itoa(seconds), strconv.Itoa(port), vegeta, work).CombinedOutput()
	r.hand = time.Since(start)
	if err != nil {
		return fmt.Errorf("by hand: %v\n%s", err, out)
	}
	phases := map[string]time.Duration{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 {
			if s, err := strconv.ParseFloat(f[1], 64); err == nil {
				phases[f[0]] = time.Duration(s * float64(time.Second))
			}
		}
	}
	r.handBuild, r.handStart, r.handLoad = phases["build"], phases["start"], phases["load"]
	return nil
}
