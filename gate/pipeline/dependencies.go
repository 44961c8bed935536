package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/sandbox"
	"github.com/memgate/memgate/gate/service"
)

// The dependencies stage: the service's declared dependencies (a database,
// a cache, a stub of an upstream API) start in the service's own sandbox
// before it, each on a port of its own that the service is told through
// {{dep.NAME.port}}, {{dep.NAME.addr}} and {{dep.NAME.url}}; the service
// starts when every one is ready, and they end with it.

// gateDependencies are the dependencies as this gate runs them.
type gateDependencies struct {
	specs []service.Dependency
	binds []service.Bind    // the repository's dependencies' binaries
	vars  map[string]string // {{dep.NAME.X}} → value
	used  map[int]bool      // the ports taken, the service's own if fixed
	// memory and processes are the dependencies' share of the sandbox.
	memory, processes uint64
}

// perDependencyProcesses is each dependency's share of the sandbox's
// tasks (a Postgres has a dozen processes and one per connection).
const perDependencyProcesses = 256

// dependencies finds each dependency's program (building the
// repository's), picks its port and says how the service names it.
func (r *run) dependencies(ctx context.Context, g *gateContainment) (*gateDependencies, error) {
	cfg := r.opts.Config
	used := map[int]bool{}
	if cfg.Run.Port != 0 {
		used[cfg.Run.Port] = true
	}
	d := &gateDependencies{vars: map[string]string{}, used: used}
	if len(cfg.Dependencies) == 0 {
		return d, nil
	}
	if g.build == nil {
		return nil, fmt.Errorf("%w: dependencies run only in the service's sandbox, and this machine cannot make one (%s; see memgate doctor)", service.ErrDependency, g.cont.Why)
	}
	path := workerPath()
	for _, dc := range cfg.Dependencies {
		if dc.Port != 0 {
			used[dc.Port] = true // fixed: no other takes it
		}
	}
	for _, name := range cfg.DependencyNames() {
		dc := cfg.Dependencies[name]
		port := dc.Port
		if port == 0 {
			var err error
			if port, err = freePortBut(used); err != nil {
				return nil, err
			}
		}
		spec := service.Dependency{Name: name, Port: port, Timeout: dc.Timeout, Ready: readinessOf(dc.Readiness)}
		url := ""
		var err error
		switch {
		case dc.Kind != "":
			url, err = kindRecipe(&spec, dc.Kind, dc.Env, path)
			spec.What = "kind " + dc.Kind + ": " + filepath.Base(spec.Program)
		case dc.Program != "":
			spec.Program, err = resolveProgram("dependencies."+name+".program", dc.Program, path)
			spec.What = "the worker's " + spec.Program
			if err == nil {
				spec.Args = expandAll(dc.Args, port, d.vars)
			}
		default:
			spec.Program, err = r.buildDependency(ctx, g, name, dc.Package)
			spec.What = "the repository's " + dc.Package
			if err == nil {
				spec.Args = expandAll(dc.Args, port, d.vars)
				d.binds = append(d.binds, service.Bind{Source: filepath.Dir(spec.Program)})
			}
		}
		if err != nil {
			return nil, err
		}
		if c := dc.Readiness.Command; len(c) > 0 {
			prog, err := resolveProgram("dependencies."+name+".readiness.command", c[0], path)
			if err != nil {
				return nil, err
			}
			spec.Ready.Command = append([]string{prog}, expandAll(c[1:], port, d.vars)...)
		}
		spec.Env = dependencyEnv(path, port, dc.Env, d.vars)
		d.specs = append(d.specs, spec)
		d.memory += uint64(dc.MemoryLimit)
		d.processes += perDependencyProcesses
		addr := "127.0.0.1:" + strconv.Itoa(port)
		d.vars["{{dep."+name+".port}}"] = strconv.Itoa(port)
		d.vars["{{dep."+name+".addr}}"] = addr
		if url != "" {
			d.vars["{{dep."+name+".url}}"] = url
		}
	}
	return d, nil
}

func readinessOf(r config.DependencyReadiness) service.DependencyReadiness {
	return service.DependencyReadiness{TCP: r.TCP, HTTPPath: r.HTTP}
}

