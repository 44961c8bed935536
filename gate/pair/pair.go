// Package pair gates a pull request's base and head alike and compares
// them: the same worker, the same containment and load schedule, in an
// order that alternates between pull requests, and a failure confirmed on
// a fresh process before it is reported. `memgate check --base` and the
// server's pull request gates both run it.
package pair

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
)

// Gate runs one gate; pipeline.Run does.
type Gate func(ctx context.Context, opts pipeline.Options) pipeline.Result

// Base is the base side of a pair: a checkout to gate, or a stored result
// of the same commit and config to reuse. With neither (no Dir, no
// Report) the head is gated alone, its failure still confirmed.
type Base struct {
	SHA string
	Ref string // e.g. "main", for headlines
	// Dir, Config and Files are the base's checkout and its own config;
	// ignored when Report is set.
	Dir    string
	Config config.Config
	Files  pipeline.RepoFiles
	// OwnsDir: Dir is memgate's own scratch checkout (see pipeline.Options).
	OwnsDir bool
	// Report is a stored result of this base (same commit, same config);
	// RunID is its run's id on the server. The base is not gated again.
	Report *gate.Report
	RunID  int64
}

// Options are one pair's inputs. The head is gated with Head; the base with
// a copy of Head whose checkout and config are the base's, so both are
// contained and run alike.
type Options struct {
	Head    pipeline.Options
	HeadSHA string
	Base    Base
	// Seed decides which of the two runs first (the head's commit by
	// default): across pull requests each goes first about half the time,
	// so a machine warming up or slowing down does not favour one side.
	Seed string
	// Gate runs each gate; nil is pipeline.Run.
	Gate   Gate
	Logger *slog.Logger
}

// Result is a finished pair: the comparison, and the runs behind it (the
// base's is empty when it was reused) for their profiles.
type Result struct {
	Comparison gate.Comparison
	Base       pipeline.Result
	Head       pipeline.Result
	// Confirmations are the confirming runs of the head, in order;
	// BaseConfirmations the base's beside them, when a worse head was
	// confirmed against a base gated again.
	Confirmations     []pipeline.Result
	BaseConfirmations []pipeline.Result
}

