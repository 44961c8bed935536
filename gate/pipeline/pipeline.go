// Package pipeline runs one gate: build the service, start it, find where
// its numbers can be read, drive it with load while sampling, let it settle,
// take profiles, and evaluate. `memgate check` and the server's workers both
// run it.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
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
	reqs   []loadgen.Target // the load's targets; {{port}} not replaced yet
}

func (r *run) phase(name, detail string) {
	r.log.Info("phase", "phase", name, "detail", detail)
	if r.opts.Progress != nil {
		r.opts.Progress.Phase(name, detail)
	}
}

func (r *run) execute(ctx context.Context) (err error) {
	r.res.Report = r.report
	cfg := r.opts.Config
	dir, err := filepath.Abs(r.opts.Dir)
	if err != nil {
		return fmt.Errorf("%w: %v", service.ErrBuild, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: %s is not a directory", service.ErrBuild, r.opts.Dir)
	}
	work, err := os.MkdirTemp(r.scratchParent(), "memgate-run-")
	if err != nil {
		return fmt.Errorf("scratch directory: %w", err)
	}
	// After every sandbox of the gate has ended (deferred first, run last).
	defer service.RemoveScratch(work)
	g, err := r.prepare(dir, work)
	if err != nil {
		return err
	}
	dir = g.dir // a copy, where the sandboxes' users could not reach the original

	r.phase("build", dir)
	built, err := service.Build(ctx, g.buildSpec(cfg, r.opts.ToolEnv))
	r.report.Timings.Build = gate.Duration(built.Took)
	r.report.BuildOutput = service.LastLines(built.Output, 60)
	r.report.Environment.GoVersion = built.GoVersion
	if err != nil {
		return err
	}
	if built.Note != "" {
		r.log.Info("reader", "note", built.Note)
	}

	// Start.
	startAt := time.Now()
	port := cfg.Run.Port
	if port == 0 {
		if port, err = service.FreePort(); err != nil {
			return err
		}
	} else if err := service.CheckPortFree(port); err != nil {
		return err
	}
	readerAddr := ""
	if built.Injected {
		rp, err := service.FreePort()
		if err != nil {
			return err
		}
		readerAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(rp))
	}
	env := r.serviceEnv(port, readerAddr)
	r.phase("start", fmt.Sprintf("127.0.0.1:%d", port))
	limits, err := g.limits(cfg)
	if err != nil {
		return err
	}
	proc, err := service.Start(service.RunSpec{Binary: built.Binary, Dir: dir, Args: substitute(cfg.Run.Args, port), Env: env, Limits: limits})
	if err != nil {
		return err
	}
	r.report.Environment.Isolation = g.buildNote() + proc.Isolation()

	r.proc = proc
	defer func() {
		proc.Stop(cfg.Run.StopTimeout)
		r.report.ServiceOutput = proc.Output().LastLines(60)
	}()

	// A service that dies mid-run ends the run at once, saying so.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-proc.Done():
			cancel(proc.Exited("during the run"))
		case <-ctx.Done():
		}
	}()
	defer func() {
		// An error caused by the exit (a cancelled read or attack, a read
		// of a service that is gone) is reported as the exit itself.
		if err == nil || errors.Is(err, service.ErrService) {
			return
		}
		// A crashing service may still be writing its dump: give it a
		// moment to be reaped.
		select {
		case <-proc.Done():
			err = proc.Exited("during the run")
		case <-time.After(time.Second):
		}
	}()

	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := proc.WaitReady(ctx, base+cfg.Readiness.Path, cfg.Readiness.Timeout); err != nil {
		if errors.Is(err, service.ErrService) && strings.Contains(err.Error(), "not ready") {
			return fmt.Errorf("%w (does the service listen on $PORT? set run.args or run.env with {{port}} otherwise)", err)
		}
		return err
	}
	r.report.Timings.Start = gate.Duration(time.Since(startAt))

	src, err := r.chooseSource(ctx, port, readerAddr, built.Note, probe.DialFunc(proc.Dial()))
	if err != nil {
		return err
	}
	r.report.Environment.Source = src.Describe()
	r.phase("ready", src.Describe())

	return r.measure(ctx, src, base, port, proc.Dial())
}

// serviceEnv is the service's whole environment: the base the caller
// allows, PORT, the config's run.env and the reader's address.
func (r *run) serviceEnv(port int, readerAddr string) []string {
	env := append([]string(nil), r.opts.ServiceEnv...)
	if r.opts.Containment.Sandboxed {
		// Inside a sandbox, memgate's home and temp dir do not exist.
		env = append(keepVars(env, "PATH", "LANG", "TZ"), "HOME=/home/sandbox", "TMPDIR=/tmp", "USER=sandbox")
	}
	env = append(env, "PORT="+strconv.Itoa(port))
	keys := make([]string, 0, len(r.opts.Config.Run.Env))
	for k := range r.opts.Config.Run.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+strings.ReplaceAll(r.opts.Config.Run.Env[k], "{{port}}", strconv.Itoa(port)))
	}
	if readerAddr != "" {
		env = append(env, service.ReaderAddrEnv+"="+readerAddr)
	}
	return env
}

// chooseSource picks where numbers are read: the service's pprof when it is
// really there (auto, service), else the injected reader (auto, reader).
func (r *run) chooseSource(ctx context.Context, port int, readerAddr, note string, dial probe.DialFunc) (Source, error) {
	cfg := r.opts.Config.Pprof
	addr := strings.ReplaceAll(cfg.Address, "{{port}}", strconv.Itoa(port))
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	host, _, _ := net.SplitHostPort(addr)
	if !loadgen.IsLoopbackHost(host) {
		return nil, fmt.Errorf("%w: pprof.address %s is not a loopback address", service.ErrBuild, addr)
	}
	var pprofErr error
	if cfg.Mode != "reader" {
		p := probe.NewPprof("http://"+addr+cfg.Path, dial)
		if pprofErr = p.Detect(ctx); pprofErr == nil {
			return p, nil
		}
		if cfg.Mode == "service" {
			return nil, fmt.Errorf("%w: pprof.mode is service but %v", service.ErrService, pprofErr)
		}
	}
	if readerAddr == "" {
		if note == "" {
			note = "the reader was not added to the build"
		}
		return nil, fmt.Errorf("%w: no pprof (%v) and %s", service.ErrService, pprofErr, note)
	}
	rd := probe.NewReader(readerAddr, dial)
	// The reader starts in an init func: it is up by the time the service
	// answers, but give it a moment on a loaded machine.
	var err error
	for i := 0; i < 20; i++ {
		if err = rd.Detect(ctx); err == nil {
			return rd, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%w: the injected reader did not answer at %s: %v", service.ErrService, readerAddr, err)
}

func substitute(args []string, port int) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "{{port}}", strconv.Itoa(port))
	}
	return out
}

func settingsOf(cfg config.Config) gate.Settings {
	s := gate.Settings{
		Rate: cfg.Load.Rate, Warmup: gate.Duration(cfg.Load.Warmup), Duration: gate.Duration(cfg.Load.Duration),
		Cooldown: gate.Duration(cfg.Load.Cooldown), Connections: cfg.Load.Connections,
	}
	for _, t := range cfg.Load.Targets {
		s.Targets = append(s.Targets, t.Method+" "+t.Path)
	}
	if cfg.Load.TargetsFile != "" {
		s.Targets = append(s.Targets, "file "+cfg.Load.TargetsFile)
	}
	return s
}
