package checks

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	gmtext "github.com/yuin/goldmark/text"

	"github.com/memgate/memgate/gate"
)

// What a pull request's service, profiles and errors might say to reshape
// a check's summary.
var hostile = []string{
	"```\n[x](https://evil.example)\n```\n# owned",
	"~~~\n<img src=x onerror=alert(1)>\n~~~",
	"<img src=x>",
	"[x](https://evil.example)",
	"@org/team please look",
	"![](https://evil.example/p.png)",
	"</details><script>alert(1)</script>",
	"``` `` ` ````",
	"`",
	"| a | b |\n|---|---|\n| c | d |",
	"\n# heading\n> quote\n- item\n1. first",
	"<https://evil.example>",
	"&lt;img src=x&gt; &#x3C;b&#x3E;",
	"*bold* _em_ ~~strike~~ **x**",
	"line\r\nbreak\u2028next\x00nul",
	"trailing backslash \\",
	"    indented code",
	"[ref]: https://evil.example\n[ref]",
	"x | y ` | ` z",
}

func hostileReports(s string) (fail, errored *gate.Report) {
	fail = failingReport()
	fail.Reason, fail.Environment.Source = s, s
	fail.Criteria[0].Detail = s
	fail.Attribution.Heap = []gate.HeapSite{{Function: s, Origin: s, DeltaBytes: 1 << 20}}
	fail.Attribution.Goroutines = []gate.GoroutineStack{{Top: s, Delta: 3, Stack: []string{s, s}}}
	fail.Attribution.Findings = []gate.Finding{{Kind: gate.KindGoroutinesBlocked, Summary: s}}
	fail.Attribution.DiffCommand = "go tool pprof -diff_base " + s
	errored = failingReport()
	errored.Verdict, errored.Reason, errored.BuildOutput, errored.ServiceOutput = gate.Error, s, s, s
	return fail, errored
}

var md = goldmark.New(goldmark.WithExtensions(extension.GFM))

// shape is a document's structure: its nodes' kinds, nested, with text and
// code contents left out (escapes split text nodes differently).
func shape(doc ast.Node) string {
	var b strings.Builder
	ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		switch n.Kind() {
		case ast.KindText, ast.KindString:
			return ast.WalkContinue, nil
		}
		if entering {
			b.WriteString(n.Kind().String() + "(")
		} else {
			b.WriteString(")")
		}
		return ast.WalkContinue, nil
	})
	return b.String()
}

var mention = regexp.MustCompile(`@[A-Za-z0-9]`)

// inspect parses Markdown with a CommonMark parser (GFM extensions on) and
// returns its shape, every link's and image's destination, and the text
// outside code.
func inspect(t *testing.T, src string) (string, []string, string) {
	t.Helper()
	source := []byte(src)
	doc := md.Parser().Parse(gmtext.NewReader(source))
	var dests []string
	var plain strings.Builder
	ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch v := n.(type) {
		case *ast.Link:
			dests = append(dests, string(v.Destination))
		case *ast.Image:
			dests = append(dests, "image:"+string(v.Destination))
		case *ast.AutoLink:
			dests = append(dests, "autolink:"+string(v.URL(source)))
		case *ast.RawHTML, *ast.HTMLBlock:
			var raw bytes.Buffer
			lines := n.Lines()
			if h, ok := n.(*ast.RawHTML); ok {
				lines = h.Segments
			}
			for i := 0; i < lines.Len(); i++ {
				seg := lines.At(i)
				raw.Write(seg.Value(source))
			}
			dests = append(dests, "html:"+strings.TrimSpace(raw.String()))
		case *ast.CodeSpan, *ast.FencedCodeBlock, *ast.CodeBlock:
			return ast.WalkSkipChildren, nil
		case *ast.Text:
			plain.Write(v.Value(source))
			plain.WriteByte(' ')
		}
		return ast.WalkContinue, nil
	})
	return shape(doc), dests, plain.String()
}

