// Package service builds a Go service and runs it as a contained process:
// an explicit environment, its own process group, bounded output, and
// nothing left running afterwards.
package service

import (
	"context"
	"debug/buildinfo"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"
)

//go:embed reader.go.txt
var readerSource []byte

// ReaderFile is the name the reader takes in the service's main package.
const ReaderFile = "zz_memgate_reader.go"

// ReaderAddrEnv is the variable that tells an injected reader where to listen.
const ReaderAddrEnv = "MEMGATE_READER_ADDR"

// ErrBuild is wrapped by every build failure caused by the service's code or
// config (not by memgate).
var ErrBuild = errors.New("build failed")

// BuildSpec says what to build and how.
type BuildSpec struct {
	Dir     string // the service's module directory
	Package string // relative to Dir, when Command is empty
	Command string // sh -c command writing {{output}}, replacing go build
	Flags   []string
	Env     map[string]string // added to the toolchain environment
	Timeout time.Duration
	Output  string // where the binary goes
	Inject  bool   // add the runtime reader to package main
	WorkDir string // scratch space for the overlay
	// LeakProfile builds with the runtime's goroutine leak profile
	// (LeakExperiment); where that build fails, Build builds without it.
	LeakProfile bool
	// ImportPath, for a repository without go.mod, builds it in GOPATH
	// mode with its source at $GOPATH/src/ImportPath (see gopath.go).
	ImportPath string
	// Workspace, for a repository without go.mod that is a GOPATH itself
	// (WorkspaceLayout), builds it in GOPATH mode with the checkout as
	// the GOPATH.
	Workspace bool
	// ToolEnv is the toolchain environment (PATH, HOME, Go caches, proxy);
	// see ToolchainEnv. memgate's own environment never reaches a build.
	ToolEnv []string
	// Sandbox, when set, runs the module download and the build in
	// sandboxes (see sandboxed.go); nil builds as memgate's own user.
	Sandbox *BuildSandbox
}

// Built is a finished build.
type Built struct {
	Binary   string
	Injected bool   // the reader is in the binary
	Note     string // why the reader is not, when injection was asked for
	// LeakProfile says the binary serves the goroutineleak profile;
	// LeakNote says why not, when it was asked for.
	LeakProfile bool
	LeakNote    string
	GoVersion   string
	Output      string // tail of the compiler's output
	Took        time.Duration
}

// toolVars are the only variables of memgate's environment a build sees.
var toolVars = []string{
	"PATH", "HOME", "TMPDIR", "USER", "LANG",
	"GOPATH", "GOCACHE", "GOMODCACHE", "GOROOT",
	"GOPROXY", "GONOPROXY", "GOPRIVATE", "GONOSUMDB", "GONOSUMCHECK", "GOSUMDB", "GOINSECURE", "GOVCS",
	"CGO_ENABLED", "CC", "CXX", "XDG_CACHE_HOME",
}

