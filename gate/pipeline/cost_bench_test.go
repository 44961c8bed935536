package pipeline

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/gate/stats"
	"github.com/memgate/memgate/internal/testlock"
	"github.com/memgate/memgate/loadgen"
)

// BenchmarkSamplingCost measures what memgate's measuring costs the service
// it measures: the same service under the same fixed-rate load, phases
// with and without the gate's own sampler (a reading every interval, a
// forced GC at every checkpoint, a heap and a goroutine profile at the start
// of the phase, as at the start of a window), alternating which comes first.
// It reports the medians over the rounds: achieved rate and latency with
// sampling ("on") and without ("off"), and the ratios.
//
//	go test ./gate/pipeline -run '^$' -bench SamplingCost -benchtime 1x
func BenchmarkSamplingCost(b *testing.B) {
	for _, rate := range []float64{200, 2000} {
		b.Run(fmt.Sprintf("rate=%g", rate), func(b *testing.B) { samplingCost(b, rate) })
	}
}

func samplingCost(b *testing.B, rate float64) {
	testlock.Gate(b)
	const rounds, phase = 3, 20 * time.Second
	ctx := context.Background()
	cfg := config.Default()
	work := b.TempDir()
	dir, _ := filepath.Abs(examples("healthy-json"))
	built, err := service.Build(ctx, service.BuildSpec{Dir: dir, Package: ".", Timeout: 5 * time.Minute,
		Output: filepath.Join(work, "service"), WorkDir: work, ToolEnv: service.ToolchainEnv(os.Getenv)})
	if err != nil {
		b.Fatalf("build: %v\n%s", err, built.Output)
	}
	port, err := service.FreePort()
	if err != nil {
		b.Fatal(err)
	}
	proc, err := service.Start(service.RunSpec{Binary: built.Binary, Dir: dir,
		Env: []string{"PORT=" + strconv.Itoa(port), "PATH=" + os.Getenv("PATH")}})
	if err != nil {
		b.Fatal(err)
	}
	defer proc.Stop(5 * time.Second)
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := proc.WaitReady(ctx, base+"/", 30*time.Second); err != nil {
		b.Fatal(err)
	}
	src := probe.NewPprof(base+cfg.Pprof.Path, nil)
	if err := src.Detect(ctx); err != nil {
		b.Fatal(err)
	}
	gen, err := loadgen.New(base, []loadgen.Target{{Method: http.MethodGet, URL: "/"}},
		loadgen.Options{Rate: rate, Connections: cfg.Load.Connections, Timeout: cfg.Load.Timeout})
	if err != nil {
		b.Fatal(err)
	}
	defer gen.CloseIdleConnections()
	if _, err := gen.Attack(ctx, 5*time.Second, nil); err != nil { // warm-up
		b.Fatal(err)
	}

	type phaseStats struct{ rate, p50, p99, max []float64 }
	var on, off phaseStats
	every := cfg.Effective()
	b.ResetTimer()
	for round := 0; round < rounds; round++ {
		for _, sampled := range []bool{round%2 == 0, round%2 == 1} {
			sampleCtx, stop := context.WithCancel(ctx)
			done := make(chan struct{})
			if sampled {
				ser := &serialSource{Source: src}
				smp := &sampler{src: ser, interval: every.Interval, checkpoint: every.CheckpointInterval, loadStart: time.Now()}
				go func() {
					defer close(done)
					go smp.run(sampleCtx)
					ser.Read(sampleCtx, true)
					ser.Profile(sampleCtx, "heap", true)
					ser.Profile(sampleCtx, "goroutine", false)
					<-sampleCtx.Done()
				}()
			} else {
				close(done)
			}
			l, err := gen.Attack(ctx, phase, nil)
			stop()
			<-done
			if err != nil {
				b.Fatal(err)
			}
			s := &off
			if sampled {
				s = &on
			}
			s.rate = append(s.rate, l.AchievedRate*l.SuccessRatio)
			s.p50 = append(s.p50, ms(l.Latency.P50))
			s.p99 = append(s.p99, ms(l.Latency.P99))
			s.max = append(s.max, ms(l.Latency.Max))
			b.Logf("round %d, sampling %v: %.1f ok/s, p50 %.3f ms, p99 %.3f ms, max %.1f ms", round, sampled,
				l.AchievedRate*l.SuccessRatio, ms(l.Latency.P50), ms(l.Latency.P99), ms(l.Latency.Max))
		}
	}
	b.StopTimer()
	b.ReportMetric(stats.Median(on.rate), "ok/s-on")
	b.ReportMetric(stats.Median(off.rate), "ok/s-off")
	b.ReportMetric(stats.Median(on.p50), "p50-ms-on")
	b.ReportMetric(stats.Median(off.p50), "p50-ms-off")
	b.ReportMetric(stats.Median(on.p99), "p99-ms-on")
	b.ReportMetric(stats.Median(off.p99), "p99-ms-off")
	b.ReportMetric(stats.Median(on.p50)/stats.Median(off.p50), "p50-ratio")
	b.ReportMetric(stats.Median(on.p99)/stats.Median(off.p99), "p99-ratio")
	b.ReportMetric(stats.Median(on.max), "max-ms-on")
	b.ReportMetric(stats.Median(off.max), "max-ms-off")
}

func ms[D ~int64](d D) float64 { return float64(d) / float64(time.Millisecond) }
