// Package probe reads a running service's heap and goroutine numbers and
// profiles over HTTP: from the service's own net/http/pprof, or from the
// reader memgate adds to builds of services without it.
package probe

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
)

// Size limits on what a service sends back: it is not trusted.
const (
	MaxTextBody    = 32 << 20
	MaxProfileBody = 64 << 20
)

// ErrNotPprof means an endpoint answered, but not as net/http/pprof does
// (e.g. a catch-all route answering 200 to any path).
var ErrNotPprof = errors.New("not net/http/pprof")

// DialFunc opens connections to the service (inside its own network
// namespace when it has one); nil means the default dialer.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// maxHeader bounds a response's headers (net/http allows 10 MB).
const maxHeader = 1 << 20

func newClient(dial DialFunc) *http.Client {
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DialContext: dial, MaxIdleConnsPerHost: 4,
		MaxResponseHeaderBytes: maxHeader}, CheckRedirect: SameHostRedirects}
}

// SameHostRedirects is the CheckRedirect of every memgate client of a
// service or its dependencies (profiles, readiness): a redirect is
// followed only on the host and port asked (a health check that answers
// /healthz with /healthz/), never elsewhere: where memgate goes is not the
// service's to choose, and a redirect to a host name would have memgate
// resolve a name of the service's choosing.
func SameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if req.URL.Host != via[0].URL.Host || req.URL.Scheme != via[0].URL.Scheme {
		return fmt.Errorf("redirected away to %s: memgate follows redirects only on the same host and port", req.URL.Redacted())
	}
	return nil
}

func get(ctx context.Context, c *http.Client, url string, limit int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if int64(len(body)) > limit {
		return nil, fmt.Errorf("GET %s: %w: the body passes %s", url, gate.ErrTooLarge, gate.FormatBytes(float64(limit)))
	}
	return body, nil
}

// Pprof reads a service's own net/http/pprof endpoints.
type Pprof struct {
	base   string // e.g. http://127.0.0.1:8123/debug/pprof/
	client *http.Client
}

// NewPprof reads pprof under base, which ends in "/".
func NewPprof(base string, dial DialFunc) *Pprof {
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	return &Pprof{base: base, client: newClient(dial)}
}

// Describe says where the numbers come from, for the report.
func (p *Pprof) Describe() string {
	return "service pprof at " + p.base + " (heap?debug=1 MemStats, goroutine?debug=1 totals)"
}

// Detect checks that base really is net/http/pprof: both the heap and the
// goroutine endpoints must answer in pprof's own text formats.
func (p *Pprof) Detect(ctx context.Context) error {
	heap, err := get(ctx, p.client, p.base+"heap?debug=1", MaxTextBody)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotPprof, err)
	}
	if !bytes.HasPrefix(heap, []byte("heap profile:")) || !bytes.Contains(heap, []byte("\n# HeapInuse = ")) {
		return fmt.Errorf("%w: %sheap?debug=1 answered 200 but not with a heap profile", ErrNotPprof, p.base)
	}
	g, err := get(ctx, p.client, p.base+"goroutine?debug=1", MaxTextBody)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNotPprof, err)
	}
	if !bytes.HasPrefix(g, []byte("goroutine profile: total ")) {
		return fmt.Errorf("%w: %sgoroutine?debug=1 answered 200 but not with a goroutine profile", ErrNotPprof, p.base)
	}
	return nil
}

// Read takes one reading; forceGC runs a GC first (heap?gc=1), so HeapInuse
// is the post-GC in-use heap.
func (p *Pprof) Read(ctx context.Context, forceGC bool) (gate.Reading, error) {
	q := "heap?debug=1"
	if forceGC {
		q = "heap?gc=1&debug=1"
	}
	heap, err := get(ctx, p.client, p.base+q, MaxTextBody)
	if err != nil {
		return gate.Reading{}, err
	}
	r, err := ParseHeapText(heap)
	if err != nil {
		return gate.Reading{}, err
	}
	g, err := p.goroutines(ctx)
	if err != nil {
		return gate.Reading{}, err
	}
	r.Goroutines = g
	return r, nil
}

// goroutines reads only the first line of goroutine?debug=1.
func (p *Pprof) goroutines(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+"goroutine?debug=1", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("goroutine profile: %s", resp.Status)
	}
	line, err := bufio.NewReader(io.LimitReader(resp.Body, 4096)).ReadString('\n')
	if err != nil && line == "" {
		return 0, fmt.Errorf("goroutine profile: %w", err)
	}
	n, err := ParseGoroutineTotal(line)
	// Drain so the connection is reused; the rest is bounded by the limit.
	io.Copy(io.Discard, io.LimitReader(resp.Body, MaxTextBody))
	return n, err
}