// ToolchainEnv picks, from an environment reader such as os.Getenv, the
// variables a Go build needs, and pins GOTOOLCHAIN=local so a go.mod cannot
// make the build download another toolchain.
func ToolchainEnv(getenv func(string) string) []string {
	var env []string
	for _, k := range toolVars {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return append(env, "GOTOOLCHAIN=local")
}

// Build compiles the service. With Inject it first tries with the reader
// and, if only that makes the build fail, builds again without it; with
// LeakProfile likewise with the experiment, then without.
func Build(ctx context.Context, spec BuildSpec) (Built, error) {
	start := time.Now()
	if spec.Command == "" && !gopathMode(spec) {
		if _, err := os.Stat(filepath.Join(spec.Dir, "go.mod")); err != nil {
			return Built{}, NotAModule(spec.Dir)
		}
	}
	if spec.ImportPath != "" && !filepath.IsLocal(spec.ImportPath) {
		return Built{}, fmt.Errorf("%w: build.import_path %q is not a relative path", ErrBuild, spec.ImportPath)
	}
	res := Built{Binary: spec.Output}
	if err := layOutGOPATH(spec); err != nil {
		return res, fmt.Errorf("%w: lay out the GOPATH: %v", ErrBuild, err)
	}
	var overlay string
	if spec.Inject {
		var err error
		overlay, err = writeOverlay(spec)
		if err != nil {
			res.Note = "reader not added: " + err.Error()
		}
	}
	attempt := spec
	if spec.LeakProfile {
		attempt = withLeakExperiment(spec)
	}
	out, err := runBuild(ctx, attempt, overlay)
	if err != nil && overlay != "" && strings.Contains(out, ReaderFile) {
		res.Note = "reader not added: it did not compile with this package: " + firstLineWith(out, ReaderFile)
		overlay = ""
		out, err = runBuild(ctx, attempt, "")
	}
	if err != nil && spec.LeakProfile && !errors.Is(err, ErrContainment) && ctx.Err() == nil && experimentMayBeWhy(ctx, spec) {
		// The experiment is the toolchain's (Go 1.26 on); an older one
		// refuses it, and a build.command may run one of its own.
		res.LeakNote = "built without GOEXPERIMENT=" + LeakExperiment + ": the build with it failed: " + LastLines(out, 1)
		out, err = runBuild(ctx, spec, overlay)
	}
	switch {
	case workspaceMode(spec):
		out = "memgate: no go.mod, and the package under src/: built in GOPATH mode with the repository as the GOPATH\n" + out
	case gopathMode(spec):
		out = fmt.Sprintf("memgate: no go.mod: built in GOPATH mode as %s\n", spec.ImportPath) + out
	}
	res.Output = out
	res.Injected = err == nil && overlay != ""
	res.Took = time.Since(start)
	if err != nil {
		return res, explainBuildError(err, out)
	}
	if res.Injected && !hasReader(spec.Output) {
		res.Injected, res.Note = false, readerMissing(spec)
	}
	f, err := openOutput(spec.Output)
	if err != nil {
		return res, fmt.Errorf("%w: the build wrote no binary at %s: %v", ErrBuild, spec.Output, err)
	}
	defer f.Close()
	if bi, err := buildinfo.Read(f); err == nil {
		res.GoVersion = bi.GoVersion
		// What the binary says, not what was asked: a build.command may
		// set its own environment.
		res.LeakProfile = hasExperiment(bi, LeakExperiment)
	}
	if spec.LeakProfile && !res.LeakProfile && res.LeakNote == "" {
		res.LeakNote = "the binary was not built with GOEXPERIMENT=" + LeakExperiment + " (a build.command that sets its own environment?)"
	}
	return res, nil
}

func hasExperiment(bi *buildinfo.BuildInfo, name string) bool {
	for _, s := range bi.Settings {
		if s.Key == "GOEXPERIMENT" && slices.Contains(strings.Split(s.Value, ","), name) {
			return true
		}
	}
	return false
}

// experimentMayBeWhy reports whether a build that failed with the leak
// experiment might build without it: always for a build.command (it may
// run a toolchain of its own), and for memgate's own go build only when
// this toolchain refuses the experiment. A service that does not compile
// is then not built a second time for nothing, its error reported as the
// experiment's.
func experimentMayBeWhy(ctx context.Context, spec BuildSpec) bool {
	if spec.Command != "" {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "env", "GOEXPERIMENT")
	cmd.Dir = os.TempDir() // no module of the repository's
	cmd.Env = withEnv(withLeakExperiment(spec).ToolEnv, "GOFLAGS=", "GOTOOLCHAIN=local")
	return cmd.Run() != nil
}

// LeakExperiment is the Go experiment (Go 1.26 on) under which
// runtime/pprof has a "goroutineleak" profile: the goroutines a GC proved
// blocked on something no running goroutine can reach, so never to run
// again. Only the profile's registration depends on it; the detecting GC
// runs when the profile is written, not before.
const LeakExperiment = "goroutineleakprofile"

// withLeakExperiment adds the experiment to the toolchain environment, so
// the standard library's and the dependencies' caches are built with it
// too (the experiment is part of every package's build ID: a seed built
// without it would not be hit), and to build.env's GOEXPERIMENT if the
// repository sets one, which would otherwise replace ours.
func withLeakExperiment(spec BuildSpec) BuildSpec {
	spec.ToolEnv = append(append([]string(nil), spec.ToolEnv...), "GOEXPERIMENT="+LeakExperiment)
	if theirs, ok := spec.Env["GOEXPERIMENT"]; ok {
		env := make(map[string]string, len(spec.Env))
		for k, v := range spec.Env {
			env[k] = v
		}
		env["GOEXPERIMENT"] = strings.TrimPrefix(theirs+","+LeakExperiment, ",")
		spec.Env = env
	}
	return spec
}

// openOutput opens the build's output as memgate, which the build decided
// the nature of: no symlink is followed (it would name a path in memgate's
// view), and nothing but a regular file is accepted (opening a FIFO would
// wait forever for a writer; O_NONBLOCK makes the open itself not wait).
func openOutput(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, errors.New("not a regular file")
	}
	return f, nil
}

