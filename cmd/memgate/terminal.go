package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
)

// terminalProgress prints phases and a line a second on stderr.
type terminalProgress struct {
	mu         sync.Mutex
	w          io.Writer
	cfg        config.Config
	phase      string
	phaseStart time.Time
	lastPostGC uint64
}

func newTerminalProgress(w io.Writer, cfg config.Config) *terminalProgress {
	return &terminalProgress{w: w, cfg: cfg}
}

func (p *terminalProgress) Phase(phase, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.phase, p.phaseStart = phase, time.Now()
	fmt.Fprintf(p.w, "==> %-8s %s\n", phase, detail)
}

func (p *terminalProgress) Sample(s gate.Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.PostGCHeap > 0 {
		p.lastPostGC = s.PostGCHeap
	}
	total := ""
	switch s.Phase {
	case gate.PhaseWarmup:
		total = "/" + p.cfg.Load.Warmup.String()
	case gate.PhaseMeasure:
		total = "/" + p.cfg.Load.Duration.String()
	}
	elapsed := time.Since(p.phaseStart).Truncate(time.Second)
	files := ""
	if s.FDs > 0 {
		files = "  open files " + gate.FormatCount(int64(s.FDs))
	}
	fmt.Fprintf(p.w, "    %-8s %5s%-5s  %6.0f req/s  heap %9s  post-GC %9s  goroutines %s%s\n",
		s.Phase, elapsed, total, s.AchievedRPS, gate.FormatBytes(float64(s.HeapInuse)),
		gate.FormatBytes(float64(p.lastPostGC)), gate.FormatCount(int64(s.Goroutines)), files)
}

