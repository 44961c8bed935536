package loadgen

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/memgate/memgate/gate"
)

// Options shape the load.
type Options struct {
	Rate        float64       // requests per second
	Connections int           // fixed: goroutines on the server follow it
	Timeout     time.Duration // per request
	// Dial, when set, opens the connections (inside the service's own
	// network namespace); only loopback addresses are dialled either way.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// Tick is the load's progress, reported once a second.
type Tick struct {
	Elapsed  time.Duration
	Requests uint64  // completed so far in this attack
	Rate     float64 // completed over the last second
	Errors   uint64  // failed so far in this attack
}

// Generator sends load to one service. Its connections persist across
// attacks (warm-up, then the measured window) until CloseIdleConnections.
type Generator struct {
	targets   []vegeta.Target
	opts      Options
	workers   int // requests in flight at most: the connections and the streams held
	transport *http.Transport
	client    *http.Client
}

// MaxStreamsHeld bounds the streams a load may have in flight at once:
// each is a connection of the load generator's and a descriptor of the
// service's.
const MaxStreamsHeld = 2000

// StreamsHeld is how many streams the load may have in flight at once:
// requests rotate through the targets, so a stream target gets
// rate/len(targets) requests a second, each in flight for its hold and, at
// worst, the timeout its headers may take before that.
func StreamsHeld(rate float64, timeout time.Duration, targets []Target) int {
	var held float64
	for _, t := range targets {
		if t.Stream != nil {
			held += rate / float64(len(targets)) * (t.Stream.Hold + timeout).Seconds()
		}
	}
	if held == 0 {
		return 0
	}
	return int(math.Ceil(held)) + 1
}

func checkKinds(targets []Target) error {
	for _, t := range targets {
		if t.Stream != nil && t.Stream.Hold <= 0 {
			return fmt.Errorf("loadgen: stream %s %s: the hold must be > 0", t.Method, t.URL)
		}
		if t.Leave.After > 0 && (t.Leave.Share <= 0 || t.Leave.Share > 1) {
			return fmt.Errorf("loadgen: %s %s: the share of requests that leave early must be in (0, 1], not %g", t.Method, t.URL, t.Leave.Share)
		}
	}
	return nil
}

// New prepares a generator for targets resolved against base (e.g.
// "http://127.0.0.1:8123"). Only loopback targets are accepted, and the
// dialer refuses any other address whatever the name resolves to.
func New(base string, targets []Target, opts Options) (*Generator, error) {
	if opts.Rate <= 0 || opts.Connections <= 0 || opts.Timeout <= 0 {
		return nil, fmt.Errorf("loadgen: rate, connections and timeout must be > 0: %+v", opts)
	}
	if err := checkKinds(targets); err != nil {
		return nil, err
	}
	held := StreamsHeld(opts.Rate, opts.Timeout, targets)
	if held > MaxStreamsHeld {
		return nil, fmt.Errorf("loadgen: the load could have %d streams in flight at once, more than %d: lower the rate, the hold or the timeout", held, MaxStreamsHeld)
	}
	workers := opts.Connections + held
	vt, err := resolve(base, targets)
	if err != nil {
		return nil, err
	}
	dialer := &net.Dialer{
		Timeout:   opts.Timeout,
		KeepAlive: 30 * time.Second,
		Control: func(_, address string, _ syscall.RawConn) error {
			host, _, err := net.SplitHostPort(address)
			if err != nil {
				return err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return fmt.Errorf("loadgen: refusing to connect to %s: not loopback", address)
			}
			return nil
		},
	}
	dial := dialer.DialContext
	if opts.Dial != nil {
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, _, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
				return nil, fmt.Errorf("loadgen: refusing to connect to %s: not loopback", addr)
			}
			return opts.Dial(ctx, network, addr)
		}
	}
	tr := &http.Transport{
		DialContext:         dial,
		MaxIdleConnsPerHost: workers,
		MaxConnsPerHost:     workers,
		IdleConnTimeout:     0, // keep them until CloseIdleConnections
		DisableCompression:  true,
		// Headers are read whole (bodies are not): bound them below
		// net/http's 10 MB, per connection.
		MaxResponseHeaderBytes: 1 << 20,
	}
	kinds := &kindTransport{base: tr, timeout: opts.Timeout, targets: targets, counts: make([]atomic.Uint64, len(targets))}
	return &Generator{
		targets:   vt,
		opts:      opts,
		workers:   workers,
		transport: tr,
		// No client timeout: kindTransport keeps each kind's deadlines.
		client: &http.Client{Transport: kinds},
	}, nil
}

