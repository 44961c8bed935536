package checks

import (
	"context"
	"fmt"
	"strings"

	"github.com/memgate/memgate/gate"
)

// AcceptAction is the identifier of the check run's "Accept" button: GitHub
// sends it back in check_run requested_action.
const AcceptAction = "accept"

// acceptButton is offered on a failing pull request's check run. GitHub's
// limits: label 20 characters, description 40, identifier 20.
var acceptButton = struct{ Label, Description, Identifier string }{
	Label: "Accept", Description: "Accept this change for this commit", Identifier: AcceptAction,
}

// baseName is how a title names the base: its branch ("main"), else "the base".
func baseName(run gate.Run) string {
	if run.BaseRef != "" {
		return run.BaseRef
	}
	return "the base"
}

// baseRun is the run that measured the base: a stored result's run, or
// this run when it measured its base itself.
func baseRun(run gate.Run, c *gate.Comparison) int64 {
	if c.Base.RunID != 0 {
		return c.Base.RunID
	}
	return run.ID
}

// ComparedTitle is a compared run's check run title: what the pull request
// changed. A leak already on the base names the base and the run that
// found it, never the pull request.
func ComparedTitle(run gate.Run, c *gate.Comparison, acceptedBy string) string {
	t := c.Headline
	switch c.Outcome {
	case gate.OutcomeAlready:
		t = fmt.Sprintf("already leaks on %s: %s, run %d", baseName(run), c.Base.Reason, baseRun(run, c))
	case gate.OutcomeFixed:
		if c.Verdict == gate.Pass {
			t = fmt.Sprintf("fixes the leak on %s: %s", baseName(run), c.Base.Reason)
		}
	}
	if t == "" && c.Head.Report != nil {
		t = Title(c.Head.Report)
	}
	if c.Flake {
		t = "flake: " + t
	}
	if comparedOutcome(c, acceptedBy) == outcomeAccepted {
		t = "accepted by @" + acceptedBy + ": " + t
	}
	return truncate(flatten(t), maxTitleBytes)
}

// ComparedSummary is a compared run's Markdown summary: base and head side
// by side, criterion by criterion, what changed, the runs behind it (both
// of a flake), and where to look.
func ComparedSummary(run gate.Run, c *gate.Comparison, acceptedBy, detailsURL string) string {
	var b strings.Builder
	check, _ := conclusion(comparedOutcome(c, acceptedBy))
	fmt.Fprintf(&b, "**memgate: %s** — %s\n\n", strings.ToUpper(check), text(ComparedTitle(run, c, acceptedBy)))
	if acceptedBy != "" && check == "success" {
		fmt.Fprintf(&b, "The change was accepted by @%s for commit %s against this base only; a new push, or a new base, is gated again. The limits of other pull requests are unchanged.\n\n",
			text(acceptedBy), gate.ShortSHA(run.HeadSHA))
	}
	fmt.Fprintf(&b, "Base %s (%s): **%s** — %s%s\n\nHead %s: **%s** — %s\n\n",
		code(gate.ShortSHA(c.Base.SHA)), text(baseName(run)), c.Base.Verdict, text(c.Base.Reason), reusedNote(run, c),
		code(gate.ShortSHA(c.Head.SHA)), c.Head.Verdict, text(c.Head.Reason))
	if len(c.Rows) > 0 {
		b.WriteString("| criterion | base | head | head − base | may exceed base by | status |\n|---|---|---|---|---|---|\n")
		for _, r := range c.Rows {
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s %s |\n", text(strings.ReplaceAll(r.Criterion, "_", " ")),
				gate.FormatValue(r.Base, r.Unit), gate.FormatValue(r.Head, r.Unit), signed(r.Head-r.Base, r.Unit),
				gate.FormatValue(r.Limit, r.Unit), icon(r.Status), r.Status)
		}
		b.WriteString("\n")
	}
	writeCriteriaPair(&b, c.Base.Report, c.Head.Report)
	if c.Flake || len(c.Confirmations) > 0 {
		b.WriteString(confirmations(c, detailsURL))
	}
	if c.Unconfirmed != "" {
		fmt.Fprintf(&b, "**Not confirmed** on a fresh process: %s. Re-run the check to confirm it.\n\n", text(c.Unconfirmed))
	}
	if c.Head.Report != nil && c.Head.Verdict == gate.Fail && c.Outcome != gate.OutcomeAlready {
		writeAttribution(&b, c.Head.Report) // where to look, as a head-only gate shows it
	}
	if detailsURL != "" {
		fmt.Fprintf(&b, "\n[Base and head side by side, charts and profiles](%s)", detailsURL)
	}
	b.WriteString("\n\nReproduce locally: " + code("memgate check --base "+baseName(run)+" ."))
	return truncate(b.String(), maxOutputBytes)
}

