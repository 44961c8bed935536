// Package runner executes a stored gate run for the server: it checks the
// head commit out, reads the gate config from the base commit, runs the same
// pipeline as `memgate check`, stores the result and reports it to GitHub.
package runner

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/server/workspace"
)

// Store is what the runner needs of storage.
type Store interface {
	Run(ctx context.Context, id int64) (gate.Run, error)
	MarkRunning(ctx context.Context, id int64, at time.Time) (bool, error)
	ClaimCheckRun(ctx context.Context, id int64) (claim int64, ok bool, err error)
	SetCheckRun(ctx context.Context, id, claim, checkRunID int64) (bool, error)
	ReleaseCheckRun(ctx context.Context, id, claim int64) error
	ClaimReport(ctx context.Context, id int64) (checkRunID int64, ok bool, err error)
	Complete(ctx context.Context, id, jobID int64, rep *gate.Report, profiles map[string][]byte) (bool, error)
	SetProgress(ctx context.Context, id int64, text string) error
	Heartbeat(ctx context.Context, runID, jobID int64) (bool, error)
	MarkReported(ctx context.Context, id int64) error
	CompletePair(ctx context.Context, id, jobID int64, cmp *gate.Comparison, baseResultID int64, profiles map[string][]byte) (bool, error)
	BaseStore
	checks.Finals
}

// Reporter shows a run on GitHub.
type Reporter interface {
	Started(ctx context.Context, run gate.Run) (int64, error)
	Progress(ctx context.Context, run gate.Run, text string) error
	Completed(ctx context.Context, run gate.Run, rep *gate.Report) error
	Compared(ctx context.Context, run gate.Run, c *gate.Comparison, acceptedBy string) error
	Token(ctx context.Context, installationID int64) (string, error)
}

// Options configure the runner.
type Options struct {
	WorkDir         string   // parent of workspaces; "" for the system default
	AllowLocalRepos bool     // accept local paths and file:// clone URLs
	GitEnv          []string // git's environment (PATH)
	ToolEnv         []string // builds' environment; see service.ToolchainEnv
	ServiceEnv      []string // services' base environment
	Version         string
	Logger          *slog.Logger
	// ProgressEvery throttles progress updates to GitHub.
	ProgressEvery time.Duration
	// Defaults is the config used when the base commit has none.
	Defaults config.Config
	// OnFinish, when set, hears every stored report (metrics).
	OnFinish func(*gate.Report)
	// HeartbeatEvery is how often a running gate says its worker is alive;
	// see Reaper.
	HeartbeatEvery time.Duration
	// Containment is how gates contain the pull requests' code. Without a
	// sandbox no gate runs (each completes as an error saying why) unless
	// AllowUncontained: the operator's explicit acceptance of the risk.
	Containment      service.Containment
	AllowUncontained bool
	// AllowHostNetwork lets a repository's run.network: host give its
	// service and dependencies this worker's network (its database, its
	// metadata endpoint, other gates' ports). Off: such a config is an
	// error. memgate check, on the user's own machine, always allows it.
	AllowHostNetwork bool
	// Ceilings bound what a repository's config may ask of this worker
	// (memory, processes, file size); zero fields are no ceiling.
	Ceilings config.Ceilings
	// JobTimeout is the time the queue gives a gate; a config whose gate
	// cannot end within it is refused (config.FitIn). 0 checks nothing.
	JobTimeout time.Duration
	// Gate runs a gate; nil runs the real pipeline. Tests whose behaviour
	// does not depend on a gate's numbers give a fake.
	Gate func(ctx context.Context, opts pipeline.Options) pipeline.Result
	// Pair gates a pull request's head with its base beside it (see
	// pair.go); nil gates every head alone.
	Pair PairGate
	// BaseLease is how long a claim to measure a base lasts unrenewed (its
	// measurer renews it every third of it); BaseWait how often a run
	// waiting for another's base result looks; BaseMaxAge how old a kept
	// base result may be to be reused.
	BaseLease, BaseWait, BaseMaxAge time.Duration
}

