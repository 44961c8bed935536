package pipeline

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/loadgen"
)

// measure runs the load phases on a ready service: idle baseline, warm-up,
// the measured window, settle; then profiles and the verdict.
func (r *run) measure(ctx context.Context, source Source, base string, port int, dial service.DialFunc) error {
	cfg := r.opts.Config
	src := &serialSource{Source: source}
	gen, err := loadgen.New(base, loadgen.WithPort(r.reqs, port), loadgen.Options{
		Rate: cfg.Load.Rate, Connections: cfg.Load.Connections, Timeout: cfg.Load.Timeout, Dial: dial,
	})
	if err != nil {
		return err
	}
	defer gen.CloseIdleConnections()

	// The first profiles a service writes allocate the writer's tables
	// (gzip, crc32) for good; made during the window's first profile they
	// would show as the window's growth, and on a small leak be named as
	// its holder (seen: "held by hash/crc32.slicingMakeTable"). Write one
	// of each first and throw them away; a failure shows up later.
	_, _ = src.Profile(ctx, "heap", false)
	_, _ = src.Profile(ctx, "goroutine", false)
	idle, err := src.Read(ctx, true)
	if err != nil {
		return fmt.Errorf("read the idle service: %w", err)
	}
	r.fillEnvironment(idle)
	bl := &r.report.Baseline
	bl.IdleGoroutines, bl.IdleHeap = idle.Goroutines, idle.HeapInuse

	loadStart := time.Now()
	every := cfg.Effective()
	smp := &sampler{src: src, interval: every.Interval, checkpoint: every.CheckpointInterval,
		loadStart: loadStart, progress: r.opts.Progress}
	smp.add(gate.Sample{Time: loadStart, Offset: 0, Phase: gate.PhaseIdle, HeapInuse: idle.HeapInuse,
		PostGCHeap: idle.HeapInuse, HeapLive: idle.HeapLive, Goroutines: idle.Goroutines, GCCycles: idle.GCCycles})
	smp.setPhase(gate.PhaseWarmup)
	sampleCtx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() { defer sampling.Done(); smp.run(sampleCtx) }()
	defer func() { stopSampling(); sampling.Wait() }()

	// Requests count across the warm-up and the window.
	var sentBefore uint64
	tickWith := func(t loadgen.Tick) {
		smp.rate.Store(uint64(math.Round(t.Rate)))
		smp.requests.Store(sentBefore + t.Requests)
	}

	// Warm-up: load runs, nothing is judged.
	if cfg.Load.Warmup > 0 {
		r.phase("warmup", fmt.Sprintf("%s at %g requests/s", cfg.Load.Warmup, cfg.Load.Rate))
		r.report.WarmupLoad, err = gen.Attack(ctx, cfg.Load.Warmup, tickWith)
		if err != nil {
			return err
		}
		sentBefore = r.report.WarmupLoad.Requests
	}

	// The measured window starts now; the window-start reading and the
	// warm-up profiles are taken while its load already runs.
	smp.setPhase(gate.PhaseMeasure)
	bl.MeasureFrom = time.Since(loadStart).Seconds()
	r.phase("measure", fmt.Sprintf("%s at %g requests/s", cfg.Load.Duration, cfg.Load.Rate))
	var (
		measured   gate.Load
		measureErr error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		measured, measureErr = gen.Attack(ctx, cfg.Load.Duration, tickWith)
	}()
	start, err := src.Read(ctx, true)
	if err != nil {
		<-done
		return fmt.Errorf("read at the start of the window: %w", err)
	}
	bl.WindowStartGoroutines, bl.WindowStartHeap = start.Goroutines, start.HeapInuse
	heapWarm, heapErr := src.Profile(ctx, "heap", true)
	gorWarm, gorErr := src.Profile(ctx, "goroutine", false)
	<-done
	if measureErr != nil {
		return measureErr
	}
	if err := smp.tooLarge(); err != nil {
		return fmt.Errorf("a reading while sampling: %w", err)
	}
	bl.MeasureTo = time.Since(loadStart).Seconds()
	r.report.Load = measured

	// End of the window, still with the connections open.
	end, err := src.Read(ctx, true)
	if err != nil {
		return fmt.Errorf("read at the end of the window: %w", err)
	}
	bl.EndHeap = end.HeapInuse
	heapEnd, heapEndErr := src.Profile(ctx, "heap", true)

	// Settle: close the load's connections and wait for the goroutines
	// that came with the window to go.
	smp.setPhase(gate.PhaseSettle)
	r.phase("settle", fmt.Sprintf("up to %s for goroutines to return to %d (+%d)",
		cfg.Load.Cooldown, start.Goroutines, cfg.Thresholds.GoroutineSettleTolerance))
	gen.CloseIdleConnections()
	settle, err := r.settle(ctx, src, start.Goroutines)
	if err != nil {
		return err
	}
	gorEnd, gorEndErr := src.Profile(ctx, "goroutine", false)
	r.report.Timings.Load = gate.Duration(time.Since(loadStart))
	stopSampling()
	sampling.Wait()

	samples, readErrs, lastErr := smp.snapshot()
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].Time.Before(samples[j].Time) })
	for _, s := range samples {
		if (s.Phase == gate.PhaseWarmup || s.Phase == gate.PhaseMeasure) && s.Goroutines > settle.Peak {
			settle.Peak = s.Goroutines
		}
	}
	r.report.Samples = samples
	r.report.Settle = settle
	bl.SettledGoroutines = settle.Final
	if readErrs > 0 {
		r.log.Warn("some samples could not be read", "count", readErrs, "last", lastErr)
	}

	d := gate.Evaluate(gate.Observation{
		Samples: samples, MeasureFrom: bl.MeasureFrom, MeasureTo: bl.MeasureTo, Load: measured, Settle: settle,
	}, cfg.Thresholds)
	r.report.Verdict, r.report.Criteria, bl.SteadyFrom = d.Verdict, d.Criteria, d.SteadyFrom

	return r.attribute(heapWarm, heapEnd, gorWarm, gorEnd, firstErr(heapErr, heapEndErr), firstErr(gorErr, gorEndErr))
}

