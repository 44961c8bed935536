package service

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/gate/sandbox"
)

// ErrDependency is wrapped when a declared dependency (a database, a
// cache, a stub of an upstream API) cannot be had: not installed, not
// ready in time, or gone during the run.
var ErrDependency = errors.New("dependency failed")

// Dependency is a program started before the service in the service's
// sandbox (same network, pid and mount namespaces, same limits), reached
// by the service on its loopback port.
type Dependency struct {
	Name    string
	What    string // what it is, for the report
	Program string // a name on the sandbox's PATH, or a path inside
	Args    []string
	Env     []string
	Before  [][]string // run to completion first (initdb)
	Port    int
	Ready   DependencyReadiness
	Timeout time.Duration // to become ready
}

// DependencyReadiness is when a dependency can serve: its port accepts a
// connection (TCP), answers GET HTTPPath below 500, or Command exits 0
// inside the sandbox.
type DependencyReadiness struct {
	TCP      bool
	HTTPPath string
	Command  []string
}

// DependencyProcess is one running dependency, seen from memgate.
type DependencyProcess struct {
	Dependency
	out *Tail

	mu       sync.Mutex
	exited   *sandbox.Event // how it ended, once it did
	pids     map[int]bool   // its processes' pids inside the sandbox
	checks   chan int       // readiness commands' exit codes
	peakUsed uint64         // the most memory the watchdog saw it hold
	ready    time.Duration
}

// Output is the tail of what the dependency wrote, apart from the service.
func (d *DependencyProcess) Output() *Tail { return d.out }

// ReadyAfter is how long it took to become ready.
func (d *DependencyProcess) ReadyAfter() time.Duration { return d.ready }

// PeakMemory is the most resident and tmpfs memory the dependencies held
// together when the watchdog looked (0: it did not look).
func (d *DependencyProcess) PeakMemory() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.peakUsed
}

// Exited says how it ended, or nil while it runs.
func (d *DependencyProcess) Exited() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exited == nil {
		return nil
	}
	e := d.exited
	what := d.describe()
	if e.Step == "before" {
		what = e.Detail
	}
	msg := fmt.Sprintf("exited with status %d", e.Status)
	if e.Status > 128 {
		msg = fmt.Sprintf("was killed by signal %d", e.Status-128)
	}
	if e.Status == 127 && e.Detail != "" && e.Step == "program" {
		msg = e.Detail
	}
	return fmt.Errorf("%s (%s) %s", d.Name, what, msg)
}

func (d *DependencyProcess) describe() string {
	if d.What != "" {
		return d.What
	}
	return d.Program
}

// companions are the dependencies as the sandbox starts them.
func companions(deps []*DependencyProcess, dir string) []sandbox.Companion {
	var out []sandbox.Companion
	for _, d := range deps {
		out = append(out, sandbox.Companion{Name: d.Name, Path: d.Program, Args: d.Args, Env: d.Env, Dir: dir,
			Before: d.Before, Check: d.Ready.Command, Output: d.out})
	}
	return out
}

func newDependencyProcesses(deps []Dependency) []*DependencyProcess {
	var out []*DependencyProcess
	for _, d := range deps {
		out = append(out, &DependencyProcess{Dependency: d, out: NewTail(64 << 10), pids: map[int]bool{}, checks: make(chan int, 1)})
	}
	return out
}

// followEvents keeps each dependency's state from the sandbox's events;
// the first exit of one is sent on gone.
func (p *Process) followEvents(events <-chan sandbox.Event) {
	byName := map[string]*DependencyProcess{}
	for _, d := range p.deps {
		byName[d.Name] = d
	}
	for e := range events {
		if e.Kind == "main" {
			p.mu.Lock()
			p.mainInside = e.Pid
			p.mu.Unlock()
			continue
		}
		d := byName[e.Name]
		if d == nil {
			continue
		}
		switch e.Kind {
		case "started":
			d.mu.Lock()
			d.pids[e.Pid] = true
			d.mu.Unlock()
		case "checked":
			select {
			case d.checks <- e.Status:
			default:
			}
		case "exited":
			d.mu.Lock()
			if d.exited == nil {
				ev := e
				d.exited = &ev
			}
			d.mu.Unlock()
			select {
			case p.depGone <- d:
			default:
			}
		}
	}
}

