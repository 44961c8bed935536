package gate

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Compare judges a pull request's head against its base: both gated
// alike, each with its own report. It is pure. A leak the head shares with
// the base is the base's (never the change's); a leak only the head has,
// or a criterion the head is worse at beyond the limits, fails.
func Compare(base, head RunRef, l CompareLimits) Comparison {
	c := Comparison{Base: base, Head: head, Limits: l}
	if head.Report == nil || base.Report == nil || !judged(head.Verdict) || !judged(base.Verdict) {
		return unjudged(c)
	}
	c.Rows = compareRows(base.Report, head.Report, l)
	baseKinds, headKinds := leakKinds(base.Report), leakKinds(head.Report)
	var introduced, already []string
	for _, k := range headKinds {
		if slices.Contains(baseKinds, k) && culpritsAlike(k, base.Report, head.Report) {
			already = append(already, k)
		} else {
			introduced = append(introduced, k)
		}
	}
	var worse []ComparisonRow
	for _, r := range c.Rows {
		if r.Status == StatusFail {
			worse = append(worse, r)
		}
	}
	switch {
	case len(introduced) > 0:
		c.Verdict, c.Outcome = Fail, OutcomeIntroduced
		c.Headline = "introduced by this change: " + Headline(head.Report)
		if len(already) > 0 {
			c.Headline += fmt.Sprintf(" (%s leak already on %s)", strings.Join(already, " and "), base.name())
		}
	case len(worse) > 0:
		c.Verdict, c.Outcome = Fail, OutcomeWorse
		c.Headline = fmt.Sprintf("worse than %s: %s", base.name(), worseText(worse))
	case len(already) > 0:
		c.Verdict, c.Outcome = Neutral, OutcomeAlready
		if l.AlreadyLeaking == "failure" {
			c.Verdict = Fail
		}
		c.Headline = fmt.Sprintf("already leaks on %s: %s", base.name(), Headline(base.Report))
		if base.RunID != 0 {
			c.Headline += fmt.Sprintf(", run %d", base.RunID)
		}
	case len(baseKinds) > 0:
		c.Verdict, c.Outcome = Pass, OutcomeFixed
		c.Headline = fmt.Sprintf("fixes the leak on %s: %s", base.name(), Headline(base.Report))
	default:
		c.Verdict, c.Outcome = Pass, OutcomeSame
		c.Headline = "no leak, and not worse than " + base.name() + sameText(c.Rows)
	}
	return c
}

// name is how a headline calls the run: its ref ("main"), else its
// commit, else "the base".
func (r RunRef) name() string {
	switch {
	case r.Ref != "":
		return r.Ref
	case r.SHA != "":
		return ShortSHA(r.SHA)
	}
	return "the base"
}

func judged(v Verdict) bool { return v == Pass || v == Fail }

// unjudged: one of the runs has no verdict to compare. An unjudged head
// decides alone; an unjudged base leaves the head's own verdict, said so.
func unjudged(c Comparison) Comparison {
	c.Outcome = OutcomeUnjudged
	c.Verdict = c.Head.Verdict
	if c.Head.Report == nil && c.Head.Verdict == "" {
		c.Verdict = Error
	}
	switch {
	case !judged(c.Head.Verdict), c.Base.Report == nil && c.Base.Verdict == "":
		// (No base at all: the head is gated alone.)
		c.Headline = c.Head.Reason
	default:
		c.Headline = fmt.Sprintf("%s (%s could not be compared: %s)", c.Head.Reason, c.Base.name(), c.Base.Reason)
	}
	return c
}

// Leak kinds: a run's failing criteria, grouped by what leaks. A leak
// that fails the growth criterion in one run may fail the fluctuation (or
// settle) criterion in another, so alike means the same kind.
const (
	kindHeap       = "heap"
	kindGoroutines = "goroutine"
)

func leakKinds(r *Report) []string {
	var kinds []string
	for _, c := range r.Criteria {
		if c.Status != StatusFail {
			continue
		}
		var k string
		switch c.Name {
		case CritHeapFluctuation, CritHeapGrowth:
			k = kindHeap
		case CritGoroutineGrowth, CritGoroutineSettle:
			k = kindGoroutines
		default:
			continue
		}
		if !slices.Contains(kinds, k) {
			kinds = append(kinds, k)
		}
	}
	return kinds
}

// culpritsAlike: the two runs' leaks of a kind are held at the same place.
// Line numbers move when the change edits the file, so functions are
// compared; and the order of the top sites varies between runs, so one
// run's first culprit need only be among the other's first few. When
// either side names no sure culprit the leak is taken as the same one: a
// guess is no ground to blame the change.
func culpritsAlike(kind string, base, head *Report) bool {
	const top = 3
	b, h := culprits(kind, base, top), culprits(kind, head, top)
	if len(b) == 0 || len(h) == 0 {
		return true
	}
	return slices.Contains(h, b[0]) || slices.Contains(b, h[0])
}

func culprits(kind string, r *Report, n int) []string {
	var out []string
	if kind == kindHeap {
		for _, s := range r.Attribution.Heap {
			if len(out) == n {
				break
			}
			if s.Uncertain() {
				continue
			}
			if s.Culprit != nil {
				out = append(out, s.Culprit.Function)
			} else {
				out = append(out, s.Where())
			}
		}
		return out
	}
	for _, g := range r.Attribution.Goroutines {
		if len(out) == n {
			break
		}
		if g.Delta <= 0 {
			continue
		}
		if g.Culprit != nil {
			out = append(out, g.Culprit.Function)
		} else {
			out = append(out, g.Top)
		}
	}
	return out
}

func worseText(rows []ComparisonRow) string {
	parts := make([]string, 0, len(rows))
	for _, r := range rows {
		parts = append(parts, r.Detail)
	}
	return strings.Join(parts, "; ")
}

// sameText adds the latency side by side to a "same" headline: the one
// number a reader of an unchanged service still wants.
func sameText(rows []ComparisonRow) string {
	for _, r := range rows {
		if r.Criterion == CmpLatencyP99 {
			return fmt.Sprintf(" (p99 %s, base %s)", formatMs(r.Head), formatMs(r.Base))
		}
	}
	return ""
}

func formatMs(ms float64) string {
	return time.Duration(ms * float64(time.Millisecond)).Round(100 * time.Microsecond).String()
}
