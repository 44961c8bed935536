// Command profilecost measures what a gate's two profiling settings cost
// the service: a build with GOEXPERIMENT=goroutineleakprofile, and a heap
// profile sampling one allocation per 64 KiB instead of 512 KiB
// (GODEBUG=memprofilerate, as a gate runs the service). Each variant is a
// fresh process of the same fixture, loaded at each rate by package
// loadgen as a gate loads it, the variants' order rotating from round to
// round; the runs of each rate hold the machine-wide gate lock. It prints
// a Markdown table. See docs/benchmarks.md.
//
//	go run ./bench/profilecost > bench/out/profilecost.md
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/testlock"
	"github.com/memgate/memgate/loadgen"
)

type variant struct {
	name       string
	experiment bool
	godebug    string
}

var variants = []variant{
	{name: "default"},
	{name: "goroutineleak build", experiment: true},
	{name: "memprofilerate 64 KiB", godebug: "memprofilerate=65536"},
	{name: "both (a gate now)", experiment: true, godebug: "memprofilerate=65536"},
}

type result struct {
	ok, p50, p99 float64 // successful requests/s, latency ms
	success      float64
	heapInuse    float64 // MiB, after the load, no forced GC
	buckHash     float64 // KiB of profiling buckets (MemStats.BuckHashSys)
	rss          float64 // MiB, VmHWM
	leakRead     float64 // ms to write the goroutineleak profile (its GC), experiment only
}

func main() {
	rates := flag.String("rates", "200,2000", "requested rates, requests/s")
	seconds := flag.Int("seconds", 10, "seconds of measured load per run")
	rounds := flag.Int("rounds", 2, "runs per variant and rate")
	fixture := flag.String("fixture", "examples/healthy-json", "the target service (with net/http/pprof)")
	outDir := flag.String("out", "bench/out/profilecost", "scratch")
	flag.Parse()
	log.SetFlags(0)
	if err := os.MkdirAll(*outDir, 0o755); err != nil {
		log.Fatal(err)
	}
	bins := map[bool]string{}
	for _, exp := range []bool{false, true} {
		bin, err := build(*fixture, *outDir, exp)
		if err != nil {
			log.Fatal(err)
		}
		bins[exp] = bin
	}
	defaults := config.Default().Load
	host, _ := os.Hostname()
	fmt.Printf("Profiling cost, %s on %s (%s), %s: %s, a fresh process per run, %d s of load after 2 s of warm-up, %d rounds per variant and rate (median shown), variants in rotating order; loadgen with a gate's defaults (%d connections).\n\n",
		time.Now().UTC().Format("2006-01-02 15:04 MST"), host, strings.TrimSpace(goVersion()), fmtCPUs(), *fixture, *seconds, *rounds, defaults.Connections)
	fmt.Println("| requested/s | variant | ok/s | p50 | p99 | heap in use | profiling buckets | peak RSS | goroutineleak profile written in |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, s := range strings.Split(*rates, ",") {
		rate, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil {
			log.Fatalf("rate %q: %v", s, err)
		}
		all := make([][]result, len(variants))
		// One lock for the rate's runs, not one per run: its runs follow
		// each other without a gate of another test in between.
		release, err := testlock.Acquire()
		if err != nil {
			log.Fatal(err)
		}
		for round := 0; round < *rounds; round++ {
			for k := range variants {
				i := (k + round) % len(variants)
				r, err := once(bins[variants[i].experiment], variants[i], rate, time.Duration(*seconds)*time.Second, defaults)
				if err != nil {
					log.Fatal(err)
				}
				log.Printf("%g/s %s: %.0f ok/s, p99 %.2f ms", rate, variants[i].name, r.ok, r.p99)
				all[i] = append(all[i], r)
			}
		}
		release()
		for i, v := range variants {
			m := median(all[i])
			leak := "-"
			if v.experiment {
				leak = fmt.Sprintf("%.1f ms", m.leakRead)
			}
			fmt.Printf("| %g | %s | %.0f | %.2f ms | %.2f ms | %.1f MiB | %.0f KiB | %.1f MiB | %s |\n",
				rate, v.name, m.ok, m.p50, m.p99, m.heapInuse, m.buckHash, m.rss, leak)
		}
	}
}