// Runner executes runs.
type Runner struct {
	store    Store
	reporter Reporter
	opts     Options
	log      *slog.Logger
}

// New creates a runner.
func New(store Store, reporter Reporter, opts Options) *Runner {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ProgressEvery == 0 {
		opts.ProgressEvery = 10 * time.Second
	}
	if opts.HeartbeatEvery == 0 {
		opts.HeartbeatEvery = 10 * time.Second
	}
	if opts.Gate == nil {
		opts.Gate = pipeline.Run
	}
	if opts.BaseLease == 0 {
		opts.BaseLease = 3 * opts.HeartbeatEvery
	}
	if opts.BaseWait == 0 {
		opts.BaseWait = 2 * time.Second
	}
	if opts.BaseMaxAge == 0 {
		opts.BaseMaxAge = 7 * 24 * time.Hour
	}
	return &Runner{store: store, reporter: reporter, opts: opts, log: opts.Logger}
}

// Execute runs one stored run as job jobID. It returns an error only when
// the queue should try again (final false) or record a failure; every other
// outcome is stored and reported, so no check is left in progress.
func (r *Runner) Execute(ctx context.Context, runID, jobID int64, final bool) error {
	log := r.log.With("run", runID, "job", jobID)
	run, err := r.store.Run(ctx, runID)
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	log = log.With("repository", run.Repository, "pr", run.PR, "head", gate.ShortSHA(run.HeadSHA))
	if run.JobID != 0 && run.JobID != jobID {
		log.Info("run was handed to another job; skipping", "current_job", run.JobID)
		return nil
	}
	started, err := r.store.MarkRunning(ctx, runID, time.Now())
	if err != nil {
		return fmt.Errorf("runner: %w", err)
	}
	if !started {
		log.Info("run no longer active; skipping", "status", run.Status)
		return nil
	}
	ctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go r.heartbeat(ctx, stop, runID, jobID, log)

	run.CheckRunID = r.started(ctx, run, log)
	log.Info("gate started")

	res, err := r.gate(ctx, run, log)
	if err == nil && res.Report == nil {
		err = errors.New("the gate returned no report")
	}
	if (err != nil || res.Report.Verdict == gate.Error) && ctx.Err() != nil {
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) {
			return r.timedOut(ctx, run, jobID, res, log)
		}
		// Cancelled (a newer push, or the PR closed), handed to another
		// worker, or shutting down: whoever cancelled completes the check,
		// or the queue hands the job back.
		return fmt.Errorf("runner: run %d stopped: %w", runID, context.Cause(ctx))
	}
	if err != nil {
		if !final {
			log.Warn("gate could not start; the queue will try again", "err", err)
			return err
		}
		res = errorResult(r.opts.Version, err)
	}
	return r.finish(ctx, run, jobID, res, log)
}

// timedOut ends a gate stopped by the job timeout as an error. Returning
// the error to the queue instead would have it try again, hit the same
// timeout and give up, with the run left running and rescued for ever.
func (r *Runner) timedOut(ctx context.Context, run gate.Run, jobID int64, res gated, log *slog.Logger) error {
	reason := "the gate did not finish within the job timeout and was stopped"
	if r.opts.JobTimeout > 0 {
		reason = fmt.Sprintf("the gate did not finish within the job timeout of %s (MEMGATE_JOB_TIMEOUT) and was stopped", r.opts.JobTimeout)
	}
	if res.Report == nil {
		res = errorResult(r.opts.Version, errors.New(reason))
	} else {
		if res.Report.Reason != "" {
			reason += " (" + res.Report.Reason + ")"
		}
		res.Report.Verdict, res.Report.Reason = gate.Error, reason
		res.cmp = nil // a comparison with a stopped head compares nothing
	}
	log.Warn("gate stopped by the job timeout", "timeout", r.opts.JobTimeout)
	// The job's context is over; storing and reporting get a minute of
	// their own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	return r.finish(ctx, run, jobID, res, log)
}

