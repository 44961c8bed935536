package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/internal/testlock"
)

// screen interprets what a terminal does with the live view's bytes: \r
// returns to the line's start, ESC[2K clears it, \n starts the next.
func screen(out string) []string {
	lines := []string{""}
	for len(out) > 0 {
		switch {
		case strings.HasPrefix(out, "\x1b[2K"):
			lines[len(lines)-1] = ""
			out = out[4:]
			continue
		case out[0] == '\r':
			// Every \r in the view is followed by a clear: the cursor's column
			// does not matter here.
		case out[0] == '\n':
			lines = append(lines, "")
		default:
			lines[len(lines)-1] += out[:1]
		}
		out = out[1:]
	}
	return lines
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestLiveProgressKeepsOneLinePerPhase(t *testing.T) {
	var buf bytes.Buffer
	clock := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := config.Default()
	cfg.Load.Warmup, cfg.Load.Duration = 2*time.Second, 10*time.Second
	p := newLiveProgress(&buf, cfg, 120, clock.now)
	p.Phase("build", "examples/heap-leak")
	clock.t = clock.t.Add(3 * time.Second)
	p.Phase("warmup", "2s at 150 requests/s")
	for i := range 2 {
		clock.t = clock.t.Add(time.Second)
		p.Sample(gate.Sample{Phase: gate.PhaseWarmup, HeapInuse: 1 << 20, Goroutines: 10 + i, AchievedRPS: 150})
	}
	p.Phase("measure", "10s at 150 requests/s")
	for i := range 10 {
		clock.t = clock.t.Add(time.Second)
		s := gate.Sample{Phase: gate.PhaseMeasure, HeapInuse: uint64(2+i) << 20, Goroutines: 20 + i, AchievedRPS: 149}
		if i%3 == 0 {
			s.PostGCHeap = uint64(1+i) << 20
		}
		p.Sample(s)
		if i == 4 {
			fmt.Fprintln(p.Writer(), "level=WARN msg=\"a warning mid-run\"")
		}
	}
	p.Finish(nil)
	got := screen(buf.String())
	want := []string{
		"==> build           3s  examples/heap-leak",
		"==> warmup       2s/2s    150 req/s  heap 1.0 MiB  goroutines 11",
		`level=WARN msg="a warning mid-run"`,
		"==> measure    10s/10s    149 req/s  heap 11.0 MiB  post-GC 10.0 MiB  goroutines 29",
		"",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("screen:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLiveProgressFitsTheTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := newLiveProgress(&buf, config.Default(), 30, time.Now)
	p.Phase("build", strings.Repeat("x", 100))
	p.Finish(nil)
	for _, l := range screen(buf.String()) {
		if n := len([]rune(l)); n >= 30 {
			t.Errorf("line of %d runes on a 30-column terminal: %q", n, l)
		}
	}
}

// The real thing: memgate check in a terminal (tmux), a real gate. What
// stays on the screen is one line per phase and the chart, not a line a
// second.
func TestCheckOnATerminalShowsLiveLinesAndAChart(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real gate")
	}
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		t.Skip("tmux is not installed: apt-get install tmux (.ci/run installs it)")
	}
	testlock.Gate(t)
	bin := buildMemgate(t)
	repo, _ := filepath.Abs("../..")
	dir := t.TempDir()
	sock, done := filepath.Join(dir, "tmux.sock"), filepath.Join(dir, "exit")
	script := fmt.Sprintf("cd %q && %q check --rate 150 --warmup 2s --duration 10s examples/healthy-json; echo $? > %q; sleep 600",
		repo, bin, done)
	if out, err := exec.Command(tmux, "-S", sock, "new-session", "-d", "-x", "132", "-y", "100", "sh", "-c", script).CombinedOutput(); err != nil {
		t.Fatalf("tmux: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(tmux, "-S", sock, "kill-server").Run() })
	deadline := time.Now().Add(5 * time.Minute)
	for {
		if b, err := os.ReadFile(done); err == nil && len(b) > 0 {
			if code := strings.TrimSpace(string(b)); code != "0" {
				t.Errorf("memgate exited %s", code)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("memgate did not finish in 5 minutes")
		}
		time.Sleep(time.Second)
	}
	out, err := exec.Command(tmux, "-S", sock, "capture-pane", "-p", "-S", "-", "-E", "-").Output()
	if err != nil {
		t.Fatal(err)
	}
	text := strings.TrimRight(string(out), "\n ")
	t.Logf("screen:\n%s", text)
	lines := strings.Split(text, "\n")
	if len(lines) >= 60 {
		t.Errorf("%d lines on the screen, want fewer than 60", len(lines))
	}
	count := func(re string) int {
		return len(regexp.MustCompile(re).FindAllString(text, -1))
	}
	if n := count(`(?m)^==> measure +\d+s/10s +\d+ req/s  heap [\d.]+ [KMG]?i?B  post-GC [\d.]+ [KMG]?i?B  goroutines \d+`); n != 1 {
		t.Errorf("%d final measure status lines, want 1", n)
	}
	for _, phase := range []string{"build", "start", "ready", "warmup", "measure", "settle"} {
		if n := count(`(?m)^==> ` + phase + ` `); n != 1 {
			t.Errorf("phase %s: %d lines, want 1", phase, n)
		}
	}
	if n := count(`req/s`); n > 6 {
		t.Errorf("%d lines with req/s, more than one per phase: the status lines scrolled", n)
	}
	for _, re := range []string{`(?m)^  post-GC heap +[▁▂▃▄▅▆▇█]{20,} `, `(?m)^  goroutines +[▁▂▃▄▅▆▇█]{20,} `, `(?m)^ +╌+─+━+  ╌ warm-up  ─ window  ━ judged$`, `memgate: PASS`} {
		if count(re) != 1 {
			t.Errorf("screen lacks %s", re)
		}
	}
}
