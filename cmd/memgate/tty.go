package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
)

// progress is what check shows while a gate runs: the pipeline's Progress,
// a writer for anything else bound for the same terminal, and Finish when
// the run is over.
type progress interface {
	Phase(phase, detail string)
	Sample(s gate.Sample)
	Writer() io.Writer
	Finish(rep *gate.Report)
}

// newProgress picks the live view when stderr is a terminal (mode "auto")
// or when asked ("live"), plain lines otherwise: logs keep one line a
// second, a terminal gets one line per phase rewritten in place.
func newProgress(stderr io.Writer, cfg config.Config, mode string) progress {
	f, isFile := stderr.(*os.File)
	tty := isFile && term.IsTerminal(int(f.Fd()))
	if mode == "live" || (mode == "auto" && tty) {
		width := 100
		if tty {
			if w, _, err := term.GetSize(int(f.Fd())); err == nil && w > 20 {
				width = w
			}
		}
		return newLiveProgress(stderr, cfg, width, time.Now)
	}
	return plainProgress{newTerminalProgress(stderr, cfg), stderr}
}

// plainProgress is today's plain lines.
type plainProgress struct {
	*terminalProgress
	w io.Writer
}

func (p plainProgress) Writer() io.Writer   { return p.w }
func (p plainProgress) Finish(*gate.Report) {}

// liveProgress keeps one status line per phase: the current phase's line is
// rewritten in place every tick and on every sample, and left on screen,
// final, when the next phase starts.
type liveProgress struct {
	mu         sync.Mutex
	w          io.Writer
	cfg        config.Config
	width      int
	now        func() time.Time
	phase      string
	detail     string
	phaseStart time.Time
	sample     gate.Sample
	sampled    bool
	lastPostGC uint64
	open       bool // the status line is on screen and not ended
	stop, done chan struct{}
}

// tick is how often the line's clock moves between samples.
const tick = 250 * time.Millisecond

func newLiveProgress(w io.Writer, cfg config.Config, width int, now func() time.Time) *liveProgress {
	p := &liveProgress{w: w, cfg: cfg, width: width, now: now, stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *liveProgress) loop() {
	defer close(p.done)
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
			p.mu.Lock()
			if p.open {
				p.draw()
			}
			p.mu.Unlock()
		}
	}
}

func (p *liveProgress) Phase(phase, detail string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
	p.phase, p.detail, p.phaseStart, p.sampled, p.open = phase, detail, p.now(), false, true
	p.draw()
}

func (p *liveProgress) Sample(s gate.Sample) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.PostGCHeap > 0 {
		p.lastPostGC = s.PostGCHeap
	}
	p.sample, p.sampled = s, true
	if p.open {
		p.draw()
	}
}

// Finish ends the last status line and draws the chart of the run.
func (p *liveProgress) Finish(rep *gate.Report) {
	close(p.stop)
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	p.end()
	if rep != nil {
		writeChart(p.w, rep, min(p.width-30, 60))
	}
}

// Writer interleaves other output (warnings) with the status line: the
// line is cleared, the text written, the line drawn again below it.
func (p *liveProgress) Writer() io.Writer { return liveWriter{p} }

type liveWriter struct{ p *liveProgress }

func (lw liveWriter) Write(b []byte) (int, error) {
	p := lw.p
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		io.WriteString(p.w, "\r\x1b[2K")
	}
	n, err := p.w.Write(b)
	if p.open {
		p.draw()
	}
	return n, err
}

// end leaves the current phase's line on screen as it last was.
func (p *liveProgress) end() {
	if !p.open {
		return
	}
	p.draw()
	io.WriteString(p.w, "\n")
	p.open = false
}

func (p *liveProgress) draw() {
	line := p.status()
	if p.width > 1 && utf8.RuneCountInString(line) > p.width-1 {
		line = string([]rune(line)[:p.width-2]) + "…"
	}
	io.WriteString(p.w, "\r\x1b[2K"+line)
}

// status is the phase's line: phase, elapsed / total, and under load the
// achieved rate, heap, post-GC heap, goroutines and open files.
func (p *liveProgress) status() string {
	elapsed := p.now().Sub(p.phaseStart).Truncate(time.Second)
	clock := elapsed.String()
	switch p.phase {
	case "warmup":
		clock += "/" + p.cfg.Load.Warmup.String()
	case "measure":
		clock += "/" + p.cfg.Load.Duration.String()
	}
	line := fmt.Sprintf("==> %-8s %9s", p.phase, clock)
	if !p.sampled {
		return line + "  " + p.detail
	}
	s := p.sample
	parts := []string{fmt.Sprintf("%5.0f req/s", s.AchievedRPS), "heap " + gate.FormatBytes(float64(s.HeapInuse))}
	if p.lastPostGC > 0 {
		parts = append(parts, "post-GC "+gate.FormatBytes(float64(p.lastPostGC)))
	}
	parts = append(parts, "goroutines "+gate.FormatCount(int64(s.Goroutines)))
	if s.FDs > 0 {
		parts = append(parts, "open files "+gate.FormatCount(int64(s.FDs)))
	}
	return line + "  " + strings.Join(parts, "  ")
}
