package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/memgate/memgate/gate"
)

// annotation is one GitHub Actions workflow command (::error, ::warning,
// ::notice): the runner shows it on the run and, with a file and line, on
// the pull request's diff.
type annotation struct {
	Level string // error, warning or notice
	File  string // relative to the repository root; empty for none
	Line  int64
	Title string
	Text  string
}

// maxLineAnnotations bounds the annotations on source lines per kind: GitHub
// shows ten errors per step, and the first few sites are where to look.
const maxLineAnnotations = 3

// annotations are the workflow commands for a report: one for the verdict,
// one per criterion that did not pass, and, when the gate failed, one on
// each source line the attribution names that lies in the repository.
func annotations(rep *gate.Report, locs sourceLocations) []annotation {
	var out []annotation
	level := map[gate.Verdict]string{gate.Pass: "notice", gate.Fail: "error", gate.Error: "error", gate.Inconclusive: "warning"}[rep.Verdict]
	title := map[gate.Verdict]string{gate.Pass: "memgate: pass", gate.Fail: "memgate: fail", gate.Error: "memgate could not run the gate", gate.Inconclusive: "memgate: inconclusive"}[rep.Verdict]
	if level == "" {
		level, title = "error", "memgate: "+string(rep.Verdict)
	}
	out = append(out, annotation{Level: level, Title: title, Text: rep.Reason})
	for _, c := range rep.Criteria {
		if c.Status == gate.StatusPass {
			continue
		}
		// An inconclusive criterion has no value worth quoting.
		lvl, text := "warning", c.Detail
		if c.Status == gate.StatusFail {
			lvl = "error"
			text += fmt.Sprintf(" (%s, limit %s %s)", gate.FormatValue(c.Value, c.Unit), c.Comparison, gate.FormatValue(c.Limit, c.Unit))
		}
		out = append(out, annotation{Level: lvl, Title: fmt.Sprintf("memgate %s: %s", c.Name, c.Status), Text: text})
	}
	if rep.Verdict != gate.Fail {
		return out
	}
	n := 0
	for _, h := range rep.Attribution.Heap {
		fn := h.Origin
		if fn == "" {
			fn = h.Function
		}
		loc, ok := locs.heap[fn]
		if !ok || n == maxLineAnnotations {
			continue
		}
		n++
		lvl, hedge := "error", ""
		if h.Uncertain() {
			lvl, hedge = "warning", " (few heap-profile samples: a lead, not a finding)"
		}
		text := fmt.Sprintf("+%s in use after GC from the end of warm-up to the end of the window, allocated by %s%s.",
			gate.FormatBytes(float64(h.DeltaBytes)), h.Function, hedge)
		if fn != h.Function {
			text += " Called from " + fn + " here."
		}
		out = append(out, annotation{Level: lvl, File: loc.File, Line: loc.Line,
			Title: "memgate: heap grows here (+" + gate.FormatBytes(float64(h.DeltaBytes)) + ")", Text: text + stackText(h.Stack)})
	}
	n = 0
	for _, g := range rep.Attribution.Goroutines {
		loc, ok := locs.goroutine[g.Top]
		if !ok || n == maxLineAnnotations {
			continue
		}
		n++
		out = append(out, annotation{Level: "error", File: loc.File, Line: loc.Line,
			Title: fmt.Sprintf("memgate: goroutines pile up here (+%s)", gate.FormatCount(g.Delta)),
			Text: fmt.Sprintf("%s more goroutines (%s in all) waiting in %s after the load stopped.", gate.FormatCount(g.Delta),
				gate.FormatCount(g.Count), g.Top) + stackText(g.Stack)})
	}
	return out
}

func stackText(stack []string) string {
	if len(stack) == 0 {
		return ""
	}
	return "\nstack:\n  " + strings.Join(head(stack, 8), "\n  ")
}

func head(s []string, n int) []string {
	if len(s) > n {
		return append(append([]string(nil), s[:n]...), "...")
	}
	return s
}

// writeAnnotations prints the workflow commands, escaped: a function name
// or a reason comes from the service under test, and unescaped it could
// end the command and start another (::add-mask::, ::stop-commands::).
func writeAnnotations(w io.Writer, anns []annotation) {
	for _, a := range anns {
		var props []string
		if a.File != "" {
			props = append(props, "file="+escapeProperty(a.File))
			if a.Line > 0 {
				props = append(props, fmt.Sprintf("line=%d", a.Line))
			}
		}
		if a.Title != "" {
			props = append(props, "title="+escapeProperty(a.Title))
		}
		cmd := "::" + a.Level
		if len(props) > 0 {
			cmd += " " + strings.Join(props, ",")
		}
		fmt.Fprintf(w, "%s::%s\n", cmd, escapeData(a.Text))
	}
}

// escapeData escapes a workflow command's message as the runner unescapes
// it (toolkit's escapeData).
func escapeData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// escapeProperty escapes a workflow command's property value (toolkit's
// escapeProperty): also ':' and ',', which would end the value.
func escapeProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