// Dependencies are the service's dependencies, in the order they start.
func (p *Process) Dependencies() []*DependencyProcess { return p.deps }

// DependencyGone hears of the first dependency that ended.
func (p *Process) DependencyGone() <-chan *DependencyProcess { return p.depGone }

// WaitDependencies starts the dependencies one at a time, in order, each
// once the one before is ready (so one can use another it names), each
// ready within its timeout; the error names the one that was not, with
// the tail of its output.
func (p *Process) WaitDependencies(ctx context.Context) error {
	for i, d := range p.deps {
		start := time.Now()
		if err := p.sandbox.StartCompanion(i); err != nil {
			return p.controlFailed(ErrDependency, "starting dependency "+d.Name, err)
		}
		if err := p.waitDependency(ctx, i, d); err != nil {
			return fmt.Errorf("%w: %v; its output:\n%s", ErrDependency, err, d.out.LastLines(20))
		}
		d.ready = time.Since(start)
	}
	return nil
}

func (p *Process) waitDependency(ctx context.Context, i int, d *DependencyProcess) error {
	ctx, cancel := context.WithTimeout(ctx, d.Timeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	last := "not checked yet"
	for {
		if err := d.Exited(); err != nil {
			return fmt.Errorf("dependency %v before becoming ready", err)
		}
		ok, why := p.checkDependency(ctx, i, d)
		if ok {
			return nil
		}
		if why != "" {
			last = why
		}
		select {
		case <-ctx.Done():
			if err := d.Exited(); err != nil {
				return fmt.Errorf("dependency %v before becoming ready", err)
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("dependency %s (%s) not ready after %s: %s", d.Name, d.describe(), d.Timeout, last)
			}
			return ctx.Err()
		case <-p.done:
			return fmt.Errorf("the sandbox ended before dependency %s was ready (%v)", d.Name, p.ExitError())
		case <-tick.C:
		}
	}
}

// checkDependency tries the dependency's readiness once.
func (p *Process) checkDependency(ctx context.Context, i int, d *DependencyProcess) (bool, string) {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(d.Port))
	dial := p.dial
	if dial == nil {
		var dl net.Dialer
		dial = dl.DialContext
	}
	switch {
	case len(d.Ready.Command) > 0:
		if err := p.sandbox.Check(i); err != nil {
			return false, err.Error()
		}
		select {
		case st := <-d.checks:
			if st == 0 {
				return true, ""
			}
			return false, fmt.Sprintf("%s exited with status %d", strings.Join(d.Ready.Command, " "), st)
		case <-ctx.Done():
			return false, ""
		}
	case d.Ready.HTTPPath != "":
		client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true, MaxResponseHeaderBytes: 1 << 20},
			CheckRedirect: probe.SameHostRedirects}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+d.Ready.HTTPPath, nil)
		resp, err := client.Do(req)
		if err != nil {
			return false, unlessGaveUp(ctx, err.Error())
		}
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if resp.StatusCode < 500 {
			return true, ""
		}
		return false, "GET " + d.Ready.HTTPPath + " answered " + resp.Status
	default:
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := dial(dctx, "tcp", addr)
		if err != nil {
			return false, unlessGaveUp(ctx, "tcp "+addr+": "+err.Error())
		}
		c.Close()
		return true, ""
	}
}

// unlessGaveUp drops the reason of an attempt cut short by the wait's own
// end: the one before says why the dependency was not ready.
func unlessGaveUp(ctx context.Context, why string) string {
	if ctx.Err() != nil {
		return ""
	}
	return why
}