// kindRecipe fills a ready-made dependency and returns its URL. A
// postgres takes POSTGRES_USER and POSTGRES_DB from its env, as the
// official image does (validated as plain identifiers by config).
func kindRecipe(spec *service.Dependency, kind string, env map[string]string, path []string) (string, error) {
	key := "dependencies." + spec.Name + ".kind"
	port := strconv.Itoa(spec.Port)
	dir := sandbox.CompanionsDir + "/" + spec.Name
	var err error
	resolve := func(name string) string {
		if err != nil {
			return ""
		}
		var p string
		p, err = resolveProgram(key+" ("+kind+")", name, path)
		return p
	}
	switch kind {
	case "redis":
		spec.Program = resolve("redis-server")
		spec.Before = [][]string{{resolve("mkdir"), "-p", dir}}
		// In memory only, on loopback, in the foreground.
		spec.Args = []string{"--port", port, "--bind", "127.0.0.1", "--protected-mode", "no", "--save", "",
			"--appendonly", "no", "--dir", dir, "--daemonize", "no", "--logfile", ""}
		return "redis://127.0.0.1:" + port + "/0", err
	case "postgres":
		// A throwaway cluster in the dependencies' tmpfs: trust on
		// loopback, no durability, no unix socket (there is no directory
		// for one).
		data := dir + "/data"
		user, db := cmp.Or(env["POSTGRES_USER"], "postgres"), cmp.Or(env["POSTGRES_DB"], env["POSTGRES_USER"], "postgres")
		spec.Before = [][]string{{resolve("initdb"), "-D", data, "-U", user, "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync"}}
		if db != "postgres" {
			// Made before the server starts, in single-user mode: the
			// service may connect the moment the port opens.
			spec.Before = append(spec.Before, []string{resolve("sh"), "-c",
				`echo "CREATE DATABASE $1" | "$2" --single -D "$3" -c dynamic_shared_memory_type=sysv postgres >/dev/null`,
				"sh", db, resolve("postgres"), data})
		}
		spec.Program = resolve("postgres")
		spec.Args = []string{"-D", data, "-p", port, "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
			"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "shared_buffers=32MB",
			"-c", "dynamic_shared_memory_type=sysv", "-c", "max_connections=100"}
		if !spec.Ready.TCP && spec.Ready.HTTPPath == "" {
			// Its port opens before it accepts sessions.
			if isready, e := resolveProgram(key, "pg_isready", path); e == nil {
				spec.Ready.Command = []string{isready, "-q", "-h", "127.0.0.1", "-p", port, "-U", user, "-d", db, "-t", "1"}
			}
		}
		return "postgres://" + user + "@127.0.0.1:" + port + "/" + db + "?sslmode=disable", err
	}
	return "", fmt.Errorf("%w: %s: unknown kind %q", service.ErrDependency, key, kind)
}

// workerPath is where worker programs are found: the system's directories,
// which every sandbox sees read-only at the same paths, the newest
// PostgreSQL's first (Debian keeps initdb there, off PATH).
func workerPath() []string {
	pg, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(p string) int {
		n, _ := strconv.Atoi(strings.Split(filepath.Base(filepath.Dir(p)), ".")[0])
		return n
	}
	sort.Slice(pg, func(i, j int) bool { return version(pg[i]) > version(pg[j]) })
	return append(pg, "/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")
}

// resolveProgram finds a worker's program by name on path, and only where
// every sandbox sees it (under /usr, /bin, /sbin, whatever links lead
// there): never a path the config names.
func resolveProgram(key, name string, path []string) (string, error) {
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("%w: %s: %q must be a program's name, not a path", service.ErrDependency, key, name)
	}
	for _, dir := range path {
		p := filepath.Join(dir, name)
		st, err := os.Stat(p)
		if err != nil || !st.Mode().IsRegular() || st.Mode()&0o111 == 0 {
			continue
		}
		real, err := filepath.EvalSymlinks(p)
		if err != nil || !inSandboxView(real) {
			continue
		}
		return p, nil
	}
	return "", fmt.Errorf("%w: %s: %s is not installed on this worker (looked in %s); the worker image must provide it (docs/deploy.md)",
		service.ErrDependency, key, name, strings.Join(path, ":"))
}

func inSandboxView(p string) bool {
	for _, d := range []string{"/usr/", "/bin/", "/sbin/", "/lib/"} {
		if strings.HasPrefix(p, d) {
			return true
		}
	}
	return false
}

// buildDependency builds a main package of the repository, contained like
// the service, in a scratch directory of its own; it returns the binary.
func (r *run) buildDependency(ctx context.Context, g *gateContainment, name, pkg string) (string, error) {
	cfg := r.opts.Config
	scratch := filepath.Join(g.work, "dep-"+name)
	if err := os.Mkdir(scratch, 0o711); err != nil {
		return "", fmt.Errorf("scratch directory: %w", err)
	}
	r.phase("build", "dependency "+name+" ("+pkg+")")
	built, err := service.Build(ctx, service.BuildSpec{
		Dir: g.dir, Package: pkg, Flags: cfg.Build.Flags, Env: cfg.Build.Env, Timeout: cfg.Build.Timeout,
		Output: filepath.Join(scratch, "out", name), WorkDir: scratch, ToolEnv: r.opts.ToolEnv,
		Sandbox: &service.BuildSandbox{Containment: g.cont, Identity: g.ids.Build, Scratch: scratch, Tenant: r.opts.Tenant},
	})
	r.report.Timings.Build += gate.Duration(built.Took)
	if err != nil {
		r.report.BuildOutput = service.LastLines(built.Output, 60)
		return "", fmt.Errorf("dependencies.%s.package %s: %w", name, pkg, err)
	}
	return built.Binary, nil
}

