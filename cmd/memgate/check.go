package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/gate/service"
)

type checkFlags struct {
	config   string
	rate     float64
	duration time.Duration
	warmup   time.Duration
	json     string
	profiles string
	junit    string
	ci       string
	progress string
	base     string // --base REF: compare against that commit
	confirm  int    // --confirm N: confirmations of a failure; -1 is the config's
	// --base-report FILE: a stored JSON report of REF (same config) to
	// compare against instead of gating it again.
	baseReport string
}

func runCheck(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	var f checkFlags
	fs := newCheckFlags(&f)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, "usage: memgate check [flags] [DIR]\n\nGate the Go service in DIR (default .).\n\nflags:\n")
		fs.PrintDefaults()
		fmt.Fprint(stderr, "\nexit status: 0 pass, 1 fail, 2 could not run the gate, 3 inconclusive\n")
	}
	dir, err := parseInterspersed(fs, args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := validOutputFlags(f); err != nil {
		fmt.Fprintf(stderr, "memgate check: %v\n", err)
		return 2
	}
	return check(ctx, dir, f, getenv, stdout, stderr)
}

// newCheckFlags declares the check flags into f.
func newCheckFlags(f *checkFlags) *flag.FlagSet {
	fs := flag.NewFlagSet("memgate check", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.config, "config", "", "config file (default: DIR/.memgate.yml when present)")
	fs.Float64Var(&f.rate, "rate", 0, "requests per second (default: the config's load.rate, 200)")
	fs.DurationVar(&f.duration, "duration", 0, "the measured window (default: load.duration, 40s)")
	fs.DurationVar(&f.warmup, "warmup", -1, "warm-up before the window (default: load.warmup, 10s)")
	fs.StringVar(&f.json, "json", "", "write the full report as JSON to FILE (- for stdout)")
	fs.StringVar(&f.profiles, "profiles", "", "write the raw pprof profiles to DIR")
	fs.StringVar(&f.junit, "junit", "", "write a JUnit XML report to FILE (GitLab, Jenkins, Buildkite, CircleCI), one test case per criterion")
	fs.StringVar(&f.ci, "ci", ciAuto, "CI output: github (job summary, annotations, step outputs), none, or auto (github when GITHUB_ACTIONS=true)")
	fs.StringVar(&f.base, "base", "", "gate the commit REF too (DIR must be in a git checkout) and judge DIR's change against it: a leak REF already has is not the change's (exit 0 unless compare.already_leaking is failure)")
	fs.IntVar(&f.confirm, "confirm", -1, "with --base: gate a failing head again on a fresh process N times before failing; a failure that does not repeat is a flake (default: the config's compare.confirmations, 1)")
	fs.StringVar(&f.baseReport, "base-report", "", "with --base: compare against this JSON report of REF (from --json, same config) instead of gating REF again")
	fs.StringVar(&f.progress, "progress", "auto", "progress on stderr: live (one line per phase, rewritten; chart at the end), plain (a line a second), auto (live on a terminal)")
	return fs
}

