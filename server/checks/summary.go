package checks

import (
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/memgate/memgate/gate"
)

// GitHub's limits on a check run's output.
const (
	maxOutputBytes = 65535
	maxTitleBytes  = 255
	maxStatusChars = 140
)

// Title is a check run's title: the finding itself.
func Title(rep *gate.Report) string {
	prefix := map[gate.Verdict]string{gate.Pass: "", gate.Fail: "", gate.Error: "could not run: ", gate.Inconclusive: "inconclusive: "}[rep.Verdict]
	// GitHub shows a title as plain text, not Markdown: one line is all
	// it needs.
	return truncate(flatten(prefix+rep.Reason), maxTitleBytes)
}

// Summary is a check run's Markdown summary: a verdict per criterion with
// value and limit, the load, and where to look.
func Summary(rep *gate.Report, detailsURL string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "**memgate: %s** — %s\n\n", strings.ToUpper(string(rep.Verdict)), text(rep.Reason))
	if len(rep.Criteria) > 0 {
		b.WriteString("| criterion | status | value | limit |\n|---|---|---|---|\n")
		for _, c := range rep.Criteria {
			fmt.Fprintf(&b, "| %s | %s %s | %s | %s %s |\n", strings.ReplaceAll(c.Name, "_", " "), icon(c.Status), c.Status,
				gate.FormatValue(c.Value, c.Unit), c.Comparison, gate.FormatValue(c.Limit, c.Unit))
		}
		l := rep.Load
		fmt.Fprintf(&b, "\n**Load** (measured window): %s requests at %.1f/s (requested %.0f/s), %.1f%% succeeded; latency p50 %s, p95 %s, p99 %s.\n",
			gate.FormatCount(int64(l.Requests)), l.AchievedRate, l.RequestedRate, 100*l.SuccessRatio,
			l.Latency.P50.Std().Round(10_000), l.Latency.P95.Std().Round(10_000), l.Latency.P99.Std().Round(10_000))
		if l.Streams > 0 || l.LeftEarly > 0 {
			fmt.Fprintf(&b, "%s requests were streams held until the client left (latency: time to first byte), %s left early on purpose.\n",
				gate.FormatCount(int64(l.Streams)), gate.FormatCount(int64(l.LeftEarly)))
		}
		fmt.Fprintf(&b, "Goroutines: %d idle, %d at window start, %d after the load settled. Numbers read from: %s.\n",
			rep.Baseline.IdleGoroutines, rep.Baseline.WindowStartGoroutines, rep.Settle.Final, text(rep.Environment.Source))
		if st := rep.Settle; st.WindowStartFDs > 0 {
			fmt.Fprintf(&b, "Open files: %d idle, %d at window start, peak %d, %d after the load settled (RLIMIT_NOFILE %d).\n",
				st.IdleFDs, st.WindowStartFDs, st.PeakFDs, st.FinalFDs, st.FDLimit)
		}
		if line := rep.Settle.FDLimitLine(); line != "" {
			fmt.Fprintf(&b, "\n> [!WARNING]\n> %s.\n", strings.ToUpper(line[:1])+line[1:])
		}
	}
	if rep.Verdict == gate.Fail {
		writeAttribution(&b, rep)
	}
	writeProvenLeaks(&b, rep.Attribution.ProvenLeaks)
	if rep.Verdict == gate.Error {
		if rep.BuildOutput != "" && rep.Timings.Start == 0 {
			fmt.Fprintf(&b, "\n<details><summary>build output</summary>\n\n%s\n</details>\n", fence(tailBytes(rep.BuildOutput, 8000)))
		}
		if rep.ServiceOutput != "" {
			fmt.Fprintf(&b, "\n<details><summary>service output</summary>\n\n%s\n</details>\n", fence(tailBytes(rep.ServiceOutput, 8000)))
		}
	}
	if detailsURL != "" {
		fmt.Fprintf(&b, "\n[Full report, charts and profiles](%s)", detailsURL)
	}
	b.WriteString("\n\nReproduce locally: `memgate check .`")
	return truncate(b.String(), maxOutputBytes)
}

// writeAttribution writes where to look in a failed report: what leaks,
// the functions whose heap grew, the goroutine stacks that grew.
func writeAttribution(b *strings.Builder, rep *gate.Report) {
	if len(rep.Attribution.Findings) > 0 {
		b.WriteString("\n### What leaks\n\n")
		for _, f := range rep.Attribution.Findings {
			count := ""
			if f.Kind == gate.KindGoroutinesBlocked {
				count = fmt.Sprintf(" (+%s)", gate.FormatCount(f.Count))
			}
			fmt.Fprintf(b, "- **%s**%s: %s\n", kindWords[f.Kind], count, text(clip(f.Summary, 3*maxNameBytes)))
		}
	}
	if heap := head(rep.Attribution.Heap, 5); len(heap) > 0 {
		// The code column only when a site has a line of the
		// repository to name: reports without culprits keep their table.
		lines := slices.ContainsFunc(heap, func(h gate.HeapSite) bool { _, ok := h.Culprit.Source(); return ok })
		b.WriteString("\n### Heap growth by function (end of warm-up to end, after GC)\n\n| growth | function | from |")
		if lines {
			b.WriteString(" code |\n|---|---|---|---|\n")
		} else {
			b.WriteString("\n|---|---|---|\n")
		}
		for _, h := range heap {
			fmt.Fprintf(b, "| +%s | %s | %s |", gate.FormatBytes(float64(h.DeltaBytes)), cellCode(name(h.Function)), cellCode(name(h.Origin)))
			if lines {
				fmt.Fprintf(b, " %s |", culpritCell(h.Culprit, h.Origin))
			}
			b.WriteString("\n")
		}
	}
	if len(rep.Attribution.Goroutines) > 0 {
		b.WriteString("\n### Goroutine stacks that grew\n\n")
		for _, g := range head(rep.Attribution.Goroutines, 3) {
			where := ""
			if src, ok := g.Culprit.Source(); ok {
				where = " from " + code(name(g.Culprit.Function)) + " at " + sourceText(src, code)
			}
			fmt.Fprintf(b, "**+%s** waiting in %s%s:\n%s\n", gate.FormatCount(g.Delta), code(name(g.Top)), where, fence(stackText(g.Stack)))
		}
	}
}

