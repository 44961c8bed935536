package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/gate/sandbox"
)

// ErrService is wrapped by failures of the service itself: it exited,
// panicked or never became ready.
var ErrService = errors.New("service failed")

// RunSpec says how to start a built service.
type RunSpec struct {
	Binary string
	Dir    string
	Args   []string
	Env    []string // the complete environment: nothing else is inherited
	Limits Limits
	// Dependencies start first, in the service's sandbox; the service
	// waits for StartService.
	Dependencies []Dependency
}

// Process is a running service in its own process group.
type Process struct {
	cmd      *exec.Cmd
	out      *Tail
	crash    *crashCatcher
	done     chan struct{}
	waitErr  error
	stopOnce sync.Once
	token    string
	group    *serviceGroup // nil when the host gives no control group
	contain  string        // how it is contained, for the report

	mu        sync.Mutex
	killedFor string // why memgate killed it, when it did
	oomKilled bool   // the kernel killed it at its group's memory cap

	dial      DialFunc // inside the service's network, when it has its own
	sandboxed bool
	innerPid  int // a sandboxed service's own pid, once found (under mu)

	sandbox *sandbox.Cmd // nil uncontained
	deps    []*DependencyProcess
	depGone chan *DependencyProcess
	// mainInside is the service's pid inside its sandbox, once the init
	// started it after the dependencies (under mu).
	mainInside int
}

// Dial is how to reach the service: inside its own network namespace when
// it has one, else nil (the default dialer).
func (p *Process) Dial() DialFunc { return p.dial }

// HTTPClient is a client that reaches the service.
func (p *Process) HTTPClient(timeout time.Duration) *http.Client {
	if p.dial == nil {
		return &http.Client{Timeout: timeout, CheckRedirect: probe.SameHostRedirects}
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: p.dial, MaxIdleConnsPerHost: 4}, CheckRedirect: probe.SameHostRedirects}
}

// Start starts the service. Its output is kept in a bounded tail.
func Start(spec RunSpec) (*Process, error) { return start(spec, cgroups()) }

func start(spec RunSpec, host *cgroupHost) (*Process, error) {
	if len(spec.Dependencies) > 0 && spec.Limits.Sandbox == nil {
		return nil, fmt.Errorf("%w: dependencies run only in the service's sandbox, and this service runs uncontained", ErrDependency)
	}
	token := newToken()
	var group *serviceGroup
	groupNote := ""
	deps := newDependencyProcesses(spec.Dependencies)
	if host.usable() {
		memory, pids := spec.Limits.MemoryBytes, spec.Limits.Processes
		if len(deps) > 0 {
			// One group for the sandbox: it caps the whole, the watchdog
			// each share.
			if memory > 0 { // 0: the service has no cap, nor has the whole
				memory += spec.Limits.DependencyMemoryBytes
			}
			if pids > 0 {
				pids += spec.Limits.DependencyProcesses
			}
		}
		g, err := host.newServiceGroup(token, memory, pids)
		if err != nil {
			groupNote = "no control group: " + err.Error()
		} else {
			group = g
		}
	} else {
		groupNote = host.note
	}
	out := NewTail(256 << 10)
	crash := &crashCatcher{}
	w := io.MultiWriter(out, crash)
	env := append(append([]string(nil), spec.Env...), tokenEnv+"="+token)
	var cmd *exec.Cmd
	var release func() error
	var sc *sandbox.Cmd
	if sb := spec.Limits.Sandbox; sb != nil {
		var err error
		sc, err = sb.command(spec, env, w, group, companions(deps, spec.Dir))
		if err != nil {
			if group != nil {
				group.remove()
			}
			return nil, err
		}
		cmd, release = sc.Cmd, sc.Release
	} else {
		cmd = exec.Command(spec.Binary, spec.Args...)
		if group != nil && !group.v2 {
			// v1 cannot be born into: the first process, still root,
			// joins the groups before it execs the service.
			cmd = exec.Command("/bin/sh", append([]string{"-c", group.joinScript() + `exec "$@"`, "memgate-join", spec.Binary}, spec.Args...)...)
		}
		cmd.Dir = spec.Dir
		cmd.Env = env
		cmd.Stdout, cmd.Stderr = w, w
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if group != nil && group.fd != nil {
			// v2: the service is born in its group (clone3 CLONE_INTO_CGROUP).
			cmd.SysProcAttr.UseCgroupFD = true
			cmd.SysProcAttr.CgroupFD = int(group.fd.Fd())
		}
	}
	// A process the service left behind may hold its output open: once
	// the service has exited and been killed, stop waiting for it.
	cmd.WaitDelay = 2 * time.Second
	startCmd := cmd.Start
	if sc != nil {
		startCmd = sc.Start // also closes its ends of the pipes and reads them
	}
	if err := startCmd(); err != nil {
		if group != nil {
			group.remove()
		}
		return nil, fmt.Errorf("%w: start %s: %v", ErrService, spec.Binary, err)
	}
	// A sandbox's first process waits for its release: it joins v1 groups
	// before it has forked anything.
	if group != nil && release != nil {
		if err := group.join(cmd.Process.Pid); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			group.remove()
			return nil, err
		}
	}
	if release != nil {
		if err := release(); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			if group != nil {
				group.remove()
			}
			return nil, fmt.Errorf("%w: %v", ErrService, err)
		}
	}
	p := &Process{cmd: cmd, out: out, crash: crash, done: make(chan struct{}), token: token,
		group: group, contain: spec.Limits.isolation(group, groupNote, len(deps)),
		sandbox: sc, deps: deps, depGone: make(chan *DependencyProcess, 1)}
	if sc != nil && len(deps) > 0 {
		go p.followEvents(sc.Events())
	}
	if spec.Limits.Sandbox != nil {
		p.dial = spec.Limits.Sandbox.dialer(cmd.Process.Pid)
		p.sandboxed = true
	}
	go func() {
		err := cmd.Wait()
		p.mu.Lock()
		p.waitErr = err
		p.oomKilled = group != nil && group.oomKilled()
		p.mu.Unlock()
		close(p.done)
	}()
	if len(deps) > 0 || (spec.Limits.MemoryBytes > 0 && (group == nil || group.memory == 0)) {
		go p.watchMemory(spec.Limits.MemoryBytes, spec.Limits.DependencyMemoryBytes)
	}
	return p, nil
}

