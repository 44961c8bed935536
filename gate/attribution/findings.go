package attribution

import (
	"fmt"
	"sort"
	"strings"

	"github.com/memgate/memgate/gate"
)

// Findings recognises the kinds of leak in the sites and stacks that grew
// (all of them, as HeapGrowth and GoroutineGrowth return them with top
// <= 0): each a rule, in the words a reviewer knows, naming the
// repository's function to fix. Heap kinds come first, largest growth
// first, then goroutine kinds, most goroutines first.
func Findings(heap []gate.HeapSite, gor []gate.GoroutineStack) []gate.Finding {
	used := make([]bool, len(heap)) // heap sites a finding has explained
	var hf, gf []gate.Finding
	if f, ok := connectionsLeaked(heap, gor, used); ok {
		gf = append(gf, f)
	}
	if f, ok := requestsRetained(heap, used); ok {
		hf = append(hf, f)
	}
	hf = append(hf, timersNotStopped(heap, used)...)
	blocked := goroutinesBlocked(gor)
	if f, ok := unboundedCache(heap, used, blocked); ok {
		hf = append(hf, f)
	}
	gf = append(gf, blocked...)
	sort.SliceStable(hf, func(i, j int) bool { return hf[i].Bytes > hf[j].Bytes })
	sort.SliceStable(gf, func(i, j int) bool { return gf[i].Count > gf[j].Count })
	return append(hf, gf...)
}

// has reports whether a stack holds a frame whose function starts with
// one of the prefixes.
func has(stack []string, prefixes ...string) bool {
	for _, f := range stack {
		for _, p := range prefixes {
			if strings.HasPrefix(f, p) {
				return true
			}
		}
	}
	return false
}

// named is how a finding names its culprit: the repository's frame with
// its file and line, else the function it has.
func named(c *gate.Frame, fallback string) string {
	if c != nil {
		return c.String()
	}
	return fallback
}

// readsRequests: net/http's server reading a request (its headers, URL,
// body, context) allocated this.
func readsRequests(stack []string) bool {
	return has(stack, "net/http.readRequest", "net/http.(*conn).readRequest")
}

// inHandler: allocated while a handler served a request.
func inHandler(stack []string) bool {
	return has(stack, "net/http.serverHandler.ServeHTTP", "net/http.HandlerFunc.ServeHTTP", "net/http.(*ServeMux).ServeHTTP")
}

// requestsRetained: growth spread over net/http's request reading means
// whole requests stay alive. What keeps them is named by the largest
// growth a handler allocated per request: the first frame of the
// repository on it (a registry keyed by *http.Request, say).
func requestsRetained(heap []gate.HeapSite, used []bool) (gate.Finding, bool) {
	var total, reading int64
	var samples float64
	readSites, sampled := 0, true
	for _, h := range heap {
		if h.DeltaBytes <= 0 {
			continue
		}
		total += h.DeltaBytes
		if readsRequests(h.Stack) {
			reading += h.DeltaBytes
			readSites++
			samples += h.Samples
			sampled = sampled && h.Samples > 0
		}
	}
	// A third of the growth, over several of net/http's allocations and
	// enough heap-profile samples: not one buffer the server happened to
	// keep, nor a sample or two of the requests in flight.
	if total == 0 || readSites < 2 || 3*reading < total || sampled && samples < gate.MinHeapSamples {
		return gate.Finding{}, false
	}
	f := gate.Finding{Kind: gate.KindRequestsRetained, Bytes: reading,
		Summary: "whole requests retained (their headers, URL and context, as net/http read them)"}
	for i, h := range heap {
		if !readsRequests(h.Stack) {
			continue
		}
		used[i] = true
	}
	if h, ok := holder(heap, used); ok {
		f.Culprit = h.Culprit
		f.Summary += ", held per request by " + named(h.Culprit, firstNot(h.Stack, "net/http."))
	}
	// What else the same code allocated per request is the same leak.
	for i, h := range heap {
		if !used[i] && h.DeltaBytes > 0 && inHandler(h.Stack) && sameFrame(h.Culprit, f.Culprit) {
			used[i] = true
			f.Bytes += h.DeltaBytes
		}
	}
	return f, true
}