// dependencyEnv is a dependency's whole environment.
func dependencyEnv(path []string, port int, extra, vars map[string]string) []string {
	env := []string{"PATH=" + strings.Join(path, ":"), "HOME=/home/sandbox", "TMPDIR=/tmp", "USER=sandbox", "LANG=C",
		"PORT=" + strconv.Itoa(port)}
	keys := make([]string, 0, len(extra))
	for k := range extra {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+expand(extra[k], port, vars))
	}
	return env
}

// expandAll fills a dependency's {{port}} and the {{dep.NAME.X}} of the
// dependencies started before it (config orders them so).
func expandAll(args []string, port int, vars map[string]string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = expand(a, port, vars)
	}
	return out
}

func expand(v string, port int, vars map[string]string) string {
	v = strings.ReplaceAll(v, "{{port}}", strconv.Itoa(port))
	for k, x := range vars {
		v = strings.ReplaceAll(v, k, x)
	}
	return v
}

// freePortBut picks a free loopback port none of the gate's has.
func freePortBut(used map[int]bool) (int, error) {
	for range 20 {
		p, err := service.FreePort()
		if err != nil {
			return 0, err
		}
		if !used[p] {
			used[p] = true
			return p, nil
		}
	}
	return 0, errors.New("find a free port: the kernel kept giving used ones")
}

// ports are the ones the dependencies have (and run.port).
func (d *gateDependencies) ports() map[int]bool {
	if d == nil {
		return map[int]bool{}
	}
	return d.used
}

// list is what the service's sandbox starts first.
func (d *gateDependencies) list() []service.Dependency {
	if d == nil {
		return nil
	}
	return d.specs
}

// dependencyCause reports an error caused by a dependency's end (a
// cancelled load or read) as that end.
func dependencyCause(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, service.ErrDependency) {
		return cause
	}
	return err
}

// apply gives the service's limits the dependencies' share and binds.
func (d *gateDependencies) apply(l service.Limits) service.Limits {
	if d == nil || len(d.specs) == 0 {
		return l
	}
	l.DependencyMemoryBytes, l.DependencyProcesses = d.memory, d.processes
	if l.Sandbox != nil {
		sb := *l.Sandbox
		sb.Binds = append(append([]service.Bind(nil), sb.Binds...), d.binds...)
		l.Sandbox = &sb
	}
	return l
}

// expand replaces {{port}} and the dependencies' placeholders.
func (d *gateDependencies) expand(s string, port int) string {
	if d == nil {
		return expand(s, port, nil)
	}
	return expand(s, port, d.vars)
}

// startDependencies waits for every dependency to be ready, then starts
// the service; from then on, a dependency that ends ends the gate.
func (r *run) startDependencies(ctx context.Context, cancel context.CancelCauseFunc, proc *service.Process) error {
	if len(proc.Dependencies()) > 0 {
		r.phase("dependencies", fmt.Sprintf("%d starting", len(proc.Dependencies())))
		if err := proc.WaitDependencies(ctx); err != nil {
			return err
		}
		go func() {
			select {
			case d := <-proc.DependencyGone():
				cancel(fmt.Errorf("%w: %v during the run; its output:\n%s", service.ErrDependency, d.Exited(), d.Output().LastLines(20)))
			case <-ctx.Done():
			}
		}()
	}
	return proc.StartService()
}

// reportDependencies records each dependency, its output apart.
func (r *run) reportDependencies(proc *service.Process) {
	for _, d := range proc.Dependencies() {
		r.report.Dependencies = append(r.report.Dependencies, gate.Dependency{
			Name: d.Name, Program: d.What, Port: d.Port, ReadyAfter: gate.Duration(d.ReadyAfter()),
			PeakMemoryBytes: d.PeakMemory(), Output: d.Output().LastLines(40),
		})
	}
}

// KindPrograms says, for each ready-made kind, where this worker has its
// programs or which one it lacks: for memgate doctor.
func KindPrograms() map[string]string {
	path := workerPath()
	out := map[string]string{}
	for kind, names := range map[string][]string{"redis": {"redis-server"}, "postgres": {"initdb", "postgres", "pg_isready"}} {
		var found []string
		for _, n := range names {
			p, err := resolveProgram("", n, path)
			if err != nil {
				found = []string{"not available: " + n + " is not installed"}
				break
			}
			found = append(found, p)
		}
		out[kind] = strings.Join(found, " ")
	}
	return out
}
