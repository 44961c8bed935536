package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pair"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/server"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/server/runner"
	"github.com/memgate/memgate/server/workspace"
	"github.com/memgate/memgate/storage"
)

// serveConfig is `memgate serve`'s configuration: flags, each with an
// environment variable; flags win.
type serveConfig struct {
	addr, databaseURL, webhookSecret, apiURL string
	appID                                    int64
	appKeyFile, token, publicURL, apiToken   string
	workDir, cacheDir                        string
	unsafeUncontained, allowHostNetwork      bool
	// ceilings: what a repository's config may ask of a worker
	// (MEMGATE_MAX_MEMORY, MEMGATE_MAX_PROCESSES, MEMGATE_MAX_FILE_SIZE).
	ceilings                                config.Ceilings
	maxProcesses                            int64
	workers                                 int
	allowLocalRepos, gateDrafts, allowForks bool
	approveLabel                            string
	jobTimeout, rescueAfter, lease          time.Duration
	// GitHub sign-in: the App's OAuth client, and where people sign in.
	clientID, clientSecret, webURL string
	maxEventAge                    time.Duration
	maxRescues                     int
	// gate runs a gate; nil for the real pipeline. Never set from flags or
	// the environment: tests give a fake where a gate's numbers do not
	// matter.
	gate func(ctx context.Context, opts pipeline.Options) pipeline.Result
	// pair gates a pull request's head with its base beside it (runner's
	// PairGate); nil gates heads alone. Tests give a fake.
	pair runner.PairGate
}