// writeOverlay writes the reader and a go build -overlay file adding it to
// the main package's directory (a build.command's: every main package's),
// where the go command sees it.
func writeOverlay(spec BuildSpec) (string, error) {
	dirs, err := readerDirs(spec)
	if err != nil {
		return "", err
	}
	src := filepath.Join(spec.WorkDir, ReaderFile)
	if err := os.WriteFile(src, readerSource, 0o644); err != nil {
		return "", err
	}
	replace := map[string]string{}
	for _, d := range dirs {
		if _, err := os.Lstat(filepath.Join(spec.Dir, d, ReaderFile)); err == nil {
			return "", fmt.Errorf("%s already exists in %s", ReaderFile, filepath.Join(spec.Dir, d))
		}
		abs, err := filepath.Abs(filepath.Join(buildDir(spec), d, ReaderFile))
		if err != nil {
			return "", err
		}
		replace[abs] = src
	}
	data, _ := json.Marshal(map[string]map[string]string{"Replace": replace})
	path := filepath.Join(spec.WorkDir, "overlay.json")
	return path, os.WriteFile(path, data, 0o644)
}

func runBuild(ctx context.Context, spec BuildSpec, overlay string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	if spec.Sandbox != nil {
		return spec.Sandbox.build(ctx, spec, overlay)
	}
	name, args, extra := buildCommand(spec, overlay)
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = buildDir(spec)
	cmd.Env = withEnv(spec.ToolEnv, extra...)
	out := NewTail(64 << 10)
	cmd.Stdout, cmd.Stderr = out, out
	// The go command starts compilers and linkers: stop them all.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return out.String(), fmt.Errorf("%w: timed out after %s", ErrBuild, spec.Timeout)
		}
		if ctxErr := context.Cause(ctx); ctxErr != nil {
			return out.String(), ctxErr
		}
		return out.String(), fmt.Errorf("%w: %v", ErrBuild, err)
	}
	return out.String(), nil
}

// buildCommand is the build's command line, and what it sets in the
// environment (build.env with memgate's GOFLAGS after the config's own).
func buildCommand(spec BuildSpec, overlay string) (string, []string, []string) {
	env := withEnv(gopathEnv(spec), sortedEnv(spec.Env)...)
	if spec.Command != "" {
		command := strings.ReplaceAll(spec.Command, "{{output}}", shellQuote(spec.Output))
		goflags := "-buildvcs=false"
		if overlay != "" {
			goflags += " -overlay=" + overlay
		}
		if own := spec.Env["GOFLAGS"]; own != "" {
			goflags = own + " " + goflags
		}
		return "sh", []string{"-c", command}, withEnv(env, "GOFLAGS="+goflags)
	}
	// No VCS stamping: a gate needs none, and git refuses to read a
	// checkout owned by another user (the build runs as one).
	args := []string{"build", "-buildvcs=false", "-o", spec.Output}
	if overlay != "" {
		args = append(args, "-overlay", overlay)
	}
	args = append(args, vendorMode(spec)...)
	args = append(args, spec.Flags...)
	return "go", append(args, spec.Package), env
}

// vendorMode is -mod=vendor for a module with vendor/modules.txt, unless
// build.flags or build.env's GOFLAGS choose a mode: the go command builds
// from vendor/ by itself only from go 1.14 lines on, and an older module
// (go 1.13 and a committed vendor/, common in real repositories) was
// looked up in the module cache instead and failed without the network.
func vendorMode(spec BuildSpec) []string {
	if !hasVendor(spec) || gopathMode(spec) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(spec.Dir, "go.mod")); err != nil {
		return nil
	}
	for _, f := range append(strings.Fields(spec.Env["GOFLAGS"]), spec.Flags...) {
		if strings.HasPrefix(strings.TrimLeft(f, "-"), "mod=") {
			return nil
		}
	}
	return []string{"-mod=vendor"}
}

func sortedEnv(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

func firstLineWith(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}