// holder is the site that names what holds each request: of the growth
// handlers allocated per request, the repository's function with the
// most; within it, its call into other code (a registry keyed by the
// request, say) rather than its own allocations, so that the line named
// does not depend on which of them the profile happened to sample most.
func holder(heap []gate.HeapSite, used []bool) (gate.HeapSite, bool) {
	byFn := map[string]int64{}
	best, bestFn := int64(0), ""
	first := -1
	for i, h := range heap {
		if used[i] || h.DeltaBytes <= 0 || !inHandler(h.Stack) {
			continue
		}
		if first < 0 {
			first = i
		}
		if h.Culprit == nil {
			continue
		}
		byFn[h.Culprit.Function] += h.DeltaBytes
		if n := byFn[h.Culprit.Function]; n > best {
			best, bestFn = n, h.Culprit.Function
		}
	}
	if bestFn == "" {
		if first < 0 {
			return gate.HeapSite{}, false
		}
		return heap[first], true
	}
	pick := -1
	for i, h := range heap {
		if used[i] || h.DeltaBytes <= 0 || !inHandler(h.Stack) || h.Culprit == nil || h.Culprit.Function != bestFn {
			continue
		}
		if pick < 0 || (h.Function != bestFn && heap[pick].Function == bestFn) {
			pick = i
		}
	}
	return heap[pick], true
}

func sameFrame(a, b *gate.Frame) bool {
	return a != nil && b != nil && a.Function == b.Function
}

// firstNot is the first function on a stack outside the given package
// prefix and the runtime.
func firstNot(stack []string, prefix string) string {
	for _, f := range stack {
		if !strings.HasPrefix(f, prefix) && !strings.HasPrefix(f, "runtime.") {
			return f
		}
	}
	return allocatingFunction(stack)
}

// timerFuncs are the time package's ways to start a timer or ticker.
var timerFuncs = []string{"time.AfterFunc", "time.NewTicker", "time.NewTimer", "time.Tick", "time.After"}

// timersNotStopped: growth allocated by starting timers or tickers, per
// repository function that started them.
func timersNotStopped(heap []gate.HeapSite, used []bool) []gate.Finding {
	var out []gate.Finding
	byCulprit := map[string]int{}
	for i, h := range heap {
		if used[i] || h.DeltaBytes <= 0 {
			continue
		}
		how := ""
		for _, f := range h.Stack {
			for _, t := range timerFuncs {
				if f == t {
					how = t
				}
			}
			if how != "" {
				break
			}
		}
		if how == "" {
			continue
		}
		used[i] = true
		key := named(h.Culprit, h.Function)
		if j, ok := byCulprit[key]; ok {
			out[j].Bytes += h.DeltaBytes
			continue
		}
		byCulprit[key] = len(out)
		out = append(out, gate.Finding{Kind: gate.KindTimersNotStopped, Culprit: h.Culprit, Bytes: h.DeltaBytes,
			Summary: fmt.Sprintf("timers never stopped (%s), started by %s", how, key)})
	}
	return out
}

// unboundedCache: the largest growth left is allocated by the repository's
// own function, which keeps it: a map or slice nothing evicts from.
// What a function allocates for the goroutines it starts and that leak
// (their closures, channels) is theirs, not a cache's; so is what the
// leaked goroutines allocated on their way to where they block (seen: a
// tracker's announce built its answer, then blocked forever sending it,
// and the answers' encoder was called "a cache without a bound").
func unboundedCache(heap []gate.HeapSite, used []bool, blocked []gate.Finding) (gate.Finding, bool) {
	for i, h := range heap {
		if used[i] || h.DeltaBytes <= 0 {
			continue
		}
		if h.Culprit == nil || h.Culprit.Function != h.Function {
			return gate.Finding{}, false
		}
		for _, b := range blocked {
			if b.Culprit != nil && (strings.HasPrefix(b.Culprit.Function, h.Function) || gate.BuiltByLeakedGoroutines(h, b)) {
				return gate.Finding{}, false
			}
		}
		used[i] = true
		return gate.Finding{Kind: gate.KindUnboundedCache, Culprit: h.Culprit, Bytes: h.DeltaBytes,
			Summary: fmt.Sprintf("a cache without a bound: %s keeps what it adds (+%s), nothing evicts it", h.Culprit, gate.FormatBytes(float64(h.DeltaBytes)))}, true
	}
	return gate.Finding{}, false
}