// settle polls the goroutine count until it is back within tolerance of
// the window's start or the cooldown passes.
func (r *run) settle(ctx context.Context, src Source, windowStart int) (gate.Settle, error) {
	cfg := r.opts.Config
	limit := windowStart + cfg.Thresholds.GoroutineSettleTolerance
	start := time.Now()
	deadline := start.Add(cfg.Load.Cooldown)
	s := gate.Settle{WindowStart: windowStart}
	for {
		rd, err := src.Read(ctx, false)
		if err != nil {
			return s, fmt.Errorf("read while settling: %w", err)
		}
		s.Final = rd.Goroutines
		s.Took = gate.Duration(time.Since(start))
		if rd.Goroutines <= limit {
			s.Settled = true
			return s, nil
		}
		if time.Now().After(deadline) {
			return s, nil
		}
		select {
		case <-ctx.Done():
			return s, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// attribute diffs the profiles into the report. A profile the service
// made too big to read or decompress ends the gate as an error saying
// which; any other problem is a note beside a verdict that stands.
func (r *run) attribute(heapWarm, heapEnd, gorWarm, gorEnd []byte, heapErr, gorErr error) error {
	att := &r.report.Attribution
	var notes []string
	if heapErr == nil {
		r.res.Profiles[HeapWarmup], r.res.Profiles[HeapEnd] = heapWarm, heapEnd
		sites, err := attribution.HeapGrowth(heapWarm, heapEnd, r.opts.AttributeTo)
		heapErr = err
		att.Heap = sites
		att.DiffCommand = "go tool pprof -sample_index=inuse_space -top -diff_base " + HeapWarmup + " " + HeapEnd
	}
	if heapErr != nil {
		notes = append(notes, "heap profiles: "+heapErr.Error())
	}
	if gorErr == nil {
		r.res.Profiles[GoroutineWarmup], r.res.Profiles[GoroutineEnd] = gorWarm, gorEnd
		stacks, err := attribution.GoroutineGrowth(gorWarm, gorEnd, r.opts.AttributeTo)
		gorErr = err
		att.Goroutines = stacks
	}
	if gorErr != nil {
		notes = append(notes, "goroutine profiles: "+gorErr.Error())
	}
	if len(notes) > 0 {
		att.Note = fmt.Sprint(notes)
	}
	switch {
	case errors.Is(heapErr, gate.ErrTooLarge):
		return fmt.Errorf("the heap profiles (%s, %s): %w", HeapWarmup, HeapEnd, heapErr)
	case errors.Is(gorErr, gate.ErrTooLarge):
		return fmt.Errorf("the goroutine profiles (%s, %s): %w", GoroutineWarmup, GoroutineEnd, gorErr)
	}
	return nil
}

// fillEnvironment records the service's runtime settings, from the source
// where it knows them and from the service's environment otherwise.
func (r *run) fillEnvironment(rd gate.Reading) {
	env := &r.report.Environment
	if rd.GoVersion != "" {
		env.GoVersion = rd.GoVersion
	}
	env.GOGC = rd.GOGC
	if env.GOGC == "" {
		env.GOGC = r.opts.Config.Run.Env["GOGC"]
		if env.GOGC == "" {
			env.GOGC = "100"
		}
	}
	env.GOMAXPROCS = rd.GOMAXPROCS
	if env.GOMAXPROCS == 0 {
		if n, err := strconv.Atoi(r.opts.Config.Run.Env["GOMAXPROCS"]); err == nil {
			env.GOMAXPROCS = n
		} else {
			env.GOMAXPROCS = runtime.NumCPU()
		}
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}