// Pid is the service's process id, which is also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed when the service has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// ExitError says how the service ended; call it after Done.
func (p *Process) ExitError() error {
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.killedFor != "" {
		return errors.New(p.killedFor)
	}
	if p.oomKilled {
		return fmt.Errorf("killed by the kernel: memory passed the %d MiB limit (run.memory_limit, the service's control group)", p.group.memory>>20)
	}
	if p.waitErr == nil {
		return errors.New("exited with status 0")
	}
	return p.waitErr
}

// Isolation says how the service is contained, for the report.
func (p *Process) Isolation() string { return p.contain }

// Output is the tail of what the service wrote.
func (p *Process) Output() *Tail { return p.out }

// Crash is the line that says why a Go service died ("panic: ...",
// "fatal error: ..." and the runtime's reason before it), or "".
func (p *Process) Crash() string { return p.crash.String() }

// Exited describes how the service ended, with its crash line if any.
func (p *Process) Exited(when string) error {
	msg := fmt.Sprintf("exited %s (%v)", when, p.ExitError())
	if c := p.Crash(); c != "" {
		msg += ": " + c
	}
	return fmt.Errorf("%w: %s", ErrService, msg)
}

// Stop sends SIGTERM to the service's whole process group, waits up to
// grace, then SIGKILLs the group. It is safe to call more than once.
func (p *Process) Stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
		// Children may outlive the leader: kill the group regardless,
		// and whatever left the group (setsid daemons) by its mark.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		if p.group != nil {
			// Everything the service started is in its group, whatever
			// session or environment it made itself.
			p.group.kill()
		}
		for i := 0; i < 3 && killMarked(p.token) > 0; i++ {
			time.Sleep(50 * time.Millisecond)
		}
		<-p.done
		if p.sandbox != nil && len(p.deps) > 0 {
			p.sandbox.CloseControl()
		}
		if p.group != nil {
			p.group.remove()
		}
	})
}

// WaitReady polls url until it answers with a status below 500, the
// service exits, or timeout passes.
func (p *Process) WaitReady(ctx context.Context, url string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := p.HTTPClient(time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
			last = "answered " + resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-p.done:
			return p.Exited("before becoming ready")
		case <-ctx.Done():
			select {
			case <-p.done:
				return p.Exited("before becoming ready")
			default:
			}
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%w: %w after %s: GET %s: %s", ErrService, ErrNotReady, timeout, url, last)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// FreePort asks the kernel for a free loopback port.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// ErrNotReady is wrapped (beside ErrService) when a running service did not
// answer its readiness path in time.
var ErrNotReady = errors.New("not ready")

// ErrPortTaken is returned by CheckPortFree for a port in use.
var ErrPortTaken = errors.New("port taken")

// CheckPortFree fails when something already listens on the loopback port.
func CheckPortFree(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("%w: 127.0.0.1:%d: %v", ErrPortTaken, port, err)
	}
	return ln.Close()
}