// Run gates the pair and compares it. A failing comparison is confirmed
// by gating the head again on a fresh process (the head config's
// compare.confirmations times) and comparing it with the same base; a
// failure that does not repeat is a flake, with both runs kept.
func Run(ctx context.Context, opts Options) Result {
	if opts.Gate == nil {
		opts.Gate = pipeline.Run
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Seed == "" {
		opts.Seed = opts.HeadSHA
	}
	var res Result
	base := func() {
		if opts.Base.Report != nil || opts.Base.Dir == "" {
			return
		}
		phase(opts, "base", fmt.Sprintf("gating the base %s", describe(opts.Base.Ref, opts.Base.SHA)))
		res.Base = opts.Gate(ctx, baseOptions(opts))
	}
	head := func() {
		phase(opts, "head", fmt.Sprintf("gating the head %s", describe("", opts.HeadSHA)))
		res.Head = opts.Gate(ctx, opts.Head)
	}
	if HeadFirst(opts.Seed) {
		head()
		base()
	} else {
		base()
		head()
	}
	baseRef := baseRun(opts.Base, res.Base)
	limits := opts.Head.Config.Compare
	c := gate.Compare(baseRef, runRef(opts.HeadSHA, "", res.Head), limits)
	for i := 0; i < limits.Confirmations && c.Verdict == gate.Fail && ctx.Err() == nil; i++ {
		gates := 1
		if c.Outcome == gate.OutcomeWorse && opts.Base.Report == nil && opts.Base.Dir != "" {
			gates = 2
		}
		if why := noTimeFor(ctx, gates, opts.Head.Config.WorstCase()); why != "" {
			c.Unconfirmed = why
			c.Headline += " (not confirmed: " + why + ")"
			phase(opts, "confirm", "not confirming the failure: "+why)
			break
		}
		phase(opts, "confirm", fmt.Sprintf("confirming the failure on a fresh process (%d of %d): %s", i+1, limits.Confirmations, c.Headline))
		again := opts.Gate(ctx, opts.Head)
		res.Confirmations = append(res.Confirmations, again)
		ref := runRef(opts.HeadSHA, "", again)
		c.Confirmations = append(c.Confirmations, ref)
		against := baseRef
		if c.Outcome == gate.OutcomeWorse && opts.Base.Report == nil && opts.Base.Dir != "" {
			// A head worse than its base may be a machine slower for a
			// while (other work on its cores): the base is gated again
			// right after, and a slowness both share is no finding.
			b := opts.Gate(ctx, baseOptions(opts))
			res.BaseConfirmations = append(res.BaseConfirmations, b)
			against = baseRun(opts.Base, b)
			c.BaseConfirmations = append(c.BaseConfirmations, against)
		}
		if cc := gate.Compare(against, ref, limits); cc.Verdict != gate.Fail {
			c = flake(c, cc)
			break
		}
	}
	opts.Logger.Info("pair compared", "verdict", c.Verdict, "outcome", c.Outcome, "flake", c.Flake, "headline", c.Headline)
	res.Comparison = c
	return res
}

// noTimeFor says why gates more gates (each up to worst) cannot end
// before ctx's deadline, "" when they can or there is none: a confirmation
// the job's timeout would stop half-way would turn a reported failure
// into a stopped job that reports nothing.
func noTimeFor(ctx context.Context, gates int, worst time.Duration) string {
	deadline, ok := ctx.Deadline()
	if !ok {
		return ""
	}
	left, need := time.Until(deadline), time.Duration(gates)*worst
	if left >= need {
		return ""
	}
	return fmt.Sprintf("%s left of the job's time, and a confirmation may take %s", left.Round(time.Second), need)
}

// flake: the first comparison failed and a confirmation did not. The
// verdict, outcome and rows are the confirmation's; Head stays the failed
// run and Confirmations hold the one that did not repeat it.
func flake(failed, confirmed gate.Comparison) gate.Comparison {
	c := confirmed
	c.Head = failed.Head
	c.Confirmations = failed.Confirmations
	c.BaseConfirmations = failed.BaseConfirmations
	c.Flake = true
	c.Headline = fmt.Sprintf("%s (a first run failed and did not repeat on a fresh process: %s)", confirmed.Headline, failed.Headline)
	return c
}

// HeadFirst says whether the head is gated before the base for this seed.
func HeadFirst(seed string) bool {
	sum := sha256.Sum256([]byte(seed))
	return sum[0]&1 == 1
}

func baseOptions(opts Options) pipeline.Options {
	o := opts.Head
	o.Dir, o.Config, o.Files, o.OwnsDir = opts.Base.Dir, opts.Base.Config, opts.Base.Files, opts.Base.OwnsDir
	return o
}

func baseRun(b Base, run pipeline.Result) gate.RunRef {
	if b.Report == nil && b.Dir == "" {
		return gate.RunRef{} // none: Compare judges the head alone
	}
	if b.Report != nil {
		ref := reportRef(b.SHA, b.Ref, b.Report)
		ref.Reused, ref.RunID = true, b.RunID
		return ref
	}
	return runRef(b.SHA, b.Ref, run)
}

func runRef(sha, ref string, run pipeline.Result) gate.RunRef {
	if run.Report == nil {
		return gate.RunRef{SHA: sha, Ref: ref, Verdict: gate.Error, Reason: "the gate did not run"}
	}
	return reportRef(sha, ref, run.Report)
}

func reportRef(sha, ref string, rep *gate.Report) gate.RunRef {
	return gate.RunRef{SHA: sha, Ref: ref, Verdict: rep.Verdict, Reason: rep.Reason, Report: rep}
}

func phase(opts Options, name, detail string) {
	opts.Logger.Info("pair", "stage", name, "detail", detail)
	if opts.Head.Progress != nil {
		opts.Head.Progress.Phase(name, detail)
	}
}

func describe(ref, sha string) string {
	sha = gate.ShortSHA(sha)
	switch {
	case ref != "" && sha != "":
		return ref + " (" + sha + ")"
	case ref != "":
		return ref
	case sha != "":
		return sha
	}
	return "checkout"
}