// writeCriteriaPair writes each run's own criteria in two columns, the
// head's limit beside them: what each run came to against the config.
func writeCriteriaPair(b *strings.Builder, base, head *gate.Report) {
	if base == nil || head == nil || len(head.Criteria) == 0 {
		return
	}
	b.WriteString("| criterion | base | head | limit |\n|---|---|---|---|\n")
	for _, hc := range head.Criteria {
		bv := "–"
		if bc, ok := base.Criterion(hc.Name); ok {
			bv = fmt.Sprintf("%s %s", icon(bc.Status), gate.FormatValue(bc.Value, bc.Unit))
		}
		fmt.Fprintf(b, "| %s | %s | %s %s | %s %s |\n", text(strings.ReplaceAll(hc.Name, "_", " ")), bv,
			icon(hc.Status), gate.FormatValue(hc.Value, hc.Unit), hc.Comparison, gate.FormatValue(hc.Limit, hc.Unit))
	}
	b.WriteString("\n")
}

// reusedNote says where a reused base result came from.
func reusedNote(run gate.Run, c *gate.Comparison) string {
	if !c.Base.Reused {
		return ""
	}
	return fmt.Sprintf(" (stored result of run %d, reused)", baseRun(run, c))
}

// confirmations lists the runs a failure was confirmed on, linking each run
// on the run page, so a flake shows both the run that failed and the one
// that did not.
func confirmations(c *gate.Comparison, detailsURL string) string {
	var b strings.Builder
	if c.Flake {
		b.WriteString("**Flake**: the first run failed, and its confirmation on a fresh process did not; the verdict is the confirmation's.\n\n")
	}
	link := func(label, anchor string) string {
		if detailsURL == "" {
			return label
		}
		return fmt.Sprintf("[%s](%s#%s)", label, detailsURL, anchor)
	}
	fmt.Fprintf(&b, "- %s: %s — %s\n", link("first run", "head"), c.Head.Verdict, text(c.Head.Reason))
	for i, r := range c.Confirmations {
		fmt.Fprintf(&b, "- %s: %s — %s\n", link(fmt.Sprintf("confirmation %d", i+1), fmt.Sprintf("confirmation-%d", i+1)), r.Verdict, text(r.Reason))
	}
	return b.String() + "\n"
}

// signed formats a difference with its sign.
func signed(v float64, unit string) string {
	s := gate.FormatValue(v, unit)
	if v > 0 {
		return "+" + s
	}
	return s
}

// Finals is where a run's comparison and acceptance are kept.
type Finals interface {
	// Comparison is the run's comparison with its base, nil for a run
	// gated alone.
	Comparison(ctx context.Context, runID int64) (*gate.Comparison, error)
	// AcceptedBy is who accepted the head commit of the pull request
	// against the base commit, "" for nobody.
	AcceptedBy(ctx context.Context, repo string, pr int, headSHA, baseSHA string) (string, error)
}

// Finisher completes check runs.
type Finisher interface {
	Completed(ctx context.Context, run gate.Run, rep *gate.Report) error
	Compared(ctx context.Context, run gate.Run, c *gate.Comparison, acceptedBy string) error
}

// PostCompleted completes a completed run's check run, whoever posts it
// (its worker, the check run's creator, the reconciler): with what the pull
// request changed when the run was gated beside its base, with the report
// alone otherwise.
func PostCompleted(ctx context.Context, f Finals, to Finisher, run gate.Run, rep *gate.Report) error {
	c, err := f.Comparison(ctx, run.ID)
	if err != nil {
		return err
	}
	if c == nil {
		return to.Completed(ctx, run, rep)
	}
	by, err := f.AcceptedBy(ctx, run.Repository, run.PR, run.HeadSHA, run.BaseSHA)
	if err != nil {
		return err
	}
	return to.Compared(ctx, run, c, by)
}
