package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/service"
)

// gateContainment is one gate's containment: its scratch directory, its
// users, and the sandboxes its build and service run in.
type gateContainment struct {
	cont   service.Containment
	ids    service.Identities
	dir    string // the source the sandboxes see
	copied string // the original, when dir is a copy of it
	work   string // the gate's scratch directory
	build  *service.BuildSandbox
}

// prepare makes the gate's scratch directory and lays it out for the
// gate's sandboxes; cleanup removes it once they have all ended.
func (r *run) prepare() (g *gateContainment, cleanup func(), err error) {
	dir, err := filepath.Abs(r.opts.Dir)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", service.ErrBuild, err)
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil, nil, fmt.Errorf("%w: %s is not a directory", service.ErrBuild, r.opts.Dir)
	}
	work, err := os.MkdirTemp(r.scratchParent(), "memgate-run-")
	if err != nil {
		return nil, nil, fmt.Errorf("scratch directory: %w", err)
	}
	cleanup = func() { service.RemoveScratch(work) }
	if g, err = r.contain(dir, work); err != nil {
		cleanup()
		return nil, nil, err
	}
	return g, cleanup, nil
}

// contain lays out the scratch directory for the gate's sandboxes.
func (r *run) contain(dir, work string) (*gateContainment, error) {
	cont := r.opts.Containment
	g := &gateContainment{cont: cont, dir: dir, work: work}
	if !cont.Sandboxed {
		if r.opts.RequireContainment {
			return nil, fmt.Errorf("%w: this worker has no sandbox (%s), and memgate does not run a pull request's code without one; the operator must fix the worker (see docs/deploy.md)",
				service.ErrContainment, cont.Why)
		}
		return g, nil
	}
	if cont.Caches == nil {
		return nil, fmt.Errorf("%w: no cache directory was prepared", service.ErrContainment)
	}
	g.ids = cont.NewIdentities()
	if cont.Root {
		// The sandboxes' users must reach their directories (not list
		// what is beside them); the scratch directory is memgate's own.
		os.Chmod(work, 0o711)
		if r.opts.OwnsDir {
			os.Chmod(dir, 0o755)
		}
		if !service.Traversable(dir) {
			// A user's own directory is never opened up: the gate builds
			// a copy of it in its scratch directory (no symlink followed).
			if err := r.copySource(g, dir, work); err != nil {
				return nil, err
			}
		}
	}
	inject := filepath.Join(work, "inject")
	if err := os.Mkdir(inject, 0o755); err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	g.build = &service.BuildSandbox{Containment: cont, Identity: g.ids.Build, Scratch: work, Tenant: r.opts.Tenant}
	return g, nil
}

// scratchParent is where the gate's scratch directory goes: the caller's
// work directory, unless a root memgate's sandbox users could not walk
// through it (a private temp directory), then the system's.
func (r *run) scratchParent() string {
	parent := r.opts.WorkDir
	if parent == "" {
		parent = os.TempDir()
	}
	if cont := r.opts.Containment; cont.Sandboxed && cont.Root && !service.Traversable(parent) {
		return os.TempDir()
	}
	return parent
}

// copySource copies dir into the scratch directory for the sandboxes'
// users, who cannot reach it where it is.
func (r *run) copySource(g *gateContainment, dir, work string) error {
	if b := r.opts.Config.Build; b.Command == "" && b.ImportPath == "" && !service.WorkspaceLayout(dir, b.Package, "") {
		if _, err := os.Stat(filepath.Join(dir, b.Package, "go.mod")); err != nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
				return service.NotAModule(dir)
			}
		}
	}
	cp := filepath.Join(work, "src")
	if err := service.CopyTree(dir, cp); err != nil {
		return fmt.Errorf("%w: copy %s where the sandbox's users can read it: %v", service.ErrContainment, dir, err)
	}
	g.dir, g.copied = cp, dir
	return nil
}

func (g *gateContainment) buildSpec(cfg config.Config, toolEnv []string) service.BuildSpec {
	spec := service.BuildSpec{
		Dir: g.dir, Package: cfg.Build.Package, Command: cfg.Build.Command, Flags: cfg.Build.Flags,
		Env: cfg.Build.Env, Timeout: cfg.Build.Timeout, Output: filepath.Join(g.work, "service"),
		Inject: cfg.Pprof.Mode != "service", WorkDir: g.work, ToolEnv: toolEnv, ImportPath: cfg.Build.ImportPath,
		Workspace: cfg.Build.Command == "" && service.WorkspaceLayout(g.dir, cfg.Build.Package, cfg.Build.ImportPath),
		// The runtime's proof of goroutine leaks, read at the gate's end.
		LeakProfile: true,
	}
	if g.build != nil {
		spec.Output = filepath.Join(g.work, "out", "service")
		spec.WorkDir = filepath.Join(g.work, "inject")
		spec.Sandbox = g.build
	}
	return spec
}

// limits are the service's: a sandbox of its own seeing its binary and its
// source (with what the build wrote on top), read-only.
func (g *gateContainment) limits(cfg config.Config) (service.Limits, error) {
	l := service.Limits{MemoryBytes: uint64(cfg.Run.MemoryLimit), Processes: cfg.Run.MaxProcesses,
		FileSizeBytes: uint64(cfg.Run.MaxFileSize)}
	if g.build == nil {
		return l, nil
	}
	root := filepath.Join(g.work, "root-service")
	if err := os.Mkdir(root, 0o755); err != nil {
		return l, fmt.Errorf("scratch directory: %w", err)
	}
	sb := &service.ServiceSandbox{
		Identity: g.ids.Service, Root: root,
		Binds:       []service.Bind{{Source: filepath.Join(g.work, "out")}},
		Overlays:    []service.Overlay{{Target: g.dir, Lowers: []string{g.build.SourceUpper(), g.dir}}},
		HostNetwork: cfg.Run.Network == "host",
	}
	if !g.cont.Root && !sb.HostNetwork {
		sb.Relay = filepath.Join(g.work, "relay.sock")
	}
	l.Sandbox = sb
	return l, nil
}

func (g *gateContainment) buildNote() string {
	if !g.cont.Sandboxed {
		why := g.cont.Why
		if why == "" {
			why = "containment turned off"
		}
		return "UNCONTAINED (" + why + "): build and service run as memgate's own user; "
	}
	if g.copied != "" {
		return "built from a copy of " + g.copied + " (the sandbox's users cannot reach it), in a sandbox as a user of its own, without network (modules fetched first, by the go command alone); "
	}
	if g.cont.Root {
		return "built in a sandbox as a user of its own, without network (modules fetched first, by the go command alone); "
	}
	return "built in a sandbox without network (modules fetched first, by the go command alone); "
}

// keepVars keeps the named variables of env.
func keepVars(env []string, names ...string) []string {
	var out []string
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		for _, n := range names {
			if k == n {
				out = append(out, kv)
			}
		}
	}
	return out
}
