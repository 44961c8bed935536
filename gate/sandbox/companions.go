package sandbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Companions are programs a sandbox runs beside its main one, in the same
// namespaces (the service's dependencies: a database, a cache, a stub of an
// upstream API, reached on the sandbox's own loopback). The first process
// starts them at once, each unprivileged, with the sandbox's limits; it
// starts the main program only when memgate says so (StartMain), after it
// has seen the companions ready. Each companion starts when memgate says
// so (StartCompanion), so one can start after another it needs is ready.
// They end with the sandbox.
//
// Three more descriptors carry them: memgate's control lines on fd 3
// after the spec ("start N", "check N", "main"), the first process's events on fd 4
// (one JSON object a line), and each companion's output on a pipe of its
// own from fd 5 on, so that what a dependency writes is never taken for
// the service's.
type Companion struct {
	Name string
	Path string // a name looked up on Env's PATH, or a path inside
	Args []string
	Env  []string
	Dir  string
	// Before are commands run to completion, in order, before Path (a
	// database's initdb); a failing one ends the companion.
	Before [][]string
	// Check is a readiness command, run inside on request (Cmd.Check).
	Check  []string
	Output io.Writer
}

// Event is what the first process says about a companion.
type Event struct {
	Name string `json:"name"`
	// Kind: "started" (Pid is its pid inside; Step is "before", "program"
	// or "check"), "exited" (Status: exit code, 128+signal; Step says
	// which), "checked" (Status 0: ready), and "main" with the main
	// program's pid inside.
	Kind   string `json:"kind"`
	Step   string `json:"step,omitempty"`
	Pid    int    `json:"pid,omitempty"`
	Status int    `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// CompanionsDir is a tmpfs the companions may write (a database's data
// directory), of CompanionTmpBytes; memory it holds is theirs.
const CompanionsDir = "/deps"

type wireCompanion struct {
	Name, Path, Dir string
	Args, Env       []string
	Before          [][]string
	Check           []string
}

// companionPipes adds the events pipe and one output pipe per companion to
// the sandbox's extra files (after the spec's) and copies their reading
// ends for the caller once started.
func (c *Cmd) companionPipes(spec Spec) error {
	if len(spec.Companions) == 0 {
		return nil
	}
	er, ew, err := os.Pipe()
	if err != nil {
		return err
	}
	c.ExtraFiles = append(c.ExtraFiles, ew)
	c.parentEnds = append(c.parentEnds, ew)
	c.events = make(chan Event, 64)
	c.readers = append(c.readers, func() { readEvents(er, c.events) })
	for _, comp := range spec.Companions {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		c.ExtraFiles = append(c.ExtraFiles, w)
		c.parentEnds = append(c.parentEnds, w)
		out := comp.Output
		if out == nil {
			out = io.Discard
		}
		c.readers = append(c.readers, func() { io.Copy(out, r); r.Close() })
	}
	return nil
}

// readEvents decodes the first process's events, bounded per line.
func readEvents(r *os.File, ch chan<- Event) {
	defer close(ch)
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), 64<<10)
	for sc.Scan() {
		var e Event
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			ch <- e
		}
	}
}

// Events are the companions' events; closed when the sandbox ends. Nil
// without companions.
func (c *Cmd) Events() <-chan Event { return c.events }

// Check asks the first process to run companion i's readiness command; the
// answer is a "checked" event.
func (c *Cmd) Check(i int) error { return c.control(fmt.Sprintf("check %d\n", i)) }

// StartCompanion starts companion i (its Before steps, then its program);
// a companion already started is not started again.
func (c *Cmd) StartCompanion(i int) error { return c.control(fmt.Sprintf("start %d\n", i)) }

// StartMain starts the main program, once the companions are ready.
func (c *Cmd) StartMain() error { return c.control("main\n") }

func (c *Cmd) control(line string) error {
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if _, err := io.WriteString(c.spec, line); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}

// Inside: the first process's side.

// events writes the first process's events to memgate.
type events struct {
	mu sync.Mutex
	w  *os.File
}

func (e *events) send(ev Event) {
	b, _ := json.Marshal(ev)
	e.mu.Lock()
	e.w.Write(append(b, '\n'))
	e.mu.Unlock()
}

// companionRun is the first process's view of its companions.
type companionRun struct {
	rp   *reaper
	w    *wire
	ev   *events
	outs []*os.File // each companion's output pipe
	// started: companions memgate has started (control's alone).
	started map[int]bool
}

func newCompanionRun(rp *reaper, w *wire) *companionRun {
	cr := &companionRun{rp: rp, w: w, ev: &events{w: os.NewFile(4, "events")}, started: map[int]bool{}}
	for i, c := range w.Companions {
		cr.outs = append(cr.outs, os.NewFile(uintptr(5+i), "companion-"+c.Name))
	}
	return cr
}

// runCompanion runs companion i's steps and then its program, saying what
// happens; its output goes to its own pipe.
func (cr *companionRun) runCompanion(i int) {
	rp, w, ev := cr.rp, cr.w, cr.ev
	c := w.Companions[i]
	out := cr.outs[i]
	for _, step := range c.Before {
		if st := runStep(rp, w, c, step, out, "before", ev); st != 0 {
			ev.send(Event{Name: c.Name, Kind: "exited", Step: "before", Status: st, Detail: strings.Join(step, " ")})
			return
		}
	}
	pid, status, err := startIn(rp, w, c, append([]string{c.Path}, c.Args...), out)
	if err != nil {
		ev.send(Event{Name: c.Name, Kind: "exited", Step: "program", Status: 127, Detail: err.Error()})
		return
	}
	ev.send(Event{Name: c.Name, Kind: "started", Step: "program", Pid: pid})
	ev.send(Event{Name: c.Name, Kind: "exited", Step: "program", Status: exitCode(<-status)})
}

// runStep runs one command of a companion to its end and returns its
// exit code (127: it could not start).
func runStep(rp *reaper, w *wire, c wireCompanion, argv []string, out *os.File, step string, ev *events) int {
	pid, status, err := startIn(rp, w, c, argv, out)
	if err != nil {
		fmt.Fprintf(out, "memgate sandbox: %s: %v\n", argv[0], err)
		return 127
	}
	ev.send(Event{Name: c.Name, Kind: "started", Step: step, Pid: pid})
	return exitCode(<-status)
}

// startIn starts argv as the companion, unprivileged, in a process group
// of its own.
func startIn(rp *reaper, w *wire, c wireCompanion, argv []string, out *os.File) (int, <-chan syscall.WaitStatus, error) {
	path, err := lookPath(argv[0], c.Env)
	if err != nil {
		return 0, nil, err
	}
	cmd := command(path, argv, c.Env, c.Dir, out, out)
	return rp.start(cmd, w)
}

// control reads memgate's lines until "main": checks are run as asked.
// It reports false when memgate went away first.
func (cr *companionRun) control(r *bufio.Reader) bool {
	rp, w, ev := cr.rp, cr.w, cr.ev
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return false
		}
		line = strings.TrimSpace(line)
		if line == "main" {
			return true
		}
		if n, ok := strings.CutPrefix(line, "start "); ok {
			if i, err := strconv.Atoi(n); err == nil && i >= 0 && i < len(w.Companions) && !cr.started[i] {
				cr.started[i] = true
				go cr.runCompanion(i)
			}
			continue
		}
		n, ok := strings.CutPrefix(line, "check ")
		i, err := strconv.Atoi(n)
		if !ok || err != nil || i < 0 || i >= len(w.Companions) || len(w.Companions[i].Check) == 0 {
			continue
		}
		go func() {
			c := w.Companions[i]
			st := runStep(rp, w, c, c.Check, cr.outs[i], "check", ev)
			ev.send(Event{Name: c.Name, Kind: "checked", Status: st})
		}()
	}
}

func exitCode(ws syscall.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// CloseControl ends memgate's control lines: before StartMain, the
// sandbox then ends with everything in it.
func (c *Cmd) CloseControl() { c.spec.Close() }