// connectionsLeaked: goroutines parked in an HTTP client connection's read
// loop are connections nobody closed; the stacks have no frame of the
// repository, so who made them comes from the heap: the repository's
// function that allocated, itself, about as many objects as there are
// connections (a client or transport per call), else the repository's
// frame that called into net/http's client most.
func connectionsLeaked(heap []gate.HeapSite, gor []gate.GoroutineStack, used []bool) (gate.Finding, bool) {
	conns, _ := ClientConnections(gor)
	if conns <= 0 {
		return gate.Finding{}, false
	}
	f := gate.Finding{Kind: gate.KindConnectionsLeaked, Count: conns,
		Summary: fmt.Sprintf("%s HTTP client connections leaked", gate.FormatCount(conns))}
	maker := -1
	for i, h := range heap {
		if h.DeltaBytes > 0 && h.Culprit != nil && h.Culprit.Function == h.Function && h.DeltaObjs >= conns/4 && h.DeltaObjs <= conns*8 {
			maker = i
			break
		}
	}
	if maker < 0 {
		for i, h := range heap {
			if h.DeltaBytes > 0 && h.Culprit != nil && has(h.Stack, "net/http.(*Client).", "net/http.(*Transport).") {
				maker = i
				break
			}
		}
	}
	if maker < 0 {
		f.Summary += " (no function of the repository on their stacks or allocations)"
		return f, true
	}
	used[maker] = true
	f.Culprit, f.Bytes = heap[maker].Culprit, heap[maker].DeltaBytes
	f.Summary += ", made by " + heap[maker].Culprit.String()
	return f, true
}

// ClientConnections counts the HTTP client connections that grew in a
// goroutine diff, by their read loops, and the goroutines they hold (read
// and write loops).
func ClientConnections(gor []gate.GoroutineStack) (conns, goroutines int64) {
	for _, g := range gor {
		c, n := clientLoops(g.Stack)
		conns += c * g.Delta
		goroutines += n * g.Delta
	}
	return conns, goroutines
}

// clientLoops: a stack in an HTTP/1 client connection's read loop is one
// connection and one of its goroutines, in its write loop one more
// goroutine; an HTTP/2 client connection has a read loop alone (net/http's
// bundled copy, or golang.org/x/net/http2's).
func clientLoops(stack []string) (conns, goroutines int64) {
	switch {
	case has(stack, "net/http.(*persistConn).readLoop", "net/http.(*http2ClientConn).readLoop", "golang.org/x/net/http2.(*ClientConn).readLoop"):
		return 1, 1
	case has(stack, "net/http.(*persistConn).writeLoop"):
		return 0, 1
	}
	return 0, 0
}

// CountClientConnections counts the HTTP client connections open in one
// goroutine profile, whatever their read loops wait in (an idle one in
// Peek, a busy one in a select), and their goroutines.
func CountClientConnections(goroutineProfile []byte) (conns, goroutines int64, err error) {
	p, err := parse(goroutineProfile)
	if err != nil {
		return 0, 0, fmt.Errorf("goroutine profile: %w", err)
	}
	for _, s := range p.Sample {
		c, n := clientLoops(names(framesOf(s)))
		conns += c * s.Value[0]
		goroutines += n * s.Value[0]
	}
	return conns, goroutines, nil
}

// waits are the ways a goroutine blocks on another that never comes, by
// the frame that shows it.
var waits = []struct{ frame, words string }{
	{"sync.(*Cond).Wait", "in sync.Cond.Wait, never signalled"},
	{"sync.(*WaitGroup).Wait", "in WaitGroup.Wait, Done never called"},
	{"sync.(*RWMutex).", "on a sync.RWMutex never unlocked"},
	{"sync.(*Mutex).Lock", "on a sync.Mutex never unlocked"},
	{"internal/sync.(*Mutex).Lock", "on a sync.Mutex never unlocked"},
	{"runtime.chansend", "on a channel send with no receiver"},
	{"runtime.chanrecv", "on a channel receive with no sender"},
	{"runtime.selectgo", "in a select with no ready case"},
	{"runtime.block", "in an empty select"},
}

// goroutinesBlocked: goroutine stacks that grew, waiting on a channel or
// a lock, per repository function and way of waiting.
func goroutinesBlocked(gor []gate.GoroutineStack) []gate.Finding {
	var out []gate.Finding
	seen := map[string]int{}
	for _, g := range gor {
		if g.Delta <= 0 || has(g.Stack, "net/http.(*persistConn).") || has(g.Stack, "internal/poll.") {
			continue
		}
		words := waitOf(g.Stack)
		if words == "" {
			continue
		}
		where := named(g.Culprit, g.Top)
		key := where + "\x00" + words
		if j, ok := seen[key]; ok {
			out[j].Count += g.Delta
			continue
		}
		seen[key] = len(out)
		// No count: the headline has it, and the check's summary says it
		// beside.
		out = append(out, gate.Finding{Kind: gate.KindGoroutinesBlocked, Culprit: g.Culprit, Count: g.Delta,
			Summary: "blocked " + words + ", in " + where})
	}
	return out
}

// waitOf says how a goroutine waits: the way of its leaf-most frame that
// shows one ("" for none: network I/O, a sleep, a syscall).
func waitOf(stack []string) string {
	for _, f := range stack {
		for _, w := range waits {
			if strings.HasPrefix(f, w.frame) {
				return w.words
			}
		}
	}
	return ""
}