func check(ctx context.Context, dir string, f checkFlags, getenv func(string) string, stdout, stderr io.Writer) int {
	// Everything read from DIR goes through files: the config, the targets
	// file and its bodies.
	files, err := openDirFiles(dir)
	if err != nil {
		err = fmt.Errorf("%w: %s is not a directory memgate can read: %v", service.ErrBuild, dir, err)
		fmt.Fprintf(stderr, "memgate: %v\n", err)
		return writeErrorReport(f, dir, getenv, stdout, stderr, err)
	}
	defer files.Close()
	cfg, cfgSource, err := loadConfig(ctx, files, dir, f.config)
	if err != nil {
		fmt.Fprintf(stderr, "memgate: %v\n", err)
		return writeErrorReport(f, dir, getenv, stdout, stderr, err)
	}
	if ip := gopathImportPath(dir); cfg.Build.ImportPath == "" && ip != "" {
		cfg.Build.ImportPath = ip
		fmt.Fprintf(stderr, "memgate: %s has no go.mod: building it in GOPATH mode as %s (its place under a src directory; set build.import_path otherwise)\n", dir, ip)
	}
	if err := applyLoadFlags(&cfg, f); err != nil {
		err = fmt.Errorf("flags: %w", err)
		fmt.Fprintf(stderr, "memgate: %v\n", err)
		return writeErrorReport(f, dir, getenv, stdout, stderr, err)
	}
	if f.base != "" {
		return checkPair(ctx, dir, cfg, files, f, getenv, stdout, stderr)
	}

	progress := newProgress(stderr, cfg, f.progress)
	fmt.Fprintf(stderr, "memgate %s: gating %s (%s)\n", memgateVersion(), dir, cfgSource)
	res := pipeline.Run(ctx, checkOptions(ctx, dir, cfg, files, progress, getenv, stderr))
	rep := res.Report
	progress.Finish(rep)

	if f.profiles != "" && len(res.Profiles) > 0 {
		paths, err := writeProfiles(f.profiles, res.Profiles)
		if err != nil {
			fmt.Fprintf(stderr, "memgate: %v\n", err)
		}
		rep.Profiles = paths
	}
	tableOut := stdout
	if f.json == "-" {
		tableOut = stderr
	}
	resume := func() {}
	if ciMode(f.ci, getenv) == ciGitHub {
		resume = pauseCommands(tableOut)
	}
	printReport(tableOut, rep, f.profiles)
	resume()
	if f.json != "" {
		if err := writeJSON(f.json, stdout, rep); err != nil {
			fmt.Fprintf(stderr, "memgate: %v\n", err)
			return 2
		}
	}
	if err := writeCIOutputs(f, dir, rep, res.Profiles, getenv, tableOut); err != nil {
		fmt.Fprintf(stderr, "memgate: %v\n", err)
		return 2
	}
	return rep.Verdict.ExitCode()
}

// checkOptions are a gate's options for memgate check: DIR as it is, with
// the caller's toolchain and a few of its variables.
func checkOptions(ctx context.Context, dir string, cfg config.Config, files *dirFiles, progress progress, getenv func(string) string, stderr io.Writer) pipeline.Options {
	return pipeline.Options{
		Dir:         dir,
		Config:      cfg,
		ToolEnv:     service.ToolchainEnv(getenv),
		ServiceEnv:  serviceBaseEnv(getenv),
		Version:     memgateVersion(),
		Logger:      slog.New(slog.NewTextHandler(progress.Writer(), &slog.HandlerOptions{Level: slog.LevelWarn})),
		Progress:    progress,
		Containment: checkContainment(ctx, getenv, stderr),
		Files:       files,
	}
}

// applyLoadFlags puts --rate, --duration and --warmup over a config: the
// head's and, with --base, the base's alike.
func applyLoadFlags(cfg *config.Config, f checkFlags) error {
	if f.rate != 0 {
		cfg.Load.Rate = f.rate
	}
	if f.duration != 0 {
		cfg.Load.Duration = f.duration
	}
	if f.warmup >= 0 {
		cfg.Load.Warmup = f.warmup
	}
	return cfg.Validate()
}

// parseInterspersed lets flags come before or after DIR, as users type them.
func parseInterspersed(fs *flag.FlagSet, args []string) (string, error) {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			return "", err
		}
		if fs.NArg() == 0 {
			break
		}
		positional = append(positional, fs.Arg(0))
		args = fs.Args()[1:]
	}
	switch len(positional) {
	case 0:
		return ".", nil
	case 1:
		return positional[0], nil
	}
	fmt.Fprintf(fs.Output(), "memgate check: one DIR at most, got %q\n", positional)
	return "", errors.New("too many arguments")
}

// gopathImportPath is, for a directory without go.mod that sits in a
// GOPATH (…/src/github.com/you/service), its import path: what follows the
// last src directory. "" when it has a go.mod or no src above it.
func gopathImportPath(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return ""
	}
	if _, err := os.Lstat(filepath.Join(abs, "go.mod")); err == nil {
		return ""
	}
	i := strings.LastIndex(filepath.ToSlash(abs), "/src/")
	if i < 0 {
		return ""
	}
	if ip := filepath.ToSlash(abs)[i+len("/src/"):]; config.ValidImportPath(ip) {
		return ip
	}
	return ""
}

