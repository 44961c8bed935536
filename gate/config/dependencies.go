package config

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Dependency is a program started before the service, in the service's
// sandbox (same loopback network), stopped with it: a database, a cache,
// a stub of an upstream API. Exactly one of Kind, Package and Program says
// what it is.
type Dependency struct {
	// Kind is a ready-made recipe: "redis" (redis-server) or "postgres"
	// (a throwaway cluster: initdb, then postgres, in the gate's memory).
	Kind string `yaml:"kind"`
	// Package is a main package of the repository (relative to the service
	// directory, like build.package), built contained like the service.
	Package string `yaml:"package"`
	// Program is a program installed on the worker, by name: looked up on
	// the worker's system PATH (under /usr), never a path.
	Program string `yaml:"program"`
	// Args and Env are the program's; {{port}} is its port. A kind takes
	// none of its own args.
	Args []string          `yaml:"args"`
	Env  map[string]string `yaml:"env"`
	// Readiness: when it can serve; by default its port accepts a
	// connection (a kind knows better).
	Readiness DependencyReadiness `yaml:"readiness"`
	// Timeout to become ready.
	Timeout time.Duration `yaml:"timeout"`
	// MemoryLimit caps its memory, counted apart from the service's.
	MemoryLimit Bytes `yaml:"memory_limit"`
	// Port, when set, is the port it listens on inside the sandbox's own
	// network, for a service that hard-codes it (localhost:5432); by
	// default memgate picks one.
	Port int `yaml:"port"`
}

// PostgresIdentifier is what POSTGRES_USER and POSTGRES_DB may be for
// kind postgres: a plain SQL identifier, so memgate's own commands can
// use it without quoting anything.
var PostgresIdentifier = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// DependencyReadiness is one of: tcp (the port accepts a connection), http
// (GET path answers below 500), command (exits 0, run in the sandbox).
type DependencyReadiness struct {
	TCP     bool     `yaml:"tcp"`
	HTTP    string   `yaml:"http"`
	Command []string `yaml:"command"`
}

// DependencyKinds are the ready-made recipes.
var DependencyKinds = []string{"postgres", "redis"}

// MaxDependencies bounds how many a gate starts.
const MaxDependencies = 8

// MaxDependencyTimeout bounds the wait for one dependency to be ready
// (a throwaway Postgres is ready in seconds). Each wait counts towards the
// gate's worst case, which must fit the server's job timeout.
const MaxDependencyTimeout = 10 * time.Minute

var (
	dependencyNameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)
	programNameRe    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	placeholderRe    = regexp.MustCompile(`\{\{dep\.([^.}]*)\.([^}]*)\}\}`)
)

// DependencyNames are the declared dependencies, in the order they start:
// a dependency whose args or env name another ({{dep.db.addr}}: a stub of
// an upstream that needs its own database) starts after it; otherwise by
// name. A config whose dependencies name each other in a circle is refused
// (validateDependencies); here its circle comes last, by name.
func (c Config) DependencyNames() []string {
	order, _ := c.dependencyOrder()
	return order
}

// dependencyOrder sorts the dependencies so each starts after those it
// names, and returns the first one left in a circle (or naming itself).
func (c Config) dependencyOrder() (order []string, circular string) {
	names := make([]string, 0, len(c.Dependencies))
	for n := range c.Dependencies {
		names = append(names, n)
	}
	sort.Strings(names)
	started := map[string]bool{}
	for len(order) < len(names) {
		next := ""
		for _, n := range names {
			if !started[n] && allStarted(c.Dependencies[n].names(), started) {
				next = n
				break
			}
		}
		if next == "" { // a circle: the rest by name
			for _, n := range names {
				if !started[n] {
					if circular == "" {
						circular = n
					}
					order = append(order, n)
					started[n] = true
				}
			}
			break
		}
		order = append(order, next)
		started[next] = true
	}
	return order, circular
}

func allStarted(names []string, started map[string]bool) bool {
	for _, n := range names {
		if !started[n] {
			return false
		}
	}
	return true
}