// heartbeat tells the reapers that this worker is alive, and stops the gate
// when the run is no longer this job's.
func (r *Runner) heartbeat(ctx context.Context, stop context.CancelCauseFunc, runID, jobID int64, log *slog.Logger) {
	t := time.NewTicker(r.opts.HeartbeatEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			mine, err := r.store.Heartbeat(ctx, runID, jobID)
			if err != nil {
				log.Warn("heartbeat failed", "err", err)
				continue
			}
			if !mine {
				stop(errors.New("the run was cancelled or handed to another worker"))
				return
			}
		}
	}
}

// started shows the run in progress on GitHub and returns its check run:
// the one the server created when it queued the run, one made here when
// there is none, or -1 while the server is still creating it. The gate
// does not wait for a slow GitHub, nor makes a second check run: when the
// server stores its id it finds the run ended, if it has, and posts the
// verdict itself.
func (r *Runner) started(ctx context.Context, run gate.Run, log *slog.Logger) int64 {
	if run.CheckRunID != 0 {
		if run.CheckRunID > 0 {
			if _, err := r.reporter.Started(ctx, run); err != nil {
				log.Warn("could not report the start to GitHub", "err", err)
			}
		}
		return run.CheckRunID
	}
	return r.createCheck(ctx, run, log)
}

// createCheck creates the run's check run, in progress, if nobody else is
// creating one. It returns the check run's id, -1 when another creator
// holds the claim, or 0 when it could not be created (the claim is given
// back for the next one to try).
func (r *Runner) createCheck(ctx context.Context, run gate.Run, log *slog.Logger) int64 {
	claim, ok, err := r.store.ClaimCheckRun(ctx, run.ID)
	if err != nil {
		log.Warn("could not claim the check run", "err", err)
		return 0
	}
	if !ok {
		return -1
	}
	run.CheckRunID = 0
	id, err := r.reporter.Started(ctx, run)
	if err != nil {
		log.Warn("could not create the check run", "err", err)
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.store.ReleaseCheckRun(rctx, run.ID, claim); err != nil {
			log.Warn("could not release the check run claim", "err", err)
		}
		return 0
	}
	if stored, err := r.store.SetCheckRun(ctx, run.ID, claim, id); err != nil || !stored {
		// Only a claim older than any creator's life is released: not ours.
		log.Warn("could not store the check run id", "check_run", id, "err", err)
	}
	return id
}

// checkRun is the run's current check run id, as stored.
func (r *Runner) checkRun(ctx context.Context, runID int64) int64 {
	cur, err := r.store.Run(ctx, runID)
	if err != nil {
		return 0
	}
	return cur.CheckRunID
}

func (r *Runner) finish(ctx context.Context, run gate.Run, jobID int64, res gated, log *slog.Logger) error {
	rep := res.Report
	var stored bool
	var err error
	if res.cmp != nil {
		stored, err = r.store.CompletePair(ctx, run.ID, jobID, res.cmp, res.baseID, res.Profiles)
	} else {
		stored, err = r.store.Complete(ctx, run.ID, jobID, rep, res.Profiles)
	}
	if err != nil {
		return fmt.Errorf("runner: store run %d: %w", run.ID, err)
	}
	if !stored {
		log.Info("run was cancelled while it ran; result dropped")
		return nil
	}
	log.Info("gate finished", "verdict", rep.Verdict, "reason", rep.Reason)
	if r.opts.OnFinish != nil {
		r.opts.OnFinish(rep)
	}
	if r.checkRun(ctx, run.ID) == 0 {
		r.createCheck(ctx, run, log) // none yet: make it, unless someone is
	}
	// Exactly one of those who see the run end posts its verdict: here,
	// unless its check run is still being created (its creator, having
	// stored the id, claims the report then) or someone claimed it first.
	checkID, mine, err := r.store.ClaimReport(ctx, run.ID)
	if err != nil || !mine {
		if err != nil {
			log.Warn("could not claim the report; the reconciler posts it", "err", err)
		}
		return nil
	}
	// With no id (its creation failed) the reporter makes a check run or,
	// posting commit statuses, needs none.
	run.CheckRunID = checkID
	if err := checks.PostCompleted(ctx, r.store, r.reporter, run, rep); err != nil {
		// The retrying transport already tried hard; the reconciler
		// posts it later.
		log.Error("could not report the verdict to GitHub; the reconciler will retry", "err", err)
		return nil
	}
	if err := r.store.MarkReported(ctx, run.ID); err != nil {
		log.Warn("could not record that the verdict was reported", "err", err)
	}
	return nil
}