// Profile fetches a binary profile ("heap" or "goroutine"), after a GC when
// forceGC is set.
func (p *Pprof) Profile(ctx context.Context, name string, forceGC bool) ([]byte, error) {
	url := p.base + name
	if forceGC {
		url += "?gc=1"
	}
	return get(ctx, p.client, url, MaxProfileBody)
}

// ParseHeapText reads HeapInuse and NumGC (and HeapAlloc, where the page
// has it) from a heap?debug=1 page.
func ParseHeapText(b []byte) (gate.Reading, error) {
	var r gate.Reading
	var found int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "# ") {
			continue
		}
		k, v, ok := strings.Cut(line[2:], " = ")
		if !ok {
			continue
		}
		switch k {
		case "HeapInuse":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("heap profile: HeapInuse %q: %w", v, err)
			}
			r.HeapInuse = n
			found++
		case "HeapAlloc":
			if n, err := strconv.ParseUint(v, 10, 64); err == nil {
				r.HeapAlloc = n
			}
		case "NumGC":
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				return r, fmt.Errorf("heap profile: NumGC %q: %w", v, err)
			}
			r.GCCycles = n
			found++
		}
	}
	if found < 2 {
		return r, errors.New("heap profile: no # HeapInuse and # NumGC lines (is this net/http/pprof?)")
	}
	return r, nil
}

// ParseGoroutineTotal reads "goroutine profile: total N".
func ParseGoroutineTotal(line string) (int, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(line), "goroutine profile: total ")
	if !ok {
		return 0, fmt.Errorf("goroutine profile: unexpected first line %q", truncate(line, 80))
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("goroutine profile: bad total %q", truncate(rest, 40))
	}
	return n, nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// Reader reads the runtime reader memgate adds to a build.
type Reader struct {
	base   string // http://127.0.0.1:port
	client *http.Client
}

// NewReader reads the injected reader listening at addr (host:port).
func NewReader(addr string, dial DialFunc) *Reader {
	return &Reader{base: "http://" + addr, client: newClient(dial)}
}

// Describe says where the numbers come from, for the report.
func (r *Reader) Describe() string {
	return "memgate runtime reader added to the build at " + r.base + " (runtime/metrics, no stop-the-world)"
}

// Detect checks that the reader answers.
func (r *Reader) Detect(ctx context.Context) error {
	_, err := r.Read(ctx, false)
	return err
}

type readerMetrics struct {
	HeapInuse  uint64 `json:"heap_inuse_bytes"`
	HeapLive   uint64 `json:"heap_live_bytes"`
	Goroutines int    `json:"goroutines"`
	GCCycles   uint64 `json:"gc_cycles"`
	GOGC       int64  `json:"gogc"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GoVersion  string `json:"go_version"`
	FDs        int    `json:"fds"`
	Sockets    int    `json:"sockets"`
	FDLimit    uint64 `json:"fd_limit"`
}

// Read takes one reading; forceGC runs a GC first.
func (r *Reader) Read(ctx context.Context, forceGC bool) (gate.Reading, error) {
	url := r.base + "/memgate/v1/metrics"
	if forceGC {
		url += "?gc=1"
	}
	b, err := get(ctx, r.client, url, 1<<20)
	if err != nil {
		return gate.Reading{}, err
	}
	var m readerMetrics
	if err := json.Unmarshal(b, &m); err != nil {
		return gate.Reading{}, fmt.Errorf("reader metrics: %w", err)
	}
	gogc := strconv.FormatInt(m.GOGC, 10)
	if m.GOGC < 0 {
		gogc = "off"
	}
	return gate.Reading{HeapInuse: m.HeapInuse, HeapLive: m.HeapLive, Goroutines: m.Goroutines,
		GCCycles: m.GCCycles, GOGC: gogc, GOMAXPROCS: m.GOMAXPROCS, GoVersion: m.GoVersion,
		FDs: max(m.FDs, 0), Sockets: max(m.Sockets, 0), FDLimit: m.FDLimit}, nil
}

// Profile fetches a binary profile from the reader.
func (r *Reader) Profile(ctx context.Context, name string, forceGC bool) ([]byte, error) {
	url := r.base + "/memgate/v1/profile/" + name
	if forceGC {
		url += "?gc=1"
	}
	return get(ctx, r.client, url, MaxProfileBody)
}
