package service

import (
	"bytes"
	"strings"
	"sync"
)

// Tail keeps the last bytes written to it: a service's or a build's output,
// bounded however much is written.
type Tail struct {
	mu    sync.Mutex
	limit int
	buf   []byte
	total int64
}

// NewTail keeps the last limit bytes.
func NewTail(limit int) *Tail { return &Tail{limit: limit} }

// Write keeps the end of p and never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.total += int64(len(p))
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.limit; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return len(p), nil
}

// String returns the kept output, starting at a line boundary when bytes
// were dropped.
func (t *Tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := string(t.buf)
	if t.total > int64(len(t.buf)) {
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[i+1:]
		}
		s = "[... earlier output dropped]\n" + s
	}
	return s
}

// LastLines returns at most n trailing lines of the kept output.
func (t *Tail) LastLines(n int) string { return LastLines(t.String(), n) }

// LastLines returns at most n trailing lines of s.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// crashCatcher remembers the lines that say why a Go program died, however
// much output follows them (a crash dump's goroutine stacks can be far
// longer than any tail).
type crashCatcher struct {
	mu      sync.Mutex
	partial []byte
	runtime string // "runtime: ..." seen before the fatal line
	reason  string
}

func (c *crashCatcher) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.reason != "" {
		return len(p), nil
	}
	data := append(c.partial, p...)
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		c.line(string(data[:i]))
		data = data[i+1:]
		if c.reason != "" {
			break
		}
	}
	if len(data) > 4096 {
		data = data[len(data)-4096:]
	}
	c.partial = append(c.partial[:0], data...)
	return len(p), nil
}

func (c *crashCatcher) line(l string) {
	switch {
	case strings.HasPrefix(l, "runtime: ") && c.runtime == "":
		c.runtime = l
	case strings.HasPrefix(l, "panic: "), strings.HasPrefix(l, "fatal error: "), strings.HasPrefix(l, "unexpected signal"),
		strings.HasPrefix(l, "SIGSEGV"), strings.HasPrefix(l, "SIGABRT"):
		c.reason = l
		if c.runtime != "" {
			c.reason = c.runtime + "; " + l
		}
	}
}

func (c *crashCatcher) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason
}