// names are the dependencies d's args, env and readiness command name.
func (d Dependency) names() []string {
	var out []string
	add := func(v string) {
		for _, m := range placeholderRe.FindAllStringSubmatch(v, -1) {
			if !slices.Contains(out, m[1]) {
				out = append(out, m[1])
			}
		}
	}
	for _, a := range d.Args {
		add(a)
	}
	for _, v := range d.Env {
		add(v)
	}
	for _, a := range d.Readiness.Command {
		add(a)
	}
	return out
}

// withDependencyDefaults fills what a dependency left out.
func (c *Config) withDependencyDefaults() {
	for n, d := range c.Dependencies {
		if d.Timeout == 0 {
			d.Timeout = 60 * time.Second
		}
		if d.MemoryLimit == 0 {
			d.MemoryLimit = 512 << 20
		}
		c.Dependencies[n] = d
	}
}

func (c Config) validateDependencies() error {
	if len(c.Dependencies) > MaxDependencies {
		return keyErr(fmt.Sprintf("at most %d dependencies", MaxDependencies), "dependencies")
	}
	order, circular := c.dependencyOrder()
	for _, n := range order {
		d := c.Dependencies[n]
		if err := d.validate(n); err != nil {
			return err
		}
		for i, a := range d.Args {
			if err := c.checkPlaceholders(a, "dependencies", n, "args", strconv.Itoa(i)); err != nil {
				return err
			}
		}
		for k, v := range d.Env {
			if err := c.checkPlaceholders(v, "dependencies", n, "env", k); err != nil {
				return err
			}
		}
		for i, a := range d.Readiness.Command {
			if err := c.checkPlaceholders(a, "dependencies", n, "readiness", "command", strconv.Itoa(i)); err != nil {
				return err
			}
		}
	}
	if err := c.checkDependencyPorts(order); err != nil {
		return err
	}
	if circular != "" {
		return keyErr(fmt.Sprintf("%s names %s, and they cannot all start first: a dependency can only name dependencies that start before it (no circle, not itself)",
			circular, strings.Join(c.Dependencies[circular].names(), ", ")), "dependencies", circular)
	}
	for k, v := range c.Run.Env {
		if err := c.checkPlaceholders(v, "run", "env", k); err != nil {
			return err
		}
	}
	for i, a := range c.Run.Args {
		if err := c.checkPlaceholders(a, "run", "args", strconv.Itoa(i)); err != nil {
			return err
		}
	}
	for i, t := range c.Load.Targets {
		if err := c.checkPlaceholders(t.Path, "load", "targets", strconv.Itoa(i), "path"); err != nil {
			return err
		}
		for k, v := range t.Headers {
			if err := c.checkPlaceholders(v, "load", "targets", strconv.Itoa(i), "headers", k); err != nil {
				return err
			}
		}
		if err := c.checkPlaceholders(t.Body, "load", "targets", strconv.Itoa(i), "body"); err != nil {
			return err
		}
	}
	return nil
}

