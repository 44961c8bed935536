package checks

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/google/go-github/v60/github"

	"github.com/memgate/memgate/gate"
)

// GitHub's limits on a check run's annotations.
const (
	maxAnnotationsPerRequest = 50
	maxAnnotationTitleBytes  = 255
	maxAnnotationTextBytes   = 64 << 10 // message and raw_details each
)

// maxAnnotations bounds a report's annotations: five requests. A gate
// names ten sites of each kind; a stored report may name more, and each
// batch is one more write against GitHub's secondary rate limit.
const maxAnnotations = 5 * maxAnnotationsPerRequest

// The annotation levels, loudest first.
const (
	levelFailure = "failure"
	levelWarning = "warning"
	levelNotice  = "notice"
)

// majorShare is the share of its kind's growth from which a site is a
// culprit of the failure rather than a bystander.
const majorShare = 0.1

// annotations are a failed gate's check run annotations: one on each line
// of the repository that a named site's culprit (the first frame the
// repository owns) is on, with the growth, what to look at and a link to
// the run page. Sites without such a line (the standard library's, a
// dependency's in the module cache, a path the profile made up) are not
// annotated. Sites on one line share one annotation. Loudest first, at
// most maxAnnotations.
func annotations(rep *gate.Report, runURL string) []*github.CheckRunAnnotation {
	if rep.Verdict != gate.Fail {
		return nil
	}
	var ls lineSet
	heapFailed := failed(rep, gate.CritHeapGrowth, gate.CritHeapFluctuation)
	heapTotal, heapMax := growth(rep.Attribution.Heap, func(h gate.HeapSite) int64 { return h.DeltaBytes })
	for _, h := range rep.Attribution.Heap {
		src, ok := h.Culprit.Source()
		if !ok || h.DeltaBytes <= 0 {
			continue
		}
		level := siteLevel(heapFailed, h.Uncertain(), h.DeltaBytes, heapTotal, heapMax)
		ls.add(src, level, "memgate: heap grows here (+"+gate.FormatBytes(float64(h.DeltaBytes))+")", heapMessage(rep, h, src), h.Stack)
	}
	gorFailed := failed(rep, gate.CritGoroutineGrowth, gate.CritGoroutineSettle)
	gorTotal, gorMax := growth(rep.Attribution.Goroutines, func(g gate.GoroutineStack) int64 { return g.Delta })
	for _, g := range rep.Attribution.Goroutines {
		src, ok := g.Culprit.Source()
		if !ok || g.Delta <= 0 {
			continue
		}
		level := siteLevel(gorFailed, false, g.Delta, gorTotal, gorMax)
		ls.add(src, level, "memgate: goroutines pile up here (+"+gate.FormatCount(g.Delta)+")", goroutineMessage(rep, g, src), g.Stack)
	}
	return ls.annotations(runURL)
}

// siteLevel is how loud a site's annotation is: failure for a culprit of
// what the gate failed on (the largest site of its kind, or one holding a
// tenth of the growth) resting on enough samples; warning for such a site
// on too few samples to be sure; notice for a small share, or for growth of
// a kind the gate did not fail on.
func siteLevel(kindFailed, uncertain bool, delta, total, largest int64) string {
	switch {
	case !kindFailed:
		return levelNotice
	case delta < largest && float64(delta) < majorShare*float64(total):
		return levelNotice
	case uncertain:
		return levelWarning
	}
	return levelFailure
}

func heapMessage(rep *gate.Report, h gate.HeapSite, src gate.SourceLine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%s in-use over the window%s.", gate.FormatBytes(float64(h.DeltaBytes)), perRequest(rep, func(n float64) string {
		return gate.FormatBytes(float64(h.DeltaBytes)/n) + "/request"
	}))
	if fn := flatten(name(h.Culprit.Function)); h.Function == h.Culprit.Function {
		fmt.Fprintf(&b, " Allocated here, in %s.", fn)
	} else {
		fmt.Fprintf(&b, " Allocated in %s, reached from %s on this line.", flatten(name(h.Function)), fn)
	}
	if h.Uncertain() {
		fmt.Fprintf(&b, " It rests on about %.0f heap-profile samples: a lead, not a finding.", math.Max(1, math.Round(h.Samples)))
	}
	return b.String() + vendoredNote(src)
}