// loadConfig reads --config, a file the user named, as it is; or else
// DIR's .memgate.yml, which is the repository's, through files.
func loadConfig(ctx context.Context, files *dirFiles, dir, path string) (config.Config, string, error) {
	if path != "" {
		cfg, err := config.LoadFile(path)
		return cfg, path, err
	}
	path = filepath.Join(dir, config.FileName)
	data, err := files.ReadFile(ctx, config.FileName, config.MaxSize)
	if errors.Is(err, fs.ErrNotExist) {
		return config.Default(), "default config", nil
	}
	if err != nil {
		return config.Config{}, path, fmt.Errorf("config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return config.Config{}, path, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, path, nil
}

// cacheDir is where memgate keeps the Go caches its sandboxes share
// (MEMGATE_CACHE_DIR). The default is not in a shared temp directory, where
// another local user could make it first: /var/cache/memgate for root
// (whose sandbox users must walk to it), the user's cache directory else.
func cacheDir(getenv func(string) string) string {
	if dir := getenv("MEMGATE_CACHE_DIR"); dir != "" {
		return dir
	}
	if os.Geteuid() == 0 {
		return "/var/cache/memgate"
	}
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "memgate")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("memgate-cache-%d", os.Geteuid()))
}

// checkContainment is memgate check's: sandboxed where the host allows it;
// otherwise the developer's own code runs uncontained, and the terminal
// says so before anything runs (the report says so too).
func checkContainment(ctx context.Context, getenv func(string) string, stderr io.Writer) service.Containment {
	c := service.NewContainment(ctx, cacheDir(getenv), service.ToolchainEnv(getenv))
	if !c.Sandboxed {
		fmt.Fprintf(stderr, "memgate: WARNING: no sandbox on this machine (%s): the build and the service run UNCONTAINED, as you, seeing what you see. Fine for your own code; never for a stranger's.\n", c.Why)
	}
	return c
}

// serviceBaseEnv is all of memgate's environment a service sees; tokens and
// keys memgate holds stay out.
func serviceBaseEnv(getenv func(string) string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "TMPDIR", "LANG", "TZ"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

func writeProfiles(dir string, profiles map[string][]byte) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--profiles: %w", err)
	}
	var paths []string
	for _, name := range []string{pipeline.HeapWarmup, pipeline.HeapEnd, pipeline.GoroutineWarmup, pipeline.GoroutineEnd, pipeline.GoroutineLeakEnd} {
		data, ok := profiles[name]
		if !ok {
			continue
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return paths, fmt.Errorf("--profiles: %w", err)
		}
		paths = append(paths, p)
	}
	return paths, nil
}

// writeJSON writes a report (or a comparison) as --json asked.
func writeJSON(dest string, stdout io.Writer, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	data = append(data, '\n')
	if dest == "-" {
		_, err = stdout.Write(data)
		return err
	}
	if err := os.WriteFile(dest, data, 0o644); err != nil {
		return fmt.Errorf("--json: %w", err)
	}
	return nil
}

// writeErrorReport still writes the JSON a caller asked for when the gate
// could not even start, so tools reading it see the error verdict.
func writeErrorReport(f checkFlags, dir string, getenv func(string) string, stdout, stderr io.Writer, cause error) int {
	now := time.Now().UTC()
	rep := &gate.Report{Verdict: gate.Error, Reason: strings.TrimSpace(cause.Error()), StartedAt: now, FinishedAt: now,
		Environment: gate.Environment{MemgateVersion: memgateVersion()}}
	if f.json != "" {
		if err := writeJSON(f.json, stdout, rep); err != nil {
			fmt.Fprintf(stderr, "memgate: %v\n", err)
		}
	}
	if err := writeCIOutputs(f, dir, rep, nil, getenv, stderr); err != nil {
		fmt.Fprintf(stderr, "memgate: %v\n", err)
	}
	return gate.Error.ExitCode()
}