// StartService starts the service in its sandbox once its dependencies
// are ready (without dependencies it started at once).
func (p *Process) StartService() error {
	if p.sandbox == nil || len(p.deps) == 0 {
		return nil
	}
	if err := p.sandbox.StartMain(); err != nil {
		return p.controlFailed(ErrService, "starting the service", err)
	}
	return nil
}

// controlFailed explains a control line the sandbox's init could not be
// sent: the sandbox ended (killed by the watchdog, say, for what a
// dependency held), and how it ended is the reason, not the broken pipe.
func (p *Process) controlFailed(kind error, doing string, err error) error {
	select {
	case <-p.done:
		return fmt.Errorf("%w: the sandbox ended before %s: %v", kind, doing, p.ExitError())
	case <-time.After(2 * time.Second):
		return fmt.Errorf("%w: %s: %v", kind, doing, err)
	}
}

// mainPid is, with dependencies, the service's pid in memgate's pid
// namespace: the init's child whose pid inside is the one the init said
// it gave the service (the init's oldest child is a dependency's).
// The caller holds p.mu.
func (p *Process) mainPid() (int, error) {
	inside := p.mainInside
	if inside == 0 {
		return 0, fmt.Errorf("%w: the service has not started in its sandbox yet", ErrNoFDs)
	}
	init := p.cmd.Process.Pid
	for pid, pr := range namespaceProcs(init) {
		if pr.ppid == init && pr.nspid == inside {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("%w: the service (pid %d in its sandbox) is not found", ErrNoFDs, inside)
}

// memoryUse is the memory of a sandbox's processes and tmpfs mounts,
// the service's and its dependencies' apart: a process is a dependency's
// when the child of the sandbox's first process it descends from is one
// the first process started for a dependency. What cannot be placed (the
// first process, orphans it inherited) counts as the service's.
func (p *Process) memoryUse() (service, deps uint64) {
	init := p.cmd.Process.Pid
	depPids := map[int]bool{}
	for _, d := range p.deps {
		d.mu.Lock()
		for pid := range d.pids {
			depPids[pid] = true
		}
		d.mu.Unlock()
	}
	procs := namespaceProcs(init)
	page := uint64(os.Getpagesize())
	for pid, pr := range procs {
		top := pid
		for steps := 0; steps < 64; steps++ {
			parent, ok := procs[top]
			if !ok || parent.ppid == init || top == init {
				break
			}
			top = parent.ppid
		}
		if top != init && depPids[procs[top].nspid] {
			deps += uint64(pr.rssPages) * page
		} else {
			service += uint64(pr.rssPages) * page
		}
	}
	service += sandboxTmpfs(init)
	deps += tmpfsUsed(init, sandbox.CompanionsDir)
	return service, deps
}

type nsProc struct {
	ppid, nspid int
	rssPages    int64
}

// namespaceProcs are the processes in the pid namespace whose first
// process is pid, by host pid, with their parent and their pid inside.
func namespaceProcs(pid int) map[int]nsProc {
	ns, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return nil
	}
	out := map[int]nsProc{}
	for _, other := range allPIDs() {
		dir := filepath.Join("/proc", strconv.Itoa(other))
		if l, err := os.Readlink(filepath.Join(dir, "ns", "pid")); err != nil || l != ns {
			continue
		}
		info, ok := readProc(other)
		if !ok {
			continue
		}
		out[other] = nsProc{ppid: info.ppid, nspid: innerPid(dir), rssPages: info.rssPages}
	}
	return out
}

// innerPid is a process's pid in its own (innermost) pid namespace.
func innerPid(dir string) int {
	f, err := os.Open(filepath.Join(dir, "status"))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "NSpid:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, _ := strconv.Atoi(f[len(f)-1])
				return n
			}
		}
	}
	return 0
}