func goroutineMessage(rep *gate.Report, g gate.GoroutineStack, src gate.SourceLine) string {
	var b strings.Builder
	fmt.Fprintf(&b, "+%s goroutines over the window (%s in all after the load settled)%s.", gate.FormatCount(g.Delta), gate.FormatCount(g.Count),
		perRequest(rep, func(n float64) string { return fmt.Sprintf("%.1f per 1k requests", 1000*float64(g.Delta)/n) }))
	if fn := flatten(name(g.Culprit.Function)); g.Top == g.Culprit.Function {
		fmt.Fprintf(&b, " They wait here, in %s.", fn)
	} else {
		fmt.Fprintf(&b, " They wait in %s, reached from %s on this line.", flatten(name(g.Top)), fn)
	}
	return b.String() + vendoredNote(src)
}

// perRequest is ", N requests; rate" for the measured window's load, or
// nothing when the report has no requests to divide by.
func perRequest(rep *gate.Report, rate func(requests float64) string) string {
	n := rep.Load.Requests
	if n == 0 {
		return ""
	}
	return fmt.Sprintf(", %s requests; %s", gate.FormatCount(int64(n)), rate(float64(n)))
}

func vendoredNote(src gate.SourceLine) string {
	if !src.Vendored {
		return ""
	}
	return " This is vendored code, the repository's copy of a dependency: the fix may belong upstream, or in how the service uses it."
}

func failed(rep *gate.Report, names ...string) bool {
	for _, n := range names {
		if c, ok := rep.Criterion(n); ok && c.Status == gate.StatusFail {
			return true
		}
	}
	return false
}

// growth is the total and the largest positive growth of a kind's sites.
func growth[S any](sites []S, delta func(S) int64) (total, largest int64) {
	for _, s := range sites {
		if d := delta(s); d > 0 {
			total += d
			largest = max(largest, d)
		}
	}
	return total, largest
}

// lineSet gathers the annotations by line, in the order first seen.
type lineSet struct {
	lines []*lineNote
	at    map[gate.SourceLine]int // index in lines
}

type lineNote struct {
	src      gate.SourceLine
	level    string
	title    string
	messages []string
	stacks   []string
}

func (ls *lineSet) add(src gate.SourceLine, level, title, message string, stack []string) {
	i, ok := ls.at[src]
	if !ok {
		if ls.at == nil {
			ls.at = map[gate.SourceLine]int{}
		}
		i = len(ls.lines)
		ls.at[src] = i
		ls.lines = append(ls.lines, &lineNote{src: src, level: level, title: title})
	}
	n := ls.lines[i]
	if rank(level) < rank(n.level) {
		n.level = level
	}
	n.messages = append(n.messages, message)
	if len(stack) > 0 {
		lines := make([]string, len(stack))
		for i, l := range stack {
			lines[i] = name(l)
		}
		n.stacks = append(n.stacks, strings.Join(lines, "\n"))
	}
}

func (ls *lineSet) annotations(runURL string) []*github.CheckRunAnnotation {
	slices.SortStableFunc(ls.lines, func(a, b *lineNote) int { return rank(a.level) - rank(b.level) })
	out := make([]*github.CheckRunAnnotation, 0, min(len(ls.lines), maxAnnotations))
	for _, n := range ls.lines[:min(len(ls.lines), maxAnnotations)] {
		title := n.title
		if more := len(n.messages) - 1; more > 0 {
			title += fmt.Sprintf(", and %d more on this line", more)
		}
		msg := strings.Join(n.messages, "\n\n")
		if runURL != "" {
			msg += "\n\nRun page: " + runURL
		}
		a := &github.CheckRunAnnotation{
			Path: github.String(n.src.File), StartLine: github.Int(n.src.Line), EndLine: github.Int(n.src.Line),
			AnnotationLevel: github.String(n.level),
			Title:           github.String(truncate(flatten(title), maxAnnotationTitleBytes)),
			Message:         github.String(truncate(msg, maxAnnotationTextBytes)),
		}
		if len(n.stacks) > 0 {
			a.RawDetails = github.String(truncate(strings.Join(n.stacks, "\n\n"), maxAnnotationTextBytes))
		}
		out = append(out, a)
	}
	return out
}

func rank(level string) int {
	return slices.Index([]string{levelFailure, levelWarning, levelNotice}, level)
}

// batches splits annotations into requests GitHub takes.
func batches(anns []*github.CheckRunAnnotation) [][]*github.CheckRunAnnotation {
	var out [][]*github.CheckRunAnnotation
	for len(anns) > 0 {
		n := min(len(anns), maxAnnotationsPerRequest)
		out = append(out, anns[:n])
		anns = anns[n:]
	}
	return out
}
