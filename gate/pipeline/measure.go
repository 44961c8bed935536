package pipeline

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/loadgen"
)

// measure runs the load phases on a ready service: idle baseline, warm-up,
// the measured window, settle, and a second burst where only a pool of
// client connections did not settle; then profiles and the verdict.
func (r *run) measure(ctx context.Context, source Source, base string, port int, dial service.DialFunc) error {
	cfg := r.opts.Config
	// {{port}} is the service's; {{dep.NAME.addr}} a dependency's (a
	// probe-style exporter is asked to scrape its upstream: /probe?target=).
	targets := loadgen.Expand(r.reqs, func(s string) string { return r.deps.expand(s, port) })
	gen, err := loadgen.New(base, targets, loadgen.Options{
		Rate: cfg.Load.Rate, Connections: cfg.Load.Connections, Timeout: cfg.Load.Timeout, Dial: dial,
	})
	if err != nil {
		return err
	}
	defer gen.CloseIdleConnections()
	m := &measurement{run: r, gen: gen, src: &serialSource{Source: r.countFDs(source)}}
	if err := m.idle(ctx); err != nil {
		return err
	}
	defer m.startSampling(ctx)()
	if err := m.warmup(ctx); err != nil {
		return err
	}
	if err := m.window(ctx); err != nil {
		return err
	}
	if err := m.settle(ctx); err != nil {
		return err
	}
	m.judge()
	if err := m.checkPool(ctx); err != nil {
		return err
	}
	return r.attribute(m.profiles)
}

// measurement is one gate's load phases and what they read.
type measurement struct {
	*run
	gen        *loadgen.Generator
	src        *serialSource
	smp        *sampler
	stop       func() // stops the sampler and waits for it
	sentBefore uint64 // requests of the phases before the current one
	idleRead   gate.Reading
	start      gate.Reading
	profiles   profiles
	fdsAtStart map[string]int // what the descriptors were open on at the window's start
	fdsAtIdle  map[string]int // and before any load
}

// profiles are the heap and goroutine profiles of the window's start and
// end, and why any could not be taken.
type profiles struct {
	heapWarm, heapEnd, gorWarm, gorEnd []byte
	heapErr, gorErr                    error
}

// idle reads the service before any load.
func (m *measurement) idle(ctx context.Context) error {
	// The first profiles a service writes allocate the writer's tables
	// (gzip, crc32) for good; made during the window's first profile they
	// would show as the window's growth, and on a small leak be named as
	// its holder (seen: "held by hash/crc32.slicingMakeTable"). Write one
	// of each first and throw them away; a failure shows up later.
	_, _ = m.src.Profile(ctx, "heap", false)
	_, _ = m.src.Profile(ctx, "goroutine", false)
	idle, err := m.src.Read(ctx, true)
	if err != nil {
		return fmt.Errorf("read the idle service: %w", err)
	}
	m.fillEnvironment(idle)
	m.report.Environment.FDs = m.fdsFrom(idle)
	m.idleRead = idle
	m.fdsAtIdle = m.fdTargets()
	bl := &m.report.Baseline
	bl.IdleGoroutines, bl.IdleHeap = idle.Goroutines, idle.HeapInuse
	loadStart := time.Now()
	every := m.opts.Config.Effective()
	m.smp = &sampler{src: m.src, interval: every.Interval, checkpoint: every.CheckpointInterval,
		loadStart: loadStart, progress: m.opts.Progress}
	m.smp.add(gate.Sample{Time: loadStart, Offset: 0, Phase: gate.PhaseIdle, HeapInuse: idle.HeapInuse,
		PostGCHeap: idle.HeapInuse, HeapLive: idle.HeapLive, Goroutines: idle.Goroutines, GCCycles: idle.GCCycles,
		FDs: idle.FDs, Sockets: idle.Sockets})
	return nil
}

// startSampling starts the sampler in the warm-up phase; the returned
// func stops it (it may be called more than once).
func (m *measurement) startSampling(ctx context.Context) func() {
	m.smp.setPhase(gate.PhaseWarmup)
	sampleCtx, cancel := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Add(1)
	go func() { defer sampling.Done(); m.smp.run(sampleCtx) }()
	m.stop = func() { cancel(); sampling.Wait() }
	return m.stop
}

// tick tells the sampler how far the load is; requests count across the
// warm-up and the window.
func (m *measurement) tick(t loadgen.Tick) {
	m.smp.rate.Store(uint64(math.Round(t.Rate)))
	m.smp.requests.Store(m.sentBefore + t.Requests)
}

// warmup runs the load without judging anything.
func (m *measurement) warmup(ctx context.Context) error {
	cfg := m.opts.Config
	if cfg.Load.Warmup <= 0 {
		return nil
	}
	m.phase("warmup", fmt.Sprintf("%s at %g requests/s", cfg.Load.Warmup, cfg.Load.Rate))
	load, err := m.gen.Attack(ctx, cfg.Load.Warmup, m.tick)
	if err != nil {
		return err
	}
	m.report.WarmupLoad = load
	m.sentBefore = load.Requests
	return nil
}

