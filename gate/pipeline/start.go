package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/service"
)

// started is the running service and where it is reached.
type started struct {
	proc       *service.Process
	built      service.Built
	port       int
	readerAddr string // the injected reader's, "" when it is not in the build
	base       string // http://127.0.0.1:port
	startAt    time.Time
	stop       func()
}

// start picks the service's ports and starts it in its sandbox. Its stop
// keeps the output's tail in the report.
func (r *run) start(ctx context.Context, g *gateContainment, built service.Built) (*started, error) {
	cfg := r.opts.Config
	svc := &started{built: built, startAt: time.Now(), port: cfg.Run.Port}
	var err error
	// Every port of the gate differs from the others: a free port is
	// looked for on memgate's side, where none of the gate's is bound yet,
	// so the kernel may hand out the same one twice (seen: the reader's
	// port equal to the service's, "address already in use" inside a
	// network namespace of the gate's own).
	used := r.deps.ports()
	if svc.port == 0 {
		if svc.port, err = freePortBut(used); err != nil {
			return nil, err
		}
	} else if err := service.CheckPortFree(svc.port); err != nil {
		return nil, err
	}
	used[svc.port] = true
	if built.Injected {
		rp, err := freePortBut(used)
		if err != nil {
			return nil, err
		}
		svc.readerAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(rp))
	}
	svc.base = fmt.Sprintf("http://127.0.0.1:%d", svc.port)
	r.phase("start", fmt.Sprintf("127.0.0.1:%d", svc.port))
	limits, err := g.limits(cfg)
	if err != nil {
		return nil, err
	}
	proc, err := service.Start(service.RunSpec{Binary: built.Binary, Dir: g.dir, Args: r.substitute(cfg.Run.Args, svc.port),
		Env: r.serviceEnv(svc.port, svc.readerAddr), Limits: r.deps.apply(limits), Dependencies: r.deps.list()})
	if err != nil {
		return nil, err
	}
	r.report.Environment.Isolation = g.buildNote() + proc.Isolation()
	r.proc, svc.proc = proc, proc
	svc.stop = func() {
		proc.Stop(cfg.Run.StopTimeout)
		r.report.ServiceOutput = proc.Output().LastLines(60)
		r.reportDependencies(proc)
	}
	return svc, nil
}

// watch returns a context that ends, with the exit as its cause, when the
// service dies.
func (s *started) watch(ctx context.Context) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(ctx)
	go func() {
		select {
		case <-s.proc.Done():
			cancel(s.proc.Exited("during the run"))
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// explainExit reports an error caused by the service's exit (a cancelled
// read or attack, a read of a service that is gone) as the exit itself.
func (s *started) explainExit(err error) error {
	if err == nil || errors.Is(err, service.ErrService) || errors.Is(err, service.ErrDependency) {
		return err
	}
	// A crashing service may still be writing its dump: give it a moment
	// to be reaped.
	select {
	case <-s.proc.Done():
		return s.proc.Exited("during the run")
	case <-time.After(time.Second):
		return err
	}
}

// waitReady waits for the readiness path to answer.
func (r *run) waitReady(ctx context.Context, svc *started) error {
	cfg := r.opts.Config
	if err := svc.proc.WaitReady(ctx, svc.base+cfg.Readiness.Path, cfg.Readiness.Timeout); err != nil {
		if errors.Is(err, service.ErrNotReady) {
			return fmt.Errorf("%w (does the service listen on $PORT? set run.args or run.env with {{port}} otherwise)", err)
		}
		return err
	}
	r.report.Timings.Start = gate.Duration(time.Since(svc.startAt))
	return nil
}

// serviceEnv is the service's whole environment: the base the caller
// allows, PORT, the config's run.env, the reader's address and the heap
// profile's sampling rate (service.HeapProfileRate).
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
		env = append(env, k+"="+r.deps.expand(r.opts.Config.Run.Env[k], port))
	}
	if readerAddr != "" {
		env = append(env, service.ReaderAddrEnv+"="+readerAddr)
	}
	return service.WithHeapProfileRate(env)
}

// substitute replaces {{port}} and the dependencies' placeholders.
func (r *run) substitute(args []string, port int) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = r.deps.expand(a, port)
	}
	return out
}
