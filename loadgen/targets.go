// Package loadgen drives a service with HTTP load through vegeta as a
// library: a constant rate, a fixed number of connections, bodies discarded,
// and only ever loopback addresses.
package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Target is one request of the load's rotation. URL may be a path
// ("/orders"), resolved against the service's base URL.
type Target struct {
	Method string
	URL    string
	Header http.Header
	Body   []byte
	// FillBody: Expand fills the body's placeholders (a config's body);
	// a targets file's bodies are sent as the file has them, as vegeta
	// sends them.
	FillBody bool
	Stream   *Stream // nil: an ordinary request
	Leave    Leave   // zero: never left early
}

// Bounds on what a targets file may make memgate read and hold: it comes
// from a repository memgate does not control, and every body stays in
// memory for the whole load.
const (
	MaxTargetsFile = 8 << 20  // the targets file
	MaxBodyFile    = 8 << 20  // one @body file
	MaxBodies      = 32 << 20 // all @body references together
)

// Files reads the files of the repository a targets file comes from, by
// slash-separated paths relative to its root, refusing any larger than
// limit. Implementations refuse what is not a regular file of the
// repository (symbolic links, paths leaving it): vegeta's own reader would
// open any path on the machine, as memgate.
type Files interface {
	ReadFile(ctx context.Context, name string, limit int64) ([]byte, error)
}

// LineError is a targets file line memgate will not use.
type LineError struct {
	File string
	Line int
	Msg  string
	Err  error // the cause, when reading a body failed
}

func (e *LineError) Error() string {
	msg := fmt.Sprintf("%s: line %d: %s", e.File, e.Line, e.Msg)
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *LineError) Unwrap() error { return e.Err }

// ReadTargetsFile reads a vegeta "http" format targets file from files.
// "@file" body lines are read from files too, relative to the targets
// file's directory; absolute paths and ".." are refused. URLs and headers
// keep their placeholders ("{{port}}") for Expand.
func ReadTargetsFile(ctx context.Context, files Files, name string) ([]Target, error) {
	if !InRepository(name) {
		return nil, fmt.Errorf("%s: must be a path inside the repository (relative, without ..)", name)
	}
	name = path.Clean(name)
	data, err := files.ReadFile(ctx, name, MaxTargetsFile)
	if err != nil {
		return nil, err
	}
	return ParseTargets(ctx, files, name, data)
}

// ParseTargets parses data, the targets file name, in vegeta's "http"
// format: targets separated by blank lines, each a "METHOD URL" line,
// "Key: value" headers and an optional "@file" body; "#" starts a comment.
func ParseTargets(ctx context.Context, files Files, name string, data []byte) ([]Target, error) {
	p := &targetParser{ctx: ctx, files: files, dir: path.Dir(name)}
	lines := strings.Split(string(data), "\n")
	var cur *Target
	for i, raw := range lines {
		line := strings.TrimSpace(raw)
		lineErr := func(msg string, err error) error { return &LineError{File: name, Line: i + 1, Msg: msg, Err: err} }
		switch {
		case line == "":
			cur = nil
		case line[0] == '#':
		case cur == nil || startsWithMethod(line):
			t, err := parseRequestLine(line)
			if err != nil {
				return nil, lineErr(err.Error(), nil)
			}
			p.out = append(p.out, t)
			cur = &p.out[len(p.out)-1]
		case line[0] == '@':
			body, err := p.body(line[1:])
			if err != nil {
				return nil, lineErr(fmt.Sprintf("body %q", truncate(line, 80)), err)
			}
			cur.Body = body
			cur = nil // vegeta ends a target at its body
		default:
			k, v, ok := strings.Cut(line, ":")
			k, v = strings.TrimSpace(k), strings.TrimSpace(v)
			if !ok || k == "" || v == "" {
				return nil, lineErr(fmt.Sprintf("bad header %q", truncate(line, 80)), nil)
			}
			cur.Header[k] = append(cur.Header[k], v)
		}
	}
	if len(p.out) == 0 {
		return nil, fmt.Errorf("%s: no targets", name)
	}
	return p.out, nil
}

type targetParser struct {
	ctx   context.Context
	files Files
	dir   string
	used  int64 // bytes of bodies read so far
	out   []Target
}