// gate checks out and runs the gate. An error means the gate could not even
// start (checkout, token); a gate that runs and errors is a report.
func (r *Runner) gate(ctx context.Context, run gate.Run, log *slog.Logger) (gated, error) {
	token := ""
	if run.Private {
		var err error
		if token, err = r.reporter.Token(ctx, run.InstallationID); err != nil {
			return gated{}, fmt.Errorf("installation token: %w", err)
		}
	}
	var extra []string
	if run.BaseSHA != "" && run.BaseSHA != run.HeadSHA {
		extra = append(extra, run.BaseSHA)
	}
	ws, err := workspace.Checkout(ctx, r.opts.WorkDir, run.CloneURL, run.HeadSHA, extra, token,
		workspace.Options{AllowLocal: r.opts.AllowLocalRepos, Env: r.opts.GitEnv})
	if err != nil {
		if errors.Is(err, workspace.ErrCloneURL) {
			return errorResult(r.opts.Version, err), nil // retrying cannot help
		}
		return gated{}, err
	}
	defer ws.Remove()

	cfg, source, err := r.config(ctx, ws, run)
	if err != nil {
		return errorResult(r.opts.Version, err), nil
	}
	log.Info("gate config", "from", source)
	cfg = withImportPath(cfg, run.Repository)

	// Progress goes to the run's page every 2 s and to GitHub less often.
	var checkID atomic.Int64 // -1 until the server, slow to create it, stores it
	checkID.Store(run.CheckRunID)
	toGitHub := &throttled{every: r.opts.ProgressEvery, send: func(text string) {
		run := run
		if run.CheckRunID = checkID.Load(); run.CheckRunID < 0 {
			run.CheckRunID = r.checkRun(ctx, run.ID)
			checkID.Store(run.CheckRunID)
		}
		if run.CheckRunID < 0 {
			return // still being created
		}
		if err := r.reporter.Progress(ctx, run, text); err != nil {
			log.Warn("progress not reported", "err", err)
		}
	}}
	progress := &throttled{every: 2 * time.Second, send: func(text string) {
		if err := r.store.SetProgress(ctx, run.ID, text); err != nil {
			log.Warn("progress not stored", "err", err)
		}
		toGitHub.maybe(text, false)
	}}
	opts := pipeline.Options{
		Dir: ws.Dir, Config: cfg, WorkDir: r.opts.WorkDir, ToolEnv: r.opts.ToolEnv, ServiceEnv: r.opts.ServiceEnv,
		Version: r.opts.Version, Logger: log, Progress: progress, Containment: r.opts.Containment, OwnsDir: true,
		RequireContainment: !r.opts.AllowUncontained,
		Tenant:             owner(run.Repository),
	}
	if run.BaseSHA != "" {
		opts.Files = baseFiles{ws: ws, sha: run.BaseSHA}
	}
	if r.pairable(run) {
		return r.gatePair(ctx, run, token, opts, log)
	}
	return gated{Result: r.opts.Gate(ctx, opts)}, nil
}

// baseFiles are the base commit's files, read from git's objects like the
// config: the targets file and its bodies are the base's, as reviewed, not
// whatever the pull request's head puts at those paths.
type baseFiles struct {
	ws  *workspace.Workspace
	sha string
}

func (b baseFiles) ReadFile(ctx context.Context, name string, limit int64) ([]byte, error) {
	return b.ws.ReadFile(ctx, b.sha, name, limit)
}