func serveFlags(fs *flag.FlagSet, getenv func(string) string) *serveConfig {
	env := func(k, def string) string {
		if v := getenv(k); v != "" {
			return v
		}
		return def
	}
	envInt := func(k string, def int64) int64 {
		n, err := strconv.ParseInt(env(k, strconv.FormatInt(def, 10)), 10, 64)
		if err != nil {
			return -1 // refused by validate with the variable's name
		}
		return n
	}
	envBool := func(k string) bool { b, _ := strconv.ParseBool(env(k, "false")); return b }
	envBytes := func(k string, def config.Bytes) config.Bytes {
		v := getenv(k)
		if v == "" {
			return def
		}
		b, err := config.ParseBytes(v)
		if err != nil {
			return config.Bytes(math.MaxUint64) // refused by validate with the variable's name
		}
		return b
	}
	envDur := func(k string, def time.Duration) time.Duration {
		d, err := time.ParseDuration(env(k, def.String()))
		if err != nil {
			return -1
		}
		return d
	}
	c := &serveConfig{}
	fs.StringVar(&c.addr, "addr", env("MEMGATE_ADDR", ":8080"), "listen address (MEMGATE_ADDR)")
	fs.StringVar(&c.databaseURL, "database-url", env("MEMGATE_DATABASE_URL", "sqlite:memgate.db"), "sqlite:PATH or postgres://... (MEMGATE_DATABASE_URL)")
	fs.StringVar(&c.webhookSecret, "webhook-secret", getenv("MEMGATE_WEBHOOK_SECRET"), "GitHub webhook secret; without it every delivery is refused (MEMGATE_WEBHOOK_SECRET)")
	fs.StringVar(&c.apiURL, "github-api-url", env("MEMGATE_GITHUB_API_URL", "https://api.github.com/"), "GitHub API URL (MEMGATE_GITHUB_API_URL)")
	fs.Int64Var(&c.appID, "github-app-id", envInt("MEMGATE_GITHUB_APP_ID", 0), "GitHub App id: check runs (MEMGATE_GITHUB_APP_ID)")
	fs.StringVar(&c.appKeyFile, "github-app-key-file", getenv("MEMGATE_GITHUB_APP_KEY_FILE"), "GitHub App private key, PEM (MEMGATE_GITHUB_APP_KEY_FILE)")
	fs.StringVar(&c.token, "github-token", getenv("MEMGATE_GITHUB_TOKEN"), "GitHub token: commit statuses (MEMGATE_GITHUB_TOKEN)")
	fs.StringVar(&c.publicURL, "public-url", getenv("MEMGATE_PUBLIC_URL"), "memgate's public URL, for links from GitHub (MEMGATE_PUBLIC_URL)")
	fs.StringVar(&c.apiToken, "api-token", getenv("MEMGATE_API_TOKEN"), "bearer token for API writes (MEMGATE_API_TOKEN)")
	fs.StringVar(&c.workDir, "workdir", getenv("MEMGATE_WORKDIR"), "where workspaces are made (MEMGATE_WORKDIR; default the system temp dir)")
	fs.IntVar(&c.workers, "workers", int(envInt("MEMGATE_WORKERS", 1)), "gates run at once by this process; 0 serves HTTP only (MEMGATE_WORKERS)")
	fs.BoolVar(&c.allowLocalRepos, "allow-local-repos", envBool("MEMGATE_ALLOW_LOCAL_REPOS"), "accept local paths and file:// clone URLs (MEMGATE_ALLOW_LOCAL_REPOS)")
	fs.BoolVar(&c.gateDrafts, "gate-drafts", envBool("MEMGATE_GATE_DRAFTS"), "gate draft pull requests too (MEMGATE_GATE_DRAFTS)")
	fs.BoolVar(&c.allowForks, "allow-forks", envBool("MEMGATE_ALLOW_FORKS"), "gate pull requests from forks without a maintainer's approval (MEMGATE_ALLOW_FORKS; private setups only)")
	fs.StringVar(&c.approveLabel, "approve-label", env("MEMGATE_APPROVE_LABEL", "memgate/ok-to-test"), "the label a maintainer adds to approve gating a fork's head commit (MEMGATE_APPROVE_LABEL)")
	fs.DurationVar(&c.jobTimeout, "job-timeout", envDur("MEMGATE_JOB_TIMEOUT", 45*time.Minute), "longest a gate may run (MEMGATE_JOB_TIMEOUT)")
	fs.DurationVar(&c.rescueAfter, "rescue-after", envDur("MEMGATE_RESCUE_AFTER", 50*time.Minute), "the queue's own backstop for jobs stuck running (MEMGATE_RESCUE_AFTER)")
	fs.StringVar(&c.cacheDir, "cache-dir", cacheDir(getenv), "the Go caches sandboxes share (MEMGATE_CACHE_DIR)")
	ceil := config.DefaultCeilings()
	c.ceilings.Memory = envBytes("MEMGATE_MAX_MEMORY", ceil.Memory)
	c.ceilings.FileSize = envBytes("MEMGATE_MAX_FILE_SIZE", ceil.FileSize)
	fs.Int64Var(&c.maxProcesses, "max-processes", envInt("MEMGATE_MAX_PROCESSES", int64(ceil.Processes)),
		"the most run.max_processes a repository may ask (MEMGATE_MAX_PROCESSES; 0: no ceiling)")
	fs.BoolVar(&c.allowHostNetwork, "allow-host-network", envBool("MEMGATE_ALLOW_HOST_NETWORK"),
		"let a repository's .memgate.yml set run.network: host, giving its service this worker's network (MEMGATE_ALLOW_HOST_NETWORK; single-tenant servers only)")
	fs.BoolVar(&c.unsafeUncontained, "unsafe-run-uncontained", envBool("MEMGATE_UNSAFE_RUN_UNCONTAINED"),
		"where no sandbox can be made, gate pull requests anyway, running their code as memgate's own user with memgate's files and secrets in reach (MEMGATE_UNSAFE_RUN_UNCONTAINED; never on a machine that holds anything of value)")
	fs.StringVar(&c.clientID, "github-client-id", getenv("MEMGATE_GITHUB_CLIENT_ID"), "the GitHub App's OAuth client id: people sign in with GitHub and see the private repositories they can read (MEMGATE_GITHUB_CLIENT_ID)")
	fs.StringVar(&c.clientSecret, "github-client-secret", getenv("MEMGATE_GITHUB_CLIENT_SECRET"), "the GitHub App's OAuth client secret; also keys the session cookies (MEMGATE_GITHUB_CLIENT_SECRET)")
	fs.StringVar(&c.webURL, "github-web-url", getenv("MEMGATE_GITHUB_WEB_URL"), "where people sign in and pages link to (MEMGATE_GITHUB_WEB_URL; default https://github.com, or the Enterprise host of MEMGATE_GITHUB_API_URL)")
	fs.DurationVar(&c.maxEventAge, "max-event-age", envDur("MEMGATE_MAX_EVENT_AGE", 96*time.Hour), "refuse webhook events whose payload says they happened longer ago; 0 for no bound (MEMGATE_MAX_EVENT_AGE)")
	fs.DurationVar(&c.lease, "lease", envDur("MEMGATE_LEASE", time.Minute), "a gate whose worker is silent this long is handed to another worker (MEMGATE_LEASE)")
	fs.IntVar(&c.maxRescues, "max-rescues", int(envInt("MEMGATE_MAX_RESCUES", runner.DefaultMaxRescues)), "a gate whose worker died this many times completes as an error; 0 rescues for ever (MEMGATE_MAX_RESCUES)")
	return c
}