// printReport writes the human-readable result.
func printReport(w io.Writer, r *gate.Report, profilesDir string) {
	fmt.Fprintf(w, "\nmemgate: %s: %s\n", strings.ToUpper(string(r.Verdict)), r.Reason)
	if r.Verdict == gate.Error {
		if r.BuildOutput != "" && r.Timings.Start == 0 {
			fmt.Fprintf(w, "\nbuild output (tail):\n%s\n", indent(r.BuildOutput))
		}
		if r.ServiceOutput != "" {
			fmt.Fprintf(w, "\nservice output (tail):\n%s\n", indent(r.ServiceOutput))
		}
		return
	}
	if len(r.Criteria) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CRITERION\tSTATUS\tVALUE\tLIMIT\tDETAIL")
		for _, c := range r.Criteria {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s %s\t%s\n", c.Name, c.Status, gate.FormatValue(c.Value, c.Unit),
				c.Comparison, gate.FormatValue(c.Limit, c.Unit), c.Detail)
		}
		tw.Flush()
	}
	l := r.Load
	fmt.Fprintf(w, "\nload (measured window): %s requests at %.1f/s (requested %.0f/s), %.1f%% ok; latency p50 %s p95 %s p99 %s max %s\n",
		gate.FormatCount(int64(l.Requests)), l.AchievedRate, l.RequestedRate, 100*l.SuccessRatio,
		roundDur(l.Latency.P50), roundDur(l.Latency.P95), roundDur(l.Latency.P99), roundDur(l.Latency.Max))
	if p := l.ScheduledLatency.P99; p > 0 {
		fmt.Fprintf(w, "latency from the schedule (a stall counts for the requests it held back too): p50 %s p99 %s max %s\n",
			roundDur(l.ScheduledLatency.P50), roundDur(p), roundDur(l.ScheduledLatency.Max))
	}
	if len(l.Errors) > 0 {
		fmt.Fprintf(w, "load errors: %s\n", strings.Join(l.Errors, "; "))
	}
	fmt.Fprintf(w, "numbers read from: %s\n", r.Environment.Source)
	if l.Streams > 0 || l.LeftEarly > 0 {
		fmt.Fprintf(w, "streams held: %d (latency is their time to first byte); requests that left early: %d\n", l.Streams, l.LeftEarly)
	}
	for _, d := range r.Dependencies {
		// Never the service's numbers: said so, with their own memory.
		fmt.Fprintf(w, "dependency %s: %s on 127.0.0.1:%d, ready after %s, memory of the dependencies at most %s (not the service's)\n",
			d.Name, d.Program, d.Port, roundDur(d.ReadyAfter), gate.FormatBytes(float64(d.PeakMemoryBytes)))
	}
	fmt.Fprintf(w, "goroutines: %d idle, %d at window start, peak %d, %d after settle\n",
		r.Baseline.IdleGoroutines, r.Baseline.WindowStartGoroutines, r.Settle.Peak, r.Settle.Final)
	if st := r.Settle; st.WindowStartFDs > 0 {
		fmt.Fprintf(w, "open files: %d idle, %d at window start, peak %d, %d after settle (RLIMIT_NOFILE %d)\n",
			st.IdleFDs, st.WindowStartFDs, st.PeakFDs, st.FinalFDs, st.FDLimit)
	} else if r.Environment.FDs != "" {
		fmt.Fprintf(w, "open files: %s\n", r.Environment.FDs)
	}
	if line := r.Settle.FDLimitLine(); line != "" {
		fmt.Fprintf(w, "WARNING: %s\n", line)
	}

	if len(r.Attribution.Heap) > 0 {
		fmt.Fprintln(w, "\nheap growth by function (end of warm-up -> end of window, after GC):")
		for i, h := range r.Attribution.Heap {
			if i == 5 {
				break
			}
			where := h.Function
			if h.Origin != "" && h.Origin != h.Function {
				where += "  (from " + h.Origin + ")"
			}
			fmt.Fprintf(w, "  %10s  %s\n", "+"+gate.FormatBytes(float64(h.DeltaBytes)), where)
		}
	}
	if len(r.Attribution.Goroutines) > 0 {
		fmt.Fprintln(w, "\ngoroutine growth by stack (end of warm-up -> after settle):")
		for i, g := range r.Attribution.Goroutines {
			if i == 5 {
				break
			}
			fmt.Fprintf(w, "  %+8d  %s\n", g.Delta, g.Top)
			for j, f := range g.Stack {
				if j == 6 {
					fmt.Fprintf(w, "            ...\n")
					break
				}
				fmt.Fprintf(w, "            %s\n", f)
			}
		}
	}
	if p := r.Attribution.ProvenLeaks; p != nil && p.Total > 0 {
		fmt.Fprintf(w, "\nproven leaked by the runtime (goroutineleak profile, end of the gate): %d goroutines\n", p.Total)
		for i, g := range p.Stacks {
			if i == 5 {
				break
			}
			fmt.Fprintf(w, "  %8d  %s\n", g.Count, g.Top)
		}
	} else if p != nil && !p.Read {
		fmt.Fprintf(w, "\ngoroutine leak profile not read: %s\n", p.Note)
	}
	if r.Attribution.Note != "" {
		fmt.Fprintf(w, "\nattribution: %s\n", r.Attribution.Note)
	}
	if profilesDir != "" && len(r.Profiles) > 0 {
		fmt.Fprintf(w, "\nprofiles written to %s; compare them with:\n  cd %s && %s\n", profilesDir, profilesDir, r.Attribution.DiffCommand)
	}
	fmt.Fprintf(w, "\ntook %s (build %s, start %s, load %s)\n", roundDur(r.Timings.Total), roundDur(r.Timings.Build),
		roundDur(r.Timings.Start), roundDur(r.Timings.Load))
}

func roundDur(d gate.Duration) string {
	t := d.Std()
	switch {
	case t >= time.Second:
		return t.Round(100 * time.Millisecond).String()
	case t >= time.Millisecond:
		return t.Round(10 * time.Microsecond).String()
	}
	return t.Round(time.Microsecond).String()
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(s, "\n", "\n    ")
}