// window runs the measured window. Its start reading and profiles are
// taken while its load already runs; its end ones with the connections
// still open.
func (m *measurement) window(ctx context.Context) error {
	cfg := m.opts.Config
	bl := &m.report.Baseline
	m.smp.setPhase(gate.PhaseMeasure)
	bl.MeasureFrom = time.Since(m.smp.loadStart).Seconds()
	m.phase("measure", fmt.Sprintf("%s at %g requests/s", cfg.Load.Duration, cfg.Load.Rate))
	var (
		measured   gate.Load
		measureErr error
		done       = make(chan struct{})
	)
	go func() {
		defer close(done)
		measured, measureErr = m.gen.Attack(ctx, cfg.Load.Duration, m.tick)
	}()
	start, err := m.src.Read(ctx, true)
	if err != nil {
		<-done
		return fmt.Errorf("read at the start of the window: %w", err)
	}
	m.start = start
	m.fdsAtStart = m.fdTargets()
	bl.WindowStartGoroutines, bl.WindowStartHeap = start.Goroutines, start.HeapInuse
	p := &m.profiles
	var heapErr, gorErr error
	p.heapWarm, heapErr = m.src.Profile(ctx, "heap", true)
	p.gorWarm, gorErr = m.src.Profile(ctx, "goroutine", false)
	<-done
	if measureErr != nil {
		return measureErr
	}
	if err := m.smp.tooLarge(); err != nil {
		return fmt.Errorf("a reading while sampling: %w", err)
	}
	// The window judged ends where its schedule does: streams still held
	// after it wind down (their population falls for a hold), which is
	// the load leaving, not the service changing.
	bl.MeasureTo = min(time.Since(m.smp.loadStart).Seconds(), bl.MeasureFrom+cfg.Load.Duration.Seconds())
	m.report.Load = measured

	end, err := m.src.Read(ctx, true)
	if err != nil {
		return fmt.Errorf("read at the end of the window: %w", err)
	}
	bl.EndHeap = end.HeapInuse
	var heapEndErr error
	p.heapEnd, heapEndErr = m.src.Profile(ctx, "heap", true)
	p.heapErr, p.gorErr = firstErr(heapErr, heapEndErr), gorErr
	return nil
}

// settle closes the load's connections, waits for the goroutines that
// came with the window to go, and takes the last goroutine profile.
func (m *measurement) settle(ctx context.Context) error {
	cfg := m.opts.Config
	m.smp.setPhase(gate.PhaseSettle)
	m.phase("settle", fmt.Sprintf("up to %s for goroutines to return to %d (+%d)",
		cfg.Load.Cooldown, m.start.Goroutines, cfg.Thresholds.GoroutineSettleTolerance))
	m.gen.CloseIdleConnections()
	settle, err := m.waitSettled(ctx, m.start)
	if err != nil {
		return err
	}
	var gorEndErr error
	m.profiles.gorEnd, gorEndErr = m.src.Profile(ctx, "goroutine", false)
	m.profiles.gorErr = firstErr(m.profiles.gorErr, gorEndErr)
	m.report.Timings.Load = gate.Duration(time.Since(m.smp.loadStart))
	m.stop()
	m.report.Settle = settle
	since := m.fdsAtStart
	if (gate.Settle{PeakFDs: m.start.FDs, FDLimit: m.start.FDLimit}).FDLimitReached() {
		// Out of descriptors before the window: the leak is what the
		// warm-up left open, as fd_settle counts it from the idle service.
		since = m.fdsAtIdle
	}
	m.report.Attribution.OpenFiles = openFileGrowth(since, m.fdTargets(), m.opts.AttributeTo)
	m.report.Baseline.SettledGoroutines = settle.Final
	return nil
}

// judge puts the samples in the report and evaluates them.
func (m *measurement) judge() {
	samples, readErrs, lastErr := m.smp.snapshot()
	sort.SliceStable(samples, func(i, j int) bool { return samples[i].Time.Before(samples[j].Time) })
	settle := &m.report.Settle
	for _, s := range samples {
		if (s.Phase == gate.PhaseWarmup || s.Phase == gate.PhaseMeasure) && s.Goroutines > settle.Peak {
			settle.Peak = s.Goroutines
		}
	}
	settleFDs(settle, m.idleRead, m.start, samples)
	m.report.Samples = samples
	if readErrs > 0 {
		m.log.Warn("some samples could not be read", "count", readErrs, "last", lastErr)
	}
	m.evaluate()
}

// evaluate judges the report's samples and settle.
func (m *measurement) evaluate() {
	bl := &m.report.Baseline
	d := gate.Evaluate(gate.Observation{
		Samples: m.report.Samples, MeasureFrom: bl.MeasureFrom, MeasureTo: bl.MeasureTo, Load: m.report.Load, Settle: m.report.Settle,
	}, m.opts.Config.Thresholds)
	m.report.Verdict, m.report.Criteria, bl.SteadyFrom = d.Verdict, d.Criteria, d.SteadyFrom
}

// waitSettled polls the goroutine and descriptor counts until they are
// back within tolerance of the window's start or the cooldown passes.
func (m *measurement) waitSettled(ctx context.Context, window gate.Reading) (gate.Settle, error) {
	cfg := m.opts.Config
	limit := window.Goroutines + cfg.Thresholds.GoroutineSettleTolerance
	fdLimit := window.FDs + cfg.Thresholds.FDSettleTolerance
	if (gate.Settle{PeakFDs: window.FDs, FDLimit: window.FDLimit}).FDLimitReached() {
		// Out of descriptors already: fd_settle holds the count against
		// the idle service's, so wait for that.
		fdLimit = m.idleRead.FDs + cfg.Thresholds.FDSettleTolerance
	}
	start := time.Now()
	deadline := start.Add(cfg.Load.Cooldown)
	s := gate.Settle{WindowStart: window.Goroutines}
	for {
		rd, err := m.src.Read(ctx, false)
		if err != nil {
			return s, fmt.Errorf("read while settling: %w", err)
		}
		s.Final, s.FinalFDs = rd.Goroutines, rd.FDs
		s.Took = gate.Duration(time.Since(start))
		if rd.Goroutines <= limit && (window.FDs == 0 || rd.FDs <= fdLimit) {
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
