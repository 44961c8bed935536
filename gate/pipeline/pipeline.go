// Package pipeline runs one gate: build the service, start it, find where
// its numbers can be read, drive it with load while sampling, let it settle,
// take profiles, and evaluate. `memgate check` and the server's workers both
// run it.
package pipeline

import (
	"context"
	"log/slog"
	"runtime"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/loadgen"
)

// Progress hears what a run is doing, for a terminal or a check run.
type Progress interface {
	Phase(phase string, detail string)
	Sample(gate.Sample)
}

// Options are one run's inputs. Nothing here is read from the environment:
// the caller passes what the build and the service may see.
type Options struct {
	Dir         string // the service's module directory
	Config      config.Config
	WorkDir     string   // parent of the run's scratch directory; "" for the system default
	ToolEnv     []string // environment for builds; see service.ToolchainEnv
	ServiceEnv  []string // base environment for the service (PATH, HOME, TMPDIR)
	Version     string   // memgate's version, for the report
	Logger      *slog.Logger
	Progress    Progress
	AttributeTo int // entries per attribution table; 0 means 10
	// Containment says how the repository's code runs: sandboxed, or
	// (only where the caller knowingly chose it) uncontained.
	Containment service.Containment
	// RequireContainment refuses to run the repository's code without a
	// sandbox (memgate serve: strangers' code); memgate check runs a
	// developer's own code uncontained, saying so.
	RequireContainment bool
	// Tenant owns the repository (memgate serve: its owner); modules its
	// gates download are in reach of its gates only. "" for memgate check.
	Tenant string
	// OwnsDir says Dir is memgate's own checkout, whose permissions it may
	// open to the sandbox's users; a user's directory is never changed.
	OwnsDir bool
	// Files reads the repository files the config names (load.targets_file
	// and its bodies): the base commit's for the server, the checkout's for
	// `memgate check`. Nothing else reads them; nil reads none.
	Files RepoFiles
}

// Result is a finished run: its report and the raw profiles behind the
// attribution, named e.g. "heap-warmup.pb.gz".
type Result struct {
	Report   *gate.Report
	Profiles map[string][]byte
}

// Profile names, as written by --profiles and stored by the server.
const (
	HeapWarmup      = "heap-warmup.pb.gz"
	HeapEnd         = "heap-end.pb.gz"
	GoroutineWarmup = "goroutine-warmup.pb.gz"
	GoroutineEnd    = "goroutine-end.pb.gz"
)

// Run runs one gate. It always returns a report; when memgate could not run
// the gate the verdict is gate.Error and the reason says why. The service
// and everything it started are gone when Run returns.
func Run(ctx context.Context, opts Options) Result {
	r := &run{opts: opts, log: opts.Logger, res: Result{Profiles: map[string][]byte{}}}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if opts.AttributeTo == 0 {
		r.opts.AttributeTo = 10
	}
	r.report = &gate.Report{
		StartedAt:  time.Now().UTC(),
		Thresholds: opts.Config.Thresholds,
		Settings:   settingsOf(opts.Config),
		Environment: gate.Environment{
			MemgateVersion: opts.Version,
			CPUs:           runtime.NumCPU(),
			OS:             runtime.GOOS + "/" + runtime.GOARCH,
		},
	}
	r.res.Report = r.report
	err := r.readTargets(ctx)
	if err == nil {
		err = r.execute(ctx)
	}
	rep := r.report
	rep.FinishedAt = time.Now().UTC()
	rep.Timings.Total = gate.Duration(rep.FinishedAt.Sub(rep.StartedAt))
	if err != nil {
		rep.Verdict = gate.Error
		rep.Reason = err.Error()
		r.log.Info("gate could not run", "err", err)
	} else {
		rep.Reason = gate.Headline(rep)
	}
	return r.res
}

type run struct {
	opts   Options
	log    *slog.Logger
	report *gate.Report
	res    Result
	proc   *service.Process
	reqs   []loadgen.Target  // the load's targets; {{port}} not replaced yet
	owner  attribution.Owner // the repository's code, for attribution to name
	fdErr  error             // why descriptors are not counted from outside
	deps   *gateDependencies
}

func (r *run) phase(name, detail string) {
	r.log.Info("phase", "phase", name, "detail", detail)
	if r.opts.Progress != nil {
		r.opts.Progress.Phase(name, detail)
	}
}

// execute runs the gate's stages in order; each is in a file of its own.
func (r *run) execute(ctx context.Context) error {
	g, cleanup, err := r.prepare()
	if err != nil {
		return err
	}
	// After every sandbox of the gate has ended (deferred first, run last).
	defer cleanup()
	built, err := r.build(ctx, g)
	if err != nil {
		return err
	}
	if r.deps, err = r.dependencies(ctx, g); err != nil {
		return err
	}
	svc, err := r.start(ctx, g, built)
	if err != nil {
		return err
	}
	defer svc.stop()
	return svc.explainExit(r.serve(ctx, svc))
}

// serve measures the started service; a service that dies meanwhile ends
// it at once, saying so.
func (r *run) serve(ctx context.Context, svc *started) (err error) {
	ctx, cancel := svc.watch(ctx)
	defer cancel(nil)
	defer func() { err = dependencyCause(ctx, err) }()
	if err := r.startDependencies(ctx, cancel, svc.proc); err != nil {
		return err
	}
	if err := r.waitReady(ctx, svc); err != nil {
		return err
	}
	src, err := r.chooseSource(ctx, svc.port, svc.readerAddr, svc.built.Note, probe.DialFunc(svc.proc.Dial()))
	if err != nil {
		return err
	}
	r.report.Environment.Source = src.Describe()
	r.phase("ready", src.Describe())
	if err := r.measure(ctx, src, svc.base, svc.port, svc.proc.Dial()); err != nil {
		return err
	}
	return r.readProof(ctx, src, svc)
}

func settingsOf(cfg config.Config) gate.Settings {
	s := gate.Settings{
		Rate: cfg.Load.Rate, Warmup: gate.Duration(cfg.Load.Warmup), Duration: gate.Duration(cfg.Load.Duration),
		Cooldown: gate.Duration(cfg.Load.Cooldown), Connections: cfg.Load.Connections,
	}
	for _, t := range cfg.Load.Targets {
		s.Targets = append(s.Targets, targetLabel(t, cfg.Load.LeaveEarly))
	}
	if cfg.Load.TargetsFile != "" {
		s.Targets = append(s.Targets, "file "+cfg.Load.TargetsFile)
	}
	return s
}