func (d Dependency) validate(name string) error {
	key := func(k ...string) []string { return append([]string{"dependencies", name}, k...) }
	set := 0
	for _, s := range []string{d.Kind, d.Package, d.Program} {
		if s != "" {
			set++
		}
	}
	switch {
	case !dependencyNameRe.MatchString(name):
		return keyErr("a dependency's name is lower case letters, digits and _, starting with a letter (it is used in {{dep.NAME.port}})", key()...)
	case set != 1:
		return keyErr("set exactly one of kind (redis, postgres), package (a main package of the repository) or program (a program installed on the worker)", key()...)
	case d.Kind != "" && !slices.Contains(DependencyKinds, d.Kind):
		return keyErr(fmt.Sprintf("unknown kind %q: one of %s", d.Kind, strings.Join(DependencyKinds, ", ")), key("kind")...)
	case d.Kind != "" && len(d.Args) > 0:
		return keyErr("a kind takes no args: memgate starts "+d.Kind+" itself", key("args")...)
	case d.Package != "" && !packagePath(d.Package):
		return keyErr(fmt.Sprintf("%q must be a directory of the repository: relative, starting with ./, without ..", d.Package), key("package")...)
	case d.Program != "" && !programNameRe.MatchString(d.Program):
		return keyErr(fmt.Sprintf("%q must be the name of a program installed on the worker (no path): it is looked up on the worker's system PATH", d.Program), key("program")...)
	case d.Port < 0 || d.Port > 65535:
		return keyErr("must be a port, 1 to 65535", key("port")...)
	case d.Timeout < 0:
		return keyErr("must be > 0", key("timeout")...)
	case d.Timeout > MaxDependencyTimeout:
		return keyErr(fmt.Sprintf("at most %s: a dependency that takes longer to be ready is not one a gate can wait for", MaxDependencyTimeout), key("timeout")...)
	}
	if d.Kind == "postgres" {
		for _, k := range []string{"POSTGRES_USER", "POSTGRES_DB"} {
			if v, ok := d.Env[k]; ok && !PostgresIdentifier.MatchString(v) {
				return keyErr(fmt.Sprintf("%q must be a plain identifier (lower case letters, digits and _, starting with a letter or _)", v), key("env", k)...)
			}
		}
	}
	checks := 0
	if d.Readiness.TCP {
		checks++
	}
	if d.Readiness.HTTP != "" {
		checks++
		if !strings.HasPrefix(d.Readiness.HTTP, "/") {
			return keyErr("must start with /", key("readiness", "http")...)
		}
	}
	if len(d.Readiness.Command) > 0 {
		checks++
		if !programNameRe.MatchString(d.Readiness.Command[0]) {
			return keyErr(fmt.Sprintf("%q must be the name of a program on the worker or of the dependency's directory (no path)", d.Readiness.Command[0]), key("readiness", "command")...)
		}
	}
	if checks > 1 {
		return keyErr("give one of tcp, http or command", key("readiness")...)
	}
	return nil
}

// checkDependencyPorts: a fixed port needs the sandbox's own network (on
// the host's it could be anything's), and is no other dependency's nor
// the service's.
func (c Config) checkDependencyPorts(order []string) error {
	taken := map[int]string{}
	if c.Run.Port != 0 {
		taken[c.Run.Port] = "run.port"
	}
	for _, n := range order {
		p := c.Dependencies[n].Port
		if p == 0 {
			continue
		}
		if c.Run.Network == "host" {
			return keyErr("a fixed port needs the sandbox's own network: with run.network: host it is the machine's, where anything may hold it", "dependencies", n, "port")
		}
		if other, ok := taken[p]; ok {
			return keyErr(fmt.Sprintf("%d is %s's too", p, other), "dependencies", n, "port")
		}
		taken[p] = "dependencies." + n + ".port"
	}
	return nil
}

// packagePath: "./dir" inside the repository.
func packagePath(p string) bool {
	return (p == "." || strings.HasPrefix(p, "./")) && !slices.Contains(strings.Split(p, "/"), "..")
}

// DependencyPlaceholders are what {{dep.NAME.X}} may name.
var DependencyPlaceholders = []string{"port", "addr", "url"}

func (c Config) checkPlaceholders(v string, path ...string) error {
	for _, m := range placeholderRe.FindAllStringSubmatch(v, -1) {
		d, ok := c.Dependencies[m[1]]
		switch {
		case !ok:
			return keyErr(fmt.Sprintf("%s names no dependency: declare %q under dependencies", m[0], m[1]), path...)
		case !slices.Contains(DependencyPlaceholders, m[2]):
			return keyErr(fmt.Sprintf("%s: a dependency gives port, addr (127.0.0.1:port) and, for a kind, url", m[0]), path...)
		case m[2] == "url" && d.Kind == "":
			return keyErr(fmt.Sprintf("%s: only a kind (redis, postgres) has a url; use {{dep.%s.addr}}", m[0], m[1]), path...)
		}
	}
	return nil
}