func build(fixture, outDir string, experiment bool) (string, error) {
	name := "target"
	env := os.Environ()
	if experiment {
		name += "-goroutineleak"
		env = append(env, "GOEXPERIMENT="+service.LeakExperiment)
	}
	bin, err := filepath.Abs(filepath.Join(outDir, name))
	if err != nil {
		return "", err
	}
	cmd := exec.Command("go", "build", "-o", bin, ".")
	cmd.Dir, cmd.Env = fixture, env
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// once runs one fresh process of the variant under load.
func once(bin string, v variant, rate float64, d time.Duration, defaults config.Load) (result, error) {
	port, err := service.FreePort()
	if err != nil {
		return result{}, err
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PORT=" + strconv.Itoa(port), "PATH=" + os.Getenv("PATH")}
	if v.godebug != "" {
		cmd.Env = append(cmd.Env, "GODEBUG="+v.godebug)
	}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := waitReady(base); err != nil {
		return result{}, err
	}
	gen, err := loadgen.New(base, []loadgen.Target{{Method: http.MethodGet, URL: "/"}}, loadgen.Options{
		Rate: rate, Connections: defaults.Connections, Timeout: defaults.Timeout,
	})
	if err != nil {
		return result{}, err
	}
	defer gen.CloseIdleConnections()
	if _, err := gen.Attack(context.Background(), 2*time.Second, nil); err != nil {
		return result{}, err
	}
	start := time.Now()
	l, err := gen.Attack(context.Background(), d, nil)
	if err != nil {
		return result{}, err
	}
	wall := time.Since(start).Seconds()
	r := result{ok: float64(l.Requests) * l.SuccessRatio / wall, success: l.SuccessRatio,
		p50: ms(time.Duration(l.Latency.P50)), p99: ms(time.Duration(l.Latency.P99))}
	heap, err := fetch(base + "/debug/pprof/heap?debug=1")
	if err != nil {
		return r, err
	}
	r.heapInuse = memStat(heap, "HeapInuse") / (1 << 20)
	r.buckHash = memStat(heap, "BuckHashSys") / (1 << 10)
	r.rss = procStatus(cmd.Process.Pid, "VmHWM:") / (1 << 10)
	if v.experiment {
		t := time.Now()
		if _, err := fetch(base + "/debug/pprof/goroutineleak"); err != nil {
			return r, err
		}
		r.leakRead = ms(time.Since(t))
	}
	return r, nil
}

func waitReady(base string) error {
	for i := 0; i < 100; i++ {
		if resp, err := http.Get(base + "/"); err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the target never answered at %s", base)
}

func fetch(url string) ([]byte, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return b, err
}

// memStat reads "# Name = value" from a heap?debug=1 page.
func memStat(page []byte, name string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(page))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "# "+name+" = "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	return 0
}

// procStatus reads a kB field of /proc/PID/status.
func procStatus(pid int, field string) float64 {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			f, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return f
		}
	}
	return 0
}

// median takes each column's median on its own.
func median(rs []result) result {
	col := func(f func(result) float64) float64 {
		v := make([]float64, len(rs))
		for i, r := range rs {
			v[i] = f(r)
		}
		sort.Float64s(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return result{
		ok: col(func(r result) float64 { return r.ok }), p50: col(func(r result) float64 { return r.p50 }),
		p99: col(func(r result) float64 { return r.p99 }), success: col(func(r result) float64 { return r.success }),
		heapInuse: col(func(r result) float64 { return r.heapInuse }), buckHash: col(func(r result) float64 { return r.buckHash }),
		rss: col(func(r result) float64 { return r.rss }), leakRead: col(func(r result) float64 { return r.leakRead }),
	}
}

func goVersion() string {
	out, _ := exec.Command("go", "version").Output()
	return string(out)
}

func fmtCPUs() string {
	b, _ := os.ReadFile("/proc/cpuinfo")
	return fmt.Sprintf("%d CPUs", bytes.Count(b, []byte("\nprocessor"))+1)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
