package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pair"
)

// checkPair is `memgate check --base REF`: the base commit and the
// checkout as it is, gated alike and compared. The exit status is the
// comparison's (a leak already on the base exits 0 unless the config's
// compare.already_leaking says failure).
func checkPair(ctx context.Context, dir string, head config.Config, headFiles *dirFiles, f checkFlags, getenv func(string) string, stdout, stderr io.Writer) int {
	fail := func(err error) int {
		fmt.Fprintf(stderr, "memgate: %v\n", err)
		return gate.Error.ExitCode()
	}
	if f.confirm >= 0 {
		head.Compare.Confirmations = f.confirm
	}
	checkout, err := checkoutBase(ctx, dir, f.base, f.baseReport == "", gitEnv(getenv))
	if err != nil {
		return fail(err)
	}
	defer checkout.Close()
	base := pair.Base{SHA: checkout.SHA, Ref: f.base}
	baseSource := "reused from " + f.baseReport
	if f.baseReport != "" {
		if base.Report, err = readReportFile(f.baseReport); err != nil {
			return fail(err)
		}
	} else {
		baseFiles, err := openDirFiles(checkout.Dir)
		if err != nil {
			return fail(fmt.Errorf("--base: %w", err))
		}
		defer baseFiles.Close()
		cfg, source, err := loadConfig(ctx, baseFiles, checkout.Dir, f.config)
		if err != nil {
			return fail(fmt.Errorf("the base's %w", err))
		}
		if err := applyLoadFlags(&cfg, f); err != nil {
			return fail(fmt.Errorf("flags, on the base's config: %w", err))
		}
		base.Dir, base.Config, base.Files, base.OwnsDir, baseSource = checkout.Dir, cfg, baseFiles, true, source
	}

	progress := newProgress(stderr, head, "plain")
	fmt.Fprintf(stderr, "memgate %s: gating %s against --base %s (%s; the base's config: %s)\n",
		memgateVersion(), dir, f.base, gate.ShortSHA(checkout.SHA), baseSource)
	res := pair.Run(ctx, pair.Options{
		Head:    checkOptions(ctx, dir, head, headFiles, progress, getenv, stderr),
		HeadSHA: checkout.HeadSHA,
		Base:    base,
		// The head's commit decides the order; a checkout without one
		// (or with changes on top of it) orders by the directory.
		Seed: checkout.HeadSHA + dir,
	})
	c := res.Comparison
	tableOut := stdout
	if f.json == "-" {
		tableOut = stderr
	}
	// The table quotes the repository's words (function names of its
	// profiles, its service's errors): in GitHub Actions none of it may
	// be read as a workflow command.
	resume := func() {}
	if ciMode(f.ci, getenv) == ciGitHub {
		resume = pauseCommands(tableOut)
	}
	printComparison(tableOut, c)
	resume()
	if f.profiles != "" && len(res.Head.Profiles) > 0 {
		if _, err := writeProfiles(f.profiles, res.Head.Profiles); err != nil {
			fmt.Fprintf(stderr, "memgate: %v\n", err)
		}
	}
	if f.json != "" {
		if err := writeJSON(f.json, stdout, c); err != nil {
			return fail(err)
		}
	}
	return c.Verdict.ExitCode()
}

// readReportFile reads a report --json wrote; one with no verdict is not one.
func readReportFile(path string) (*gate.Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--base-report: %w", err)
	}
	var rep gate.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		return nil, fmt.Errorf("--base-report %s: not a memgate JSON report: %w", path, err)
	}
	if rep.Verdict == "" {
		return nil, fmt.Errorf("--base-report %s: not a memgate JSON report (no verdict)", path)
	}
	return &rep, nil
}

// gitEnv is what git sees of memgate's environment: enough to find the
// user's git and its config.
func gitEnv(getenv func(string) string) []string {
	var env []string
	for _, k := range []string{"PATH", "HOME", "XDG_CONFIG_HOME", "GIT_CONFIG_NOSYSTEM", "GIT_CONFIG_GLOBAL", "LANG"} {
		if v := getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// printComparison shows base and head side by side: the verdict, the
// comparison's rows, then each run's own criteria in two columns.
func printComparison(w io.Writer, c gate.Comparison) {
	fmt.Fprintf(w, "\nmemgate: %s (%s): %s\n", strings.ToUpper(string(c.Verdict)), c.Outcome, c.Headline)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nCOMPARED\tBASE %s\tHEAD %s\tLIMIT\tSTATUS\n", runName(c.Base), runName(c.Head))
	for _, r := range c.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t+%s\t%s\n", r.Criterion, gate.FormatValue(r.Base, r.Unit), gate.FormatValue(r.Head, r.Unit),
			gate.FormatValue(r.Limit, r.Unit), r.Status)
	}
	if c.Base.Report != nil && c.Head.Report != nil {
		fmt.Fprintln(tw, "\nCRITERION\tBASE\tHEAD\tLIMIT\t")
		for _, hc := range c.Head.Report.Criteria {
			bc, _ := c.Base.Report.Criterion(hc.Name)
			fmt.Fprintf(tw, "%s\t%s %s\t%s %s\t%s %s\t\n", hc.Name, gate.FormatValue(bc.Value, bc.Unit), bc.Status,
				gate.FormatValue(hc.Value, hc.Unit), hc.Status, hc.Comparison, gate.FormatValue(hc.Limit, hc.Unit))
		}
	}
	tw.Flush()
	for _, r := range c.Rows {
		if r.Status != gate.StatusPass {
			fmt.Fprintf(w, "%s: %s\n", r.Criterion, r.Detail)
		}
	}
	fmt.Fprintf(w, "\nbase %s: %s: %s\n", runName(c.Base), c.Base.Verdict, c.Base.Reason)
	fmt.Fprintf(w, "head %s: %s: %s\n", runName(c.Head), c.Head.Verdict, c.Head.Reason)
	for i, r := range c.Confirmations {
		fmt.Fprintf(w, "confirmation %d (a fresh process): %s: %s\n", i+1, r.Verdict, r.Reason)
	}
	for i, r := range c.BaseConfirmations {
		fmt.Fprintf(w, "base gated again beside confirmation %d: %s: %s\n", i+1, r.Verdict, r.Reason)
	}
	if c.Flake {
		fmt.Fprintln(w, "flake: the failure did not repeat; the verdict is the confirmation's")
	}
	if c.Unconfirmed != "" {
		fmt.Fprintf(w, "not confirmed on a fresh process: %s\n", c.Unconfirmed)
	}
}

func runName(r gate.RunRef) string {
	switch {
	case r.Ref != "" && r.SHA != "":
		return r.Ref + " " + gate.ShortSHA(r.SHA)
	case r.SHA != "":
		return gate.ShortSHA(r.SHA)
	}
	return "checkout"
}
