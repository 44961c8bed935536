package gate

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// Headline is the one-line reason for a report's verdict, written to be read
// in a check run title: it states the finding and, when it can, where to look.
func Headline(r *Report) string {
	failed := func(name string) (Criterion, bool) {
		c, ok := r.Criterion(name)
		return c, ok && c.Status == StatusFail
	}
	switch r.Verdict {
	case Error:
		return r.Reason
	case Inconclusive:
		if c, ok := r.Criterion(CritLoadSuccess); ok && c.Status != StatusPass {
			return fmt.Sprintf("load not valid: %.1f%% of requests succeeded (need %.0f%%)", 100*c.Value, 100*c.Limit)
		}
		if c, ok := r.Criterion(CritLoadRate); ok && c.Status != StatusPass {
			return fmt.Sprintf("load not valid: %.0f of %.0f requests/s achieved", r.Load.AchievedRate, r.Load.RequestedRate)
		}
		for _, c := range r.Criteria {
			if c.Status == StatusInconclusive {
				return "too little data: " + c.Detail
			}
		}
		return "inconclusive"
	case Fail:
		var parts []string
		if c, ok := failed(CritHeapGrowth); ok {
			window := r.Baseline.MeasureTo - r.Baseline.SteadyFrom
			part := fmt.Sprintf("heap +%s/request (+%s over %.0f s)", FormatBytes(c.Value),
				FormatBytes(c.Value*r.Load.AchievedRate*window), window)
			if len(r.Attribution.Heap) > 0 {
				h := r.Attribution.Heap[0]
				what := "held by " + h.Where()
				if f, ok := r.Attribution.finding(false); ok {
					what = f.Summary
				} else if held := heldByLeakedGoroutines(r, h); held != "" {
					what = held
				}
				if h.Uncertain() {
					part += fmt.Sprintf(", perhaps %s (%s: too few to be sure)", what, plural(int64(max(1, math.Round(h.Samples))), "heap profile sample"))
				} else {
					part += ", " + what
				}
			}
			parts = append(parts, part)
		} else if c, ok := failed(CritHeapFluctuation); ok {
			parts = append(parts, fmt.Sprintf("post-GC heap fluctuates %.0f%% (limit %.0f%%)", 100*c.Value, 100*c.Limit))
		}
		_, grew := failed(CritGoroutineGrowth)
		_, stuck := failed(CritGoroutineSettle)
		if grew || stuck {
			delta := r.Settle.Final - r.Settle.WindowStart
			part := fmt.Sprintf("goroutines %s over %.0f s", signedCount(int64(delta)), r.Baseline.MeasureTo-r.Baseline.MeasureFrom)
			if !stuck {
				c, _ := r.Criterion(CritGoroutineGrowth)
				part = fmt.Sprintf("goroutines grow %.1f per 1k requests", c.Value)
			}
			if f, ok := r.Attribution.finding(true); ok {
				part += ": " + f.Summary
			} else if len(r.Attribution.Goroutines) > 0 {
				part += ", stuck in " + r.Attribution.Goroutines[0].Where()
			}
			parts = append(parts, part)
		}
		if part := fdHeadline(r); part != "" {
			parts = append(parts, part)
		}
		if p := r.Attribution.ProvenLeaks.Headline(); p != "" {
			parts = append(parts, p)
		}
		if c, ok := r.Criterion(CritLoadRate); ok && c.Status == StatusFail {
			// The leak outlasted a load it made the service too slow for.
			parts = append(parts, fmt.Sprintf("held after a load it slowed to %.0f of %.0f requests/s", r.Load.AchievedRate, r.Load.RequestedRate))
		}
		if len(parts) == 0 {
			return "gate failed"
		}
		return strings.Join(parts, "; ")
	}
	fl, _ := r.Criterion(CritHeapFluctuation)
	files := ""
	if _, ok := r.Criterion(CritFDSettle); ok {
		files = ", open files steady and settled"
	}
	return fmt.Sprintf("no leak: post-GC heap steady (fluctuation %.1f%%, no growth), goroutines steady and settled%s", 100*fl.Value, files)
}