// kindWords names each kind of leak in a reviewer's words.
var kindWords = map[gate.LeakKind]string{
	gate.KindRequestsRetained:  "Requests retained",
	gate.KindConnectionsLeaked: "Connections leaked",
	gate.KindGoroutinesBlocked: "Goroutines blocked",
	gate.KindTimersNotStopped:  "Timers never stopped",
	gate.KindUnboundedCache:    "Cache without a bound",
}

// writeProvenLeaks adds the runtime's proof, whatever the verdict: a
// goroutine proven leaked is a defect even where the growth stayed under
// the limits. Without the profile it says why, in one line.
func writeProvenLeaks(b *strings.Builder, p *gate.ProvenLeaks) {
	switch {
	case p == nil:
	case !p.Read:
		fmt.Fprintf(b, "\nGoroutine leak profile not read: %s.\n", text(p.Note))
	case p.Total == 0:
		b.WriteString("\nThe runtime's goroutine leak profile proved no goroutine leaked.\n")
	default:
		fmt.Fprintf(b, "\n### Proven leaked by the runtime\n\n%s goroutines are blocked on something no running goroutine can reach (goroutineleak profile, end of the gate).\n\n",
			gate.FormatCount(p.Total))
		for _, g := range head(p.Stacks, 3) {
			where := ""
			if src, ok := g.Culprit.Source(); ok {
				where = " from " + code(name(g.Culprit.Function)) + " at " + sourceText(src, code)
			}
			fmt.Fprintf(b, "**%s** in %s%s:\n%s\n", gate.FormatCount(g.Count), code(name(g.Top)), where, fence(stackText(g.Stack)))
		}
	}
}

// Text is the check run's details: each criterion's numbers.
func Text(rep *gate.Report) string {
	var b strings.Builder
	for _, c := range rep.Criteria {
		fmt.Fprintf(&b, "- **%s** (%s): %s\n", text(c.Name), c.Status, text(c.Detail))
	}
	if rep.Attribution.DiffCommand != "" {
		fmt.Fprintf(&b, "\nDownload the profiles from the full report, then: %s\n", code(rep.Attribution.DiffCommand))
	}
	return truncate(b.String(), maxOutputBytes)
}

// StatusDescription is a commit status's description (140 characters).
func StatusDescription(text string) string {
	if utf8.RuneCountInString(text) <= maxStatusChars {
		return text
	}
	r := []rune(text)
	return string(r[:maxStatusChars-1]) + "…"
}

func icon(s gate.Status) string {
	switch s {
	case gate.StatusPass:
		return "✅"
	case gate.StatusFail:
		return "❌"
	}
	return "⚠️"
}

// head is the first n of s.
func head[S any](s []S, n int) []S { return s[:min(len(s), n)] }

// headLines is the first n lines, and "..." when there were more.
func headLines(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), "...")
	}
	return s
}

// maxNameBytes bounds a function name quoted in the summary: Go's are far
// shorter, and a profile's made-up ones must not crowd the rest out of the
// summary's 65,535 bytes.
const maxNameBytes = 512

// name is a function name as the summary quotes it.
func name(s string) string { return clip(s, maxNameBytes) }

// stackText is a stack's first lines, each a name.
func stackText(stack []string) string {
	lines := headLines(stack, 12)
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = name(l)
	}
	return strings.Join(out, "\n")
}

// clip cuts s to at most n bytes on a UTF-8 boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

// culpritCell names the line of the repository a site's culprit is on,
// and the culprit when it is not the site's origin already shown; empty
// without one.
func culpritCell(f *gate.Frame, origin string) string {
	src, ok := f.Source()
	if !ok {
		return ""
	}
	cell := sourceText(src, cellCode)
	if f.Function != origin {
		cell = cellCode(name(f.Function)) + " at " + cell
	}
	return cell
}

// sourceText is file:line quoted as code (code, or cellCode in a table),
// marked when vendored.
func sourceText(src gate.SourceLine, quote func(string) string) string {
	s := quote(src.String())
	if src.Vendored {
		s += " (vendored)"
	}
	return s
}

func tailBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	for !utf8.ValidString(s[:min(4, len(s))]) && len(s) > 0 {
		s = s[1:]
	}
	return "..." + s
}

// truncate cuts s to at most n bytes on a UTF-8 boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "\n…(truncated)"
	cut := n - len(mark)
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + mark
}