// Attack sends load for d, or until ctx ends, and summarises it. tick, when
// not nil, is called once a second from the attack's goroutine.
func (g *Generator) Attack(ctx context.Context, d time.Duration, tick func(Tick)) (gate.Load, error) {
	// vegeta closes an attacker for good when its attack ends, so each
	// attack gets a new one; the shared client keeps the connections.
	atk := vegeta.NewAttacker(
		vegeta.Client(g.client),
		vegeta.Workers(uint64(g.workers)),
		vegeta.MaxWorkers(uint64(g.workers)),
		vegeta.MaxBody(0),
		vegeta.Redirects(vegeta.NoFollow),
	)
	pacer := vegeta.ConstantPacer{Freq: int(g.opts.Rate + 0.5), Per: time.Second}
	if g.opts.Rate < 1 {
		pacer = vegeta.ConstantPacer{Freq: 1, Per: time.Duration(float64(time.Second) / g.opts.Rate)}
	}
	// The attack's schedule: hit n is due one interval after hit n-1,
	// the first one interval after the start (vegeta's ConstantPacer).
	began := time.Now()
	interval := pacer.Per / time.Duration(pacer.Freq)
	results := atk.Attack(vegeta.NewStaticTargeter(g.targets...), pacer, d, "memgate")

	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()

	var (
		m          vegeta.Metrics
		k          kindCounts
		scheduled  vegeta.LatencyMetrics
		errs       = map[string]int{}
		start      = time.Now()
		ticker     = time.NewTicker(time.Second)
		total      uint64
		failed     uint64
		lastSecond uint64
	)
	defer ticker.Stop()
loop:
	for {
		select {
		case r, ok := <-results:
			if !ok {
				break loop
			}
			k.classify(r)
			m.Add(r)
			scheduled.Add(fromSchedule(r, began, interval))
			total++
			lastSecond++
			if r.Error != "" {
				failed++
				if len(errs) < 20 {
					errs[r.Error]++
				}
			}
		case <-ticker.C:
			if tick != nil {
				tick(Tick{Elapsed: time.Since(start), Requests: total, Rate: float64(lastSecond), Errors: failed})
			}
			lastSecond = 0
		}
	}
	m.Close()
	load := summarise(&m, g.opts.Rate, errs)
	k.apply(&load)
	load.ScheduledLatency = percentiles(&scheduled, total)
	if err := ctx.Err(); err != nil {
		return load, fmt.Errorf("loadgen: attack stopped: %w", err)
	}
	return load, nil
}

// fromSchedule is a request's latency counted from when the schedule had
// it due rather than from when it was sent. With a fixed number of
// connections a stall that holds them all also holds back every request
// due meanwhile; counted from the send they look fast ("coordinated
// omission"), and a 300 ms lock every few seconds hides below the p99.
// began is taken just before vegeta's own, so a request is never due
// after it was sent; the latency from the send is the floor.
func fromSchedule(r *vegeta.Result, began time.Time, interval time.Duration) time.Duration {
	due := began.Add(time.Duration(r.Seq+1) * interval)
	return max(r.Timestamp.Add(r.Latency).Sub(due), r.Latency)
}

func percentiles(l *vegeta.LatencyMetrics, n uint64) gate.Latency {
	if n == 0 {
		return gate.Latency{}
	}
	return gate.Latency{
		P50: gate.Duration(l.Quantile(0.5)), P95: gate.Duration(l.Quantile(0.95)),
		P99: gate.Duration(l.Quantile(0.99)), Max: gate.Duration(l.Max),
		Mean: gate.Duration(l.Total / time.Duration(n)),
	}
}

// CloseIdleConnections closes the generator's keep-alive connections, so a
// service's per-connection goroutines can go before the settle check.
func (g *Generator) CloseIdleConnections() { g.transport.CloseIdleConnections() }

func summarise(m *vegeta.Metrics, requested float64, errs map[string]int) gate.Load {
	codes := make(map[string]int, len(m.StatusCodes))
	for k, v := range m.StatusCodes {
		codes[k] = v
	}
	l := gate.Load{
		RequestedRate: requested,
		AchievedRate:  m.Rate,
		Requests:      m.Requests,
		SuccessRatio:  m.Success,
		Duration:      gate.Duration(m.Duration),
		StatusCodes:   codes,
		Latency: gate.Latency{
			P50: gate.Duration(m.Latencies.P50), P95: gate.Duration(m.Latencies.P95),
			P99: gate.Duration(m.Latencies.P99), Max: gate.Duration(m.Latencies.Max),
			Mean: gate.Duration(m.Latencies.Mean),
		},
	}
	type kv struct {
		msg string
		n   int
	}
	var list []kv
	for k, v := range errs {
		list = append(list, kv{k, v})
	}
	sort.Slice(list, func(i, j int) bool {
		return list[i].n > list[j].n || (list[i].n == list[j].n && list[i].msg < list[j].msg)
	})
	for i, e := range list {
		if i == 5 {
			break
		}
		l.Errors = append(l.Errors, fmt.Sprintf("%s (%d)", e.msg, e.n))
	}
	return l
}

// kindCounts follows the results of streams and of requests left early,
// which vegeta alone would count wrongly: a stream's latency is its time to
// the first byte, not its hold, and a request left before its response is
// neither a status nor an error.
type kindCounts struct {
	streams, left, leftBefore, ok uint64
}

// classify counts r and rewrites what vegeta recorded for it.
func (k *kindCounts) classify(r *vegeta.Result) {
	if ttfb := r.Headers.Get(hdrTTFB); ttfb != "" {
		k.streams++
		if ns, err := strconv.ParseInt(ttfb, 10, 64); err == nil {
			r.Latency = time.Duration(ns)
		}
		if msg := r.Headers.Get(hdrUnexpected); msg != "" {
			r.Error = msg // rather than vegeta's "404 Not Found": say what was wanted
		}
	}
	switch r.Headers.Get(hdrLeft) {
	case "before":
		k.left++
		k.leftBefore++
		r.Code = 0 // vegeta counts it under "0": apply takes it out
	case "during":
		k.left++
	}
	if r.Error == "" && (r.Code >= 200 && r.Code < 400 || r.Headers.Get(hdrLeft) == "before") {
		k.ok++
	}
}

// apply puts the counts into a load's summary.
func (k *kindCounts) apply(l *gate.Load) {
	l.Streams, l.LeftEarly = k.streams, k.left
	if k.leftBefore > 0 {
		if l.StatusCodes["0"] -= int(k.leftBefore); l.StatusCodes["0"] <= 0 {
			delete(l.StatusCodes, "0")
		}
	}
	if l.Requests > 0 {
		l.SuccessRatio = float64(k.ok) / float64(l.Requests)
	}
}