// Hostile strings in every place a summary quotes them: the Markdown has
// exactly the structure it has with harmless strings, no link, image or
// HTML but memgate's own, no mention, and the service's output comes back
// verbatim from its code block.
func TestHostileStringsCannotReshapeTheSummary(t *testing.T) {
	const details = "https://memgate.example/runs/7"
	benignFail, benignErr := hostileReports("benign words")
	for _, s := range hostile {
		fail, errored := hostileReports(s)
		for _, tc := range []struct {
			name          string
			got, baseline string
		}{
			{"fail summary", Summary(fail, details), Summary(benignFail, details)},
			{"error summary", Summary(errored, details), Summary(benignErr, details)},
			{"fail text", Text(fail), Text(benignFail)},
			{"cancelled", "Cancelled: " + text(s), "Cancelled: " + text("benign words")},
		} {
			gotShape, dests, plain := inspect(t, tc.got)
			wantShape, wantDests, _ := inspect(t, tc.baseline)
			if gotShape != wantShape {
				t.Errorf("%s with %q: structure changed\n got %s\nwant %s\nmarkdown:\n%s", tc.name, s, gotShape, wantShape, tc.got)
			}
			if fmt.Sprint(dests) != fmt.Sprint(wantDests) {
				t.Errorf("%s with %q: links/images/HTML %q, want only %q", tc.name, s, dests, wantDests)
			}
			if m := mention.FindString(plain); m != "" {
				t.Errorf("%s with %q: a mention %q in the text", tc.name, s, m)
			}
		}
		// The service's output, verbatim in its block.
		source := []byte(Summary(errored, details))
		doc := md.Parser().Parse(gmtext.NewReader(source))
		var blocks []string
		ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
			if fb, ok := n.(*ast.FencedCodeBlock); ok && entering {
				var b bytes.Buffer
				for i := 0; i < fb.Lines().Len(); i++ {
					seg := fb.Lines().At(i)
					b.Write(seg.Value(source))
				}
				blocks = append(blocks, b.String())
			}
			return ast.WalkContinue, nil
		})
		want := strings.TrimSuffix(strings.ReplaceAll(s, "\r\n", "\n"), "\n") + "\n"
		if len(blocks) != 2 || strings.ReplaceAll(blocks[1], "\r\n", "\n") != want {
			t.Errorf("service output %q came back as %q", s, blocks)
		}
	}
}

// hostileComparison puts s wherever a compared run's summary quotes the
// repository's words: the reasons of base, head and confirmation, the
// headline, a criterion's name, and the base's branch.
func hostileComparison(s string) (gate.Run, *gate.Comparison) {
	fail, _ := hostileReports(s)
	run := gate.Run{ID: 7, Repository: "acme/api", PR: 3, HeadSHA: "abcdef1234567", BaseRef: s}
	return run, &gate.Comparison{Verdict: gate.Fail, Outcome: gate.OutcomeIntroduced, Headline: s, Flake: false,
		Base:          gate.RunRef{SHA: "1234567abc", Verdict: gate.Pass, Reason: s, Reused: true, RunID: 4, Report: failingReport()},
		Head:          gate.RunRef{SHA: "abcdef1234567", Verdict: gate.Fail, Reason: s, Report: fail},
		Rows:          []gate.ComparisonRow{{Criterion: s, Base: 1, Head: 9, Limit: 2, Unit: "bytes/request", Status: gate.StatusFail, Detail: s}},
		Confirmations: []gate.RunRef{{Verdict: gate.Fail, Reason: s}},
		Limits:        gate.DefaultCompareLimits()}
}

// The compared summary holds its shape whatever the repository wrote.
func TestHostileStringsCannotReshapeTheComparedSummary(t *testing.T) {
	const details = "https://memgate.example/runs/7"
	benignRun, benign := hostileComparison("benign words")
	want := ComparedSummary(benignRun, benign, "", details)
	wantShape, wantDests, _ := inspect(t, want)
	if !strings.Contains(want, "| criterion | base | head | limit |") || !strings.Contains(want, "(stored result of run 4, reused)") {
		t.Fatalf("the compared summary lacks the runs' criteria side by side or the reused base:\n%s", want)
	}
	for _, s := range hostile {
		run, c := hostileComparison(s)
		got := ComparedSummary(run, c, "", details)
		gotShape, dests, plain := inspect(t, got)
		if gotShape != wantShape {
			t.Errorf("%q: structure changed\n got %s\nwant %s\nmarkdown:\n%s", s, gotShape, wantShape, got)
		}
		if fmt.Sprint(dests) != fmt.Sprint(wantDests) {
			t.Errorf("%q: links/images/HTML %q, want only %q", s, dests, wantDests)
		}
		if m := mention.FindString(plain); m != "" {
			t.Errorf("%q: a mention %q in the text", s, m)
		}
		if title := ComparedTitle(run, c, ""); strings.ContainsAny(title, "\r\n") {
			t.Errorf("%q: the title spans lines: %q", s, title)
		}
	}
}

// A failure the job's time could not confirm says so, and how to confirm it.
func TestComparedSummarySaysAFailureWasNotConfirmed(t *testing.T) {
	run, c := hostileComparison("benign words")
	c.Confirmations = nil
	c.Unconfirmed = "4m0s left of the job's time, and a confirmation may take 8m35s"
	got := ComparedSummary(run, c, "", "https://memgate.example/runs/7")
	if !strings.Contains(got, "**Not confirmed** on a fresh process: 4m0s left of the job's time, and a confirmation may take 8m35s. Re-run the check to confirm it.") {
		t.Fatalf("summary:\n%s", got)
	}
}