// config reads .memgate.yml from the base commit, so a pull request cannot
// loosen its own gate; without the file there, defaults. A pull request
// without a known base is refused rather than gated with defaults: they may
// be looser than its base's config. Either must fit the job timeout.
func (r *Runner) config(ctx context.Context, ws *workspace.Workspace, run gate.Run) (config.Config, string, error) {
	// A pull request's job gates its base too: each gate gets half.
	policy := config.Policy{JobTimeout: r.opts.JobTimeout, Pair: r.pairable(run), Ceilings: r.opts.Ceilings,
		RefuseHostNetwork: !r.opts.AllowHostNetwork}
	defaults := func(why string) (config.Config, string, error) {
		if err := r.opts.Defaults.Allowed(policy); err != nil {
			return config.Config{}, "", fmt.Errorf("the default config (%s): %w", why, err)
		}
		return r.opts.Defaults, "defaults (" + why + ")", nil
	}
	if run.BaseSHA == "" {
		if run.PR != 0 {
			return config.Config{}, "", fmt.Errorf("the base commit of pull request #%d is not known, so its %s cannot be read; "+
				"memgate does not gate a pull request with default settings", run.PR, config.FileName)
		}
		return defaults("no base commit")
	}
	data, err := ws.ReadFile(ctx, run.BaseSHA, config.FileName, config.MaxSize)
	if errors.Is(err, os.ErrNotExist) {
		return defaults("no " + config.FileName + " in the base commit")
	}
	if err != nil {
		return config.Config{}, "", err
	}
	cfg, err := config.ParseFor(data, policy)
	if err != nil {
		return config.Config{}, "", fmt.Errorf("%s in the base commit %s: %w", config.FileName, gate.ShortSHA(run.BaseSHA), err)
	}
	return cfg, config.FileName + " of the base commit " + gate.ShortSHA(run.BaseSHA), nil
}

func errorResult(version string, err error) gated {
	now := time.Now().UTC()
	return gated{Result: pipeline.Result{Report: &gate.Report{Verdict: gate.Error, Reason: err.Error(), StartedAt: now, FinishedAt: now,
		Environment: gate.Environment{MemgateVersion: version}}}}
}

// throttled turns pipeline progress into at most one GitHub update per
// interval.
type throttled struct {
	mu    sync.Mutex
	every time.Duration
	last  time.Time
	phase string
	send  func(string)
}

func (t *throttled) Phase(phase, detail string) {
	t.mu.Lock()
	t.phase = phase
	t.mu.Unlock()
	t.maybe(fmt.Sprintf("**%s**: %s", phase, detail), phase == "measure")
}

func (t *throttled) Sample(s gate.Sample) {
	t.maybe(fmt.Sprintf("**%s** at %.0f s: %.0f requests/s, heap %s (post-GC %s), %s goroutines",
		s.Phase, s.Offset, s.AchievedRPS, gate.FormatBytes(float64(s.HeapInuse)), gate.FormatBytes(float64(s.PostGCHeap)),
		gate.FormatCount(int64(s.Goroutines))), false)
}

func (t *throttled) maybe(text string, force bool) {
	t.mu.Lock()
	if !force && time.Since(t.last) < t.every {
		t.mu.Unlock()
		return
	}
	t.last = time.Now()
	t.mu.Unlock()
	t.send(text)
}

// owner is the account a repository ("owner/name") belongs to: the unit
// whose gates share a module cache.
// withImportPath gives a repository without go.mod the import path it has
// on GitHub, for a GOPATH-mode build, unless its config names one.
func withImportPath(cfg config.Config, repository string) config.Config {
	if ip := "github.com/" + repository; cfg.Build.ImportPath == "" && config.ValidImportPath(ip) {
		cfg.Build.ImportPath = ip
	}
	return cfg
}

func owner(repository string) string {
	o, _, _ := strings.Cut(repository, "/")
	return o
}