// heldByLeakedGoroutines says what holds a heap site the repository has no
// frame in, when the goroutines leaked too and the site is what each of
// them keeps: the runtime's record of a goroutine (runtime.malg), or the
// buffers net/http gives each server connection, kept while its handler
// never returns (seen on a real SSE server: the headline said "held by
// bufio.NewWriterSize"), or each client connection, kept while nobody
// closes it; or what the leaked goroutines built before they blocked.
// "" otherwise: the goroutines' finding names the code to fix.
func heldByLeakedGoroutines(r *Report, h HeapSite) string {
	f, ok := r.Attribution.finding(true)
	if !ok {
		return ""
	}
	if BuiltByLeakedGoroutines(h, f) {
		// Allocated on the leaked goroutines' way to where they block
		// (an answer built, then sent forever): theirs.
		return fmt.Sprintf("held by the goroutines that leaked, built by %s before they blocked", h.Where())
	}
	if h.Culprit != nil {
		// The repository allocated it; the leaked goroutines may be what
		// keeps it (a real exporter's probe leaked collectors whose
		// clients' buffers its getClusterName had allocated): say
		// allocated, not held, so the reader does not hunt for a holder
		// there.
		return fmt.Sprintf("allocated by %s (perhaps kept by the goroutines that leaked)", h.Where())
	}
	switch {
	case h.Function == "runtime.malg":
		return "held by the goroutines that leaked"
	case slices.Contains(h.Stack, "net/http.(*conn).serve"):
		return fmt.Sprintf("held by the connections of the handlers that never return (net/http's per-connection %s)", h.Function)
	case f.Kind == KindConnectionsLeaked && slices.Contains(h.Stack, "net/http.(*Transport).dialConn"):
		return fmt.Sprintf("held by the HTTP client connections that leaked (net/http's per-connection %s)", h.Function)
	}
	return ""
}

// BuiltByLeakedGoroutines: the heap site was allocated on the way of the
// goroutines a finding says leaked (their culprit, or a closure of it, is
// on its stack), and holds a few objects per leaked goroutine, not one per
// request: a handler that caches every request and blocks now and then
// still has a cache.
func BuiltByLeakedGoroutines(h HeapSite, f Finding) bool {
	if f.Culprit == nil || f.Count <= 0 || (h.DeltaObjs > 0 && h.DeltaObjs > 8*f.Count) {
		return false
	}
	for _, fr := range h.Stack {
		if fr == f.Culprit.Function || strings.HasPrefix(fr, f.Culprit.Function+".func") {
			return true
		}
	}
	return false
}

// fdHeadline is the failed descriptor criteria's part of a headline.
func fdHeadline(r *Report) string {
	grow, _ := r.Criterion(CritFDGrowth)
	settle, _ := r.Criterion(CritFDSettle)
	if grow.Status != StatusFail && settle.Status != StatusFail {
		return ""
	}
	part := fmt.Sprintf("open files grow %.1f per 1k requests", grow.Value)
	if settle.Status == StatusFail {
		part = fmt.Sprintf("%s open files not closed after the load", signedCount(int64(settle.Value)))
	}
	if r.Settle.FDLimitReached() {
		part += fmt.Sprintf(" (reached its RLIMIT_NOFILE of %d)", r.Settle.FDLimit)
	}
	if len(r.Attribution.OpenFiles) > 0 {
		// No profile shows the code that holds a descriptor; what it is
		// open on is what a reviewer can search the change for.
		f := r.Attribution.OpenFiles[0]
		part += fmt.Sprintf(", %s more on %s", FormatCount(int64(f.Delta)), f.Target)
	}
	return part
}

// Where names the function to look at: the first frame the repository
// owns, with its file and line, when there is one; else the first frame
// outside the standard library; else the allocating function.
func (h HeapSite) Where() string {
	if h.Culprit != nil {
		return h.Culprit.String()
	}
	if h.Origin != "" {
		return h.Origin
	}
	return h.Function
}

// Where names where the goroutines wait: the first frame the repository
// owns, with its file and line, when there is one; else Top.
func (g GoroutineStack) Where() string {
	if g.Culprit != nil {
		return g.Culprit.String()
	}
	return g.Top
}

// finding is the first finding of the heap's kinds, or of the goroutines'.
func (a Attribution) finding(goroutines bool) (Finding, bool) {
	for _, f := range a.Findings {
		if f.Kind.Goroutines() == goroutines {
			return f, true
		}
	}
	return Finding{}, false
}

// Headline is the runtime's proof in a few words, "" when it proved none:
// "proven leaked by the runtime: 2,400 in main.handleOrder.func1".
func (p *ProvenLeaks) Headline() string {
	if p == nil || p.Total <= 0 || len(p.Stacks) == 0 {
		return ""
	}
	s := fmt.Sprintf("proven leaked by the runtime: %s in %s", FormatCount(p.Stacks[0].Count), p.Stacks[0].Where())
	if rest := p.Total - p.Stacks[0].Count; rest > 0 {
		s += fmt.Sprintf(" (+%s elsewhere)", FormatCount(rest))
	}
	return s
}