func (c *serveConfig) validate() error {
	switch {
	case c.appID < 0:
		return errors.New("MEMGATE_GITHUB_APP_ID / --github-app-id must be a number")
	case c.appID > 0 && c.appKeyFile == "":
		return errors.New("MEMGATE_GITHUB_APP_ID is set but MEMGATE_GITHUB_APP_KEY_FILE is not")
	case c.appID == 0 && c.appKeyFile != "":
		return errors.New("MEMGATE_GITHUB_APP_KEY_FILE is set but MEMGATE_GITHUB_APP_ID is not")
	case c.workers < 0:
		return errors.New("MEMGATE_WORKERS / --workers must be a number >= 0")
	case c.jobTimeout <= 0:
		return errors.New("MEMGATE_JOB_TIMEOUT / --job-timeout must be a positive duration")
	case c.rescueAfter <= c.jobTimeout:
		return errors.New("MEMGATE_RESCUE_AFTER / --rescue-after must exceed the job timeout")
	case c.lease < 3*time.Second:
		return errors.New("MEMGATE_LEASE / --lease must be a duration of at least 3s")
	case (c.clientID == "") != (c.clientSecret == ""):
		return errors.New("MEMGATE_GITHUB_CLIENT_ID and MEMGATE_GITHUB_CLIENT_SECRET go together: set both for GitHub sign-in, or neither")
	case c.maxEventAge < 0:
		return errors.New("MEMGATE_MAX_EVENT_AGE / --max-event-age must be a duration (0 for no bound)")
	case c.maxProcesses < 0:
		return errors.New("MEMGATE_MAX_PROCESSES / --max-processes must be a number >= 0 (0: no ceiling)")
	case c.ceilings.Memory == config.Bytes(math.MaxUint64):
		return errors.New("MEMGATE_MAX_MEMORY must be a size, e.g. 8GiB (0: no ceiling)")
	case c.ceilings.FileSize == config.Bytes(math.MaxUint64):
		return errors.New("MEMGATE_MAX_FILE_SIZE must be a size, e.g. 4GiB (0: no ceiling)")
	case c.maxRescues < 0:
		return errors.New("MEMGATE_MAX_RESCUES / --max-rescues must be a number >= 0")
	}
	return nil
}

// gitHubWeb is where people sign in and pages link to.
func (c *serveConfig) gitHubWeb() string {
	if c.webURL != "" {
		return strings.TrimRight(c.webURL, "/")
	}
	return checks.WebURL(c.apiURL)
}

// signIn is the GitHub App's OAuth client, or nil without one.
func (c *serveConfig) signIn() *access.GitHub {
	if c.clientID == "" {
		return nil
	}
	g := &access.GitHub{ClientID: c.clientID, ClientSecret: c.clientSecret, WebURL: c.gitHubWeb(), APIURL: c.apiURL}
	if c.publicURL != "" {
		g.RedirectURL = strings.TrimRight(c.publicURL, "/") + "/login/callback"
	}
	return g
}

func newLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func runMigrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("memgate migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	url := fs.String("database-url", getenv("MEMGATE_DATABASE_URL"), "database to migrate (MEMGATE_DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *url == "" {
		*url = "sqlite:memgate.db"
	}
	log := newLogger(stderr)
	st, err := openAndMigrate(ctx, *url, log)
	if err != nil {
		fmt.Fprintf(stderr, "memgate migrate: %v\n", err)
		return 1
	}
	st.Close()
	log.Info("database is up to date")
	return 0
}

func openAndMigrate(ctx context.Context, url string, log *slog.Logger) (*storage.Store, error) {
	st, err := storage.Open(ctx, url, log)
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	if err := queue.Migrate(ctx, st.DB(), st.Engine() == storage.Postgres); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// reporter is what serve needs of a GitHub reporter.
type reporter interface {
	runner.Reporter
	server.Reporter
	Describe() string
}

func newReporter(c *serveConfig, log *slog.Logger) (reporter, error) {
	opts := checks.Options{APIURL: c.apiURL, PublicURL: c.publicURL, Logger: log}
	switch {
	case c.appID > 0:
		key, err := os.ReadFile(c.appKeyFile)
		if err != nil {
			return nil, fmt.Errorf("GitHub App key: %w", err)
		}
		return checks.NewApp(c.appID, key, opts)
	case c.token != "":
		return checks.NewStatuses(c.token, opts)
	}
	return checks.Silent{}, nil
}

func runServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	return runCommand(ctx, "serve", args, getenv, stderr)
}

func runWorker(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) int {
	return runCommand(ctx, "worker", args, getenv, stderr)
}

// runCommand is `memgate serve` (HTTP and, by default, gates) and `memgate
// worker` (gates only): the same settings, flags and environment.
func runCommand(ctx context.Context, name string, args []string, getenv func(string) string, stderr io.Writer) int {
	fs := flag.NewFlagSet("memgate "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := serveFlags(fs, getenv)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	log := newLogger(stderr)
	err := c.validate()
	if err == nil && name == "worker" && c.workers < 1 {
		err = errors.New("--workers / MEMGATE_WORKERS must be at least 1")
	}
	if err != nil {
		fmt.Fprintf(stderr, "memgate %s: %v\n", name, err)
		return 2
	}
	if err := runServices(ctx, c, getenv, log, name == "serve"); err != nil {
		log.Error("memgate "+name+" stopped", "err", err)
		return 1
	}
	return 0
}

// serveContainment finds out whether this worker can sandbox pull
// requests' code. Without a sandbox it does not gate (each run completes
// as an error saying why, /readyz is 503 and says what is missing), unless
// the operator set MEMGATE_UNSAFE_RUN_UNCONTAINED.
func serveContainment(ctx context.Context, c *serveConfig, getenv func(string) string, log *slog.Logger) (service.Containment, string) {
	if c.workers == 0 {
		return service.Containment{}, ""
	}
	dir := c.cacheDir
	if dir == "" {
		dir = cacheDir(getenv)
	}
	cont := service.NewContainment(ctx, dir, service.ToolchainEnv(getenv))
	switch {
	case cont.Sandboxed:
		log.Info("gates run sandboxed", "root", cont.Root, "caches", dir)
		return cont, ""
	case c.unsafeUncontained:
		log.Warn("NO SANDBOX: gates run pull requests' code UNCONTAINED, as memgate's own user (MEMGATE_UNSAFE_RUN_UNCONTAINED is set)", "why", cont.Why)
		return cont, ""
	default:
		why := "gates cannot run: no sandbox on this worker: " + cont.Why + " (" + containmentHelp + ")"
		log.Error(why)
		return cont, why
	}
}

// containmentHelp says how to give a worker what its sandbox needs.
const containmentHelp = "memgate needs user namespaces (kernel.unprivileged_userns_clone=1, user.max_user_namespaces > 0); in a container: --security-opt seccomp=unconfined --security-opt apparmor=unconfined --security-opt systempaths=unconfined, as docker-compose.yml sets; see docs/deploy.md"

func serve(ctx context.Context, c *serveConfig, getenv func(string) string, log *slog.Logger) error {
	return runServices(ctx, c, getenv, log, true)
}

// runServices starts the gate workers (c.workers of them) and, with withHTTP, the
// HTTP server; `memgate worker` runs without it.
func runServices(ctx context.Context, c *serveConfig, getenv func(string) string, log *slog.Logger, withHTTP bool) error {
	// Every gate makes its workspace under the workdir: without a usable
	// one, refuse to start rather than accept webhooks for gates that can
	// only fail.
	workDir := ""
	if c.workers > 0 {
		dir, err := workspace.PrepareRoot(c.workDir, os.Geteuid() == 0)
		if err != nil {
			return fmt.Errorf("MEMGATE_WORKDIR / --workdir: %w", err)
		}
		workDir = dir
	}
	st, err := openAndMigrate(ctx, c.databaseURL, log)
	if err != nil {
		return err
	}
	defer st.Close()

	rep, err := newReporter(c, log)
	if err != nil {
		return err
	}
	log.Info("reporting to GitHub", "mode", rep.Describe())
	if withHTTP && c.webhookSecret == "" {
		log.Warn("MEMGATE_WEBHOOK_SECRET is not set: every webhook delivery will be refused with 401")
	}
	if withHTTP && c.apiToken == "" {
		log.Warn("MEMGATE_API_TOKEN is not set: API writes (new runs, re-runs) are refused")
	}
	if withHTTP && c.clientID == "" {
		log.Warn("MEMGATE_GITHUB_CLIENT_ID is not set: nobody can sign in with GitHub, and private repositories' runs are visible with MEMGATE_API_TOKEN only")
	}

	cont, notReady := serveContainment(ctx, c, getenv, log)
	metrics := server.NewMetrics(st)
	gates := runner.New(st, rep, runner.Options{
		WorkDir: workDir, AllowLocalRepos: c.allowLocalRepos,
		GitEnv: pick(getenv, "PATH"), ToolEnv: service.ToolchainEnv(getenv), ServiceEnv: serviceBaseEnv(getenv),
		Version: memgateVersion(), Logger: log, Defaults: config.Default(), OnFinish: metrics.ObserveGate,
		HeartbeatEvery: c.lease / 6, Containment: cont, AllowUncontained: c.unsafeUncontained, AllowHostNetwork: c.allowHostNetwork, Ceilings: c.ceilingsSet(),
		JobTimeout: c.jobTimeout, Gate: c.gate, Pair: c.pairGate(log),
	})
	qcfg := queue.DefaultConfig()
	qcfg.Workers, qcfg.Logger, qcfg.JobTimeout, qcfg.RescueAfter = c.workers, log, c.jobTimeout, c.rescueAfter
	qcfg.Postgres = st.Engine() == storage.Postgres
	q, err := queue.New(st.DB(), gates, qcfg)
	if err != nil {
		return err
	}
	metrics.SetQueue(q)

	bg, cancelBG := context.WithCancel(context.Background())
	defer cancelBG()
	var httpSrv *http.Server
	var srv *server.Server
	errc := make(chan error, 1)
	if withHTTP {
		srv, err = server.New(bg, server.Config{WebhookSecret: c.webhookSecret, APIToken: c.apiToken, GateDrafts: c.gateDrafts,
			GitHubURL: c.gitHubWeb(), SecureCookies: strings.HasPrefix(c.publicURL, "https://"),
			AllowForks: c.allowForks, ApproveLabel: c.approveLabel, SignIn: c.signIn(), NotReady: notReady,
			MaxEventAge: c.maxEventAge, WorkDir: workDir}, st, q, rep, metrics, log)
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", c.addr)
		if err != nil {
			return fmt.Errorf("listen %s: %w", c.addr, err)
		}
		httpSrv = &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 2 * time.Minute}
		go srv.PruneDeliveries(bg, time.Hour)
		go func() { errc <- httpSrv.Serve(ln) }()
		log.Info("memgate serving", "addr", ln.Addr().String(), "workers", c.workers, "database", strings.SplitN(c.databaseURL, ":", 2)[0])
	} else {
		log.Info("memgate worker running gates", "workers", c.workers, "database", strings.SplitN(c.databaseURL, ":", 2)[0])
	}
	if err := q.Start(bg); err != nil {
		return err
	}
	go runner.NewReaper(st, q, c.lease, log).GiveUpAfter(c.maxRescues, rep).Run(bg)
	go runner.NewSweeper(st, q, rep, c.lease, c.jobTimeout, memgateVersion(), log).Run(bg)
	go runner.NewReconciler(st, rep, 30*time.Second, log).Run(bg)
	select {
	case <-ctx.Done():
		log.Info("shutting down: running gates finish or go back to the queue")
	case err := <-errc:
		return err
	}
	if httpSrv != nil {
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		httpSrv.Shutdown(shutdown)
		// Check runs being created for deliveries just taken: finish
		// them, or their claims would hold off the workers' for a while.
		drain, cancelDrain := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancelDrain()
		if err := srv.Drain(drain); err != nil {
			log.Warn("GitHub calls still running at shutdown", "err", err)
		}
	}
	stopGates, cancelStop := context.WithTimeout(context.Background(), c.jobTimeout)
	defer cancelStop()
	if err := q.Stop(stopGates); err != nil {
		log.Warn("queue stop", "err", err)
	}
	return nil
}

func pick(getenv func(string) string, keys ...string) []string {
	var out []string
	for _, k := range keys {
		if v := getenv(k); v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// pairGate gates a pull request's head with its base beside it: gate/pair's
// Run (with the test's gate in place of the pipeline when one is set), or
// the test's own pair gate.
func (c *serveConfig) pairGate(log *slog.Logger) runner.PairGate {
	if c.pair != nil {
		return c.pair
	}
	return func(ctx context.Context, p runner.Pair) runner.PairResult {
		r := pair.Run(ctx, pair.Options{Head: p.Head, HeadSHA: p.HeadSHA, Gate: c.gate, Logger: log,
			Base: pair.Base{SHA: p.Base.SHA, Ref: p.Base.Ref, Dir: p.Base.Dir, Config: p.Base.Config, Files: p.Base.Files,
				OwnsDir: p.Base.OwnsDir, Report: p.Base.Stored, RunID: p.Base.StoredRun}})
		return runner.PairResult{Comparison: r.Comparison, Head: r.Head}
	}
}

// ceilingsSet is the ceilings with the processes' (a flag of its own).
func (c *serveConfig) ceilingsSet() config.Ceilings {
	l := c.ceilings
	l.Processes = uint64(c.maxProcesses)
	return l
}