// errBodyPath marks a body reference that names something outside the
// repository.
var errBodyPath = errors.New("body files are read from the repository, relative to the targets file: no absolute paths, no ..")

// body reads one "@file" body through files, within the bounds.
func (p *targetParser) body(ref string) ([]byte, error) {
	if !InRepository(ref) {
		return nil, errBodyPath
	}
	room := min(int64(MaxBodyFile), MaxBodies-p.used)
	if room <= 0 {
		return nil, fmt.Errorf("the bodies together pass %d bytes", MaxBodies)
	}
	b, err := p.files.ReadFile(p.ctx, path.Join(p.dir, ref), room)
	if err != nil {
		return nil, err
	}
	p.used += int64(len(b))
	return b, nil
}

func parseRequestLine(line string) (Target, error) {
	method, rawURL, ok := strings.Cut(line, " ")
	rawURL = strings.TrimSpace(rawURL)
	if !ok || rawURL == "" {
		return Target{}, fmt.Errorf("bad target %q: want METHOD URL", truncate(line, 80))
	}
	if !startsWithMethod(line) {
		return Target{}, fmt.Errorf("bad method %q", truncate(method, 20))
	}
	// {{port}} is not a port yet: check the URL as it will be.
	if _, err := url.ParseRequestURI(strings.ReplaceAll(rawURL, "{{port}}", "1")); err != nil {
		return Target{}, fmt.Errorf("bad URL %q", truncate(rawURL, 80))
	}
	return Target{Method: method, URL: rawURL, Header: http.Header{}}, nil
}

// startsWithMethod: an upper-case word and a space, as vegeta decides.
func startsWithMethod(line string) bool {
	i := strings.IndexAny(line, " \t")
	if i <= 0 {
		return false
	}
	for _, c := range line[:i] {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// InRepository reports whether name can only mean a file inside a
// repository: not empty, not absolute, no ".." anywhere. Symbolic links are
// the Files implementation's to refuse.
func InRepository(name string) bool {
	if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) == "." {
		return false
	}
	return !slices.Contains(strings.Split(name, "/"), "..")
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// maxExpandedBody bounds the bodies Expand fills: a request naming an
// upstream is small, and a 32 MiB body of placeholders would grow several
// times over in memgate's own memory.
const maxExpandedBody = 64 << 10

// Expand returns targets with fill applied to their URLs, header values
// and, where FillBody says, bodies (a JSON body naming an upstream:
// {"target": "{{dep.api.addr}}"}). A body without "{{", or larger than
// 64 KiB, is sent as it is, byte for byte.
func Expand(targets []Target, fill func(string) string) []Target {
	out := make([]Target, len(targets))
	for i, t := range targets {
		h := make(http.Header, len(t.Header))
		for k, vs := range t.Header {
			for _, v := range vs {
				h[k] = append(h[k], fill(v))
			}
		}
		body := t.Body
		if t.FillBody && len(body) <= maxExpandedBody && bytes.Contains(body, []byte("{{")) {
			body = []byte(fill(string(body)))
		}
		out[i] = Target{Method: t.Method, URL: fill(t.URL), Header: h, Body: body, FillBody: t.FillBody, Stream: t.Stream, Leave: t.Leave}
	}
	return out
}

// resolve turns targets into vegeta's, with path-only URLs joined to base
// and every host checked to be loopback.
func resolve(base string, targets []Target) ([]vegeta.Target, error) {
	if len(targets) == 0 {
		return nil, errors.New("loadgen: no targets")
	}
	b, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("loadgen: base URL: %w", err)
	}
	out := make([]vegeta.Target, 0, len(targets))
	for i, t := range targets {
		u, err := b.Parse(t.URL)
		if err != nil {
			return nil, fmt.Errorf("loadgen: target %q: %w", t.URL, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, fmt.Errorf("loadgen: target %q: scheme must be http or https", t.URL)
		}
		if !IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("loadgen: target %q: only loopback addresses may be loaded", u.String())
		}
		h := t.Header.Clone()
		if h == nil {
			h = http.Header{}
		}
		h.Set(hdrTarget, strconv.Itoa(i)) // the transport's, removed before sending
		out = append(out, vegeta.Target{Method: t.Method, URL: u.String(), Header: h, Body: t.Body})
	}
	return out, nil
}

// IsLoopbackHost reports whether host names this machine's loopback.
func IsLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
