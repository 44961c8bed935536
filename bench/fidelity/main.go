// Command fidelity measures load fidelity: the rate memgate's in-process
// attacker (package loadgen, as a gate uses it) achieves against the rate
// requested, from low rates to past what this machine sustains, beside the
// vegeta command line on the same target at the same rates, alternating
// which goes first. It prints a Markdown table. See docs/benchmarks.md.
//
//	go run ./bench/fidelity > bench/out/fidelity.md
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/testlock"
	"github.com/memgate/memgate/loadgen"
)

type result struct {
	sent, ok, p50, p99 float64 // requests/s sent, successful requests/s, latency ms
	success            float64
}

func main() {
	rates := flag.String("rates", "100,200,500,1000,2000,4000,8000,12000,16000", "requested rates, requests/s")
	seconds := flag.Int("seconds", 10, "seconds of load per rate and attacker")
	fixture := flag.String("fixture", "examples/healthy-json", "the target service")
	vegeta := flag.String("vegeta", "bench/out/bin/vegeta", "the vegeta command line")
	outDir := flag.String("out", "bench/out/fidelity", "scratch")
	cliFlags := flag.String("cli-flags", "", `extra flags for "vegeta attack", e.g. "-workers 10 -max-workers 10 -connections 10" to match memgate's fixed connections`)
	flag.Parse()
	log.SetFlags(0)

	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	veg, err := filepath.Abs(*vegeta)
	if err != nil {
		log.Fatal(err)
	}
	bin, err := filepath.Abs(filepath.Join(*outDir, "target"))
	if err != nil {
		log.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", bin, ".")
	build.Dir = *fixture
	if out, err := build.CombinedOutput(); err != nil {
		log.Fatalf("build the target: %v\n%s", err, out)
	}
	port, err := service.FreePort()
	if err != nil {
		log.Fatal(err)
	}
	target := exec.Command(bin)
	target.Env = []string{"PORT=" + strconv.Itoa(port), "PATH=" + os.Getenv("PATH")}
	if err := target.Start(); err != nil {
		log.Fatal(err)
	}
	defer target.Process.Kill()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	for i := 0; ; i++ {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			break
		}
		if i > 100 {
			log.Fatal("the target never answered")
		}
		time.Sleep(50 * time.Millisecond)
	}
	defaults := config.Default().Load
	d := time.Duration(*seconds) * time.Second

	host, _ := os.Hostname()
	fmt.Printf("Load fidelity, %s on %s: %s as the target, %d s per rate and attacker, alternating which goes first. memgate: package loadgen with a gate's defaults (%d connections, %s timeout). vegeta: the command line's defaults (10 workers growing as needed, keep-alive)%s.\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, *fixture, *seconds, defaults.Connections, defaults.Timeout, withFlags(*cliFlags))
	fmt.Println("| requested/s | memgate sent/s | memgate ok/s | memgate p50 | memgate p99 | vegeta CLI sent/s | vegeta CLI ok/s | vegeta CLI p50 | vegeta CLI p99 | memgate ok/s as share of requested | vegeta CLI ok/s as share |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|---|---|")
	for i, s := range strings.Split(*rates, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			log.Fatalf("rate %q: %v", s, err)
		}
		var mem, cli result
		steps := []func() error{
			func() (err error) { mem, err = inProcess(base, rate, d, defaults); return err },
			func() (err error) {
				cli, err = commandLine(veg, base, rate, *seconds, *outDir, strings.Fields(*cliFlags))
				return err
			},
		}
		if i%2 == 1 {
			steps[0], steps[1] = steps[1], steps[0]
		}
		for _, step := range steps {
			release, err := testlock.Acquire()
			if err != nil {
				log.Fatal(err)
			}
			err = step()
			release()
			if err != nil {
				log.Fatal(err)
			}
		}
		log.Printf("%g/s: memgate %.0f ok/s, vegeta CLI %.0f ok/s", rate, mem.ok, cli.ok)
		fmt.Printf("| %g | %.0f | %.0f | %.2f ms | %.2f ms | %.0f | %.0f | %.2f ms | %.2f ms | %.1f%% | %.1f%% |\n",
			rate, mem.sent, mem.ok, mem.p50, mem.p99, cli.sent, cli.ok, cli.p50, cli.p99, 100*mem.ok/rate, 100*cli.ok/rate)
	}
}

func inProcess(base string, rate float64, d time.Duration, defaults config.Load) (result, error) {
	gen, err := loadgen.New(base, []loadgen.Target{{Method: http.MethodGet, URL: "/"}}, loadgen.Options{
		Rate: rate, Connections: defaults.Connections, Timeout: defaults.Timeout,
	})
	if err != nil {
		return result{}, err
	}
	defer gen.CloseIdleConnections()
	start := time.Now()
	l, err := gen.Attack(context.Background(), d, nil)
	if err != nil {
		return result{}, err
	}
	wall := time.Since(start).Seconds()
	return result{
		sent:    l.AchievedRate,
		ok:      float64(l.Requests) * l.SuccessRatio / wall,
		p50:     ms(time.Duration(l.Latency.P50)),
		p99:     ms(time.Duration(l.Latency.P99)),
		success: l.SuccessRatio,
	}, nil
}

// vegetaReport is the part of `vegeta report -type json` read here.
type vegetaReport struct {
	Latencies struct {
		P50 int64 `json:"50th"`
		P99 int64 `json:"99th"`
	} `json:"latencies"`
	Requests uint64  `json:"requests"`
	Rate     float64 `json:"rate"`
	Success  float64 `json:"success"`
}

func withFlags(f string) string {
	if f == "" {
		return ""
	}
	return ", with " + f
}

func commandLine(vegeta, base string, rate float64, seconds int, outDir string, extra []string) (result, error) {
	results := filepath.Join(outDir, "results.bin")
	start := time.Now()
	args := append([]string{"attack", "-rate", fmt.Sprintf("%g/s", rate), "-duration", fmt.Sprintf("%ds", seconds), "-output", results}, extra...)
	attack := exec.Command(vegeta, args...)
	attack.Stdin = strings.NewReader("GET " + base + "/\n")
	if out, err := attack.CombinedOutput(); err != nil {
		return result{}, fmt.Errorf("vegeta attack: %v\n%s", err, out)
	}
	wall := time.Since(start).Seconds()
	out, err := exec.Command(vegeta, "report", "-type", "json", results).Output()
	if err != nil {
		return result{}, fmt.Errorf("vegeta report: %w", err)
	}
	var rep vegetaReport
	if err := json.Unmarshal(out, &rep); err != nil {
		return result{}, fmt.Errorf("vegeta report: %w", err)
	}
	return result{
		sent:    rep.Rate,
		ok:      float64(rep.Requests) * rep.Success / wall,
		p50:     ms(time.Duration(rep.Latencies.P50)),
		p99:     ms(time.Duration(rep.Latencies.P99)),
		success: rep.Success,
	}, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
