package pair

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
)

// gates is a hand-written Gate: each directory answers with its next
// verdict in turn, and the calls are recorded in order.
type gates struct {
	verdicts map[string][]gate.Verdict
	calls    []string
}

func (g *gates) run(_ context.Context, opts pipeline.Options) pipeline.Result {
	g.calls = append(g.calls, opts.Dir)
	vs := g.verdicts[opts.Dir]
	if len(vs) == 0 {
		panic("no more runs of " + opts.Dir)
	}
	v := vs[0]
	g.verdicts[opts.Dir] = vs[1:]
	return pipeline.Result{Report: report(v)}
}

// report is a run that leaks heap when it fails.
func report(v gate.Verdict) *gate.Report {
	st := gate.StatusPass
	if v == gate.Fail {
		st = gate.StatusFail
	}
	return &gate.Report{Verdict: v, Reason: fmt.Sprintf("run %s", v), Criteria: []gate.Criterion{{Name: gate.CritHeapGrowth, Status: st, Value: 900}}}
}

func options(g *gates, seed string) Options {
	cfg := config.Default()
	return Options{
		Head:    pipeline.Options{Dir: "head", Config: cfg},
		HeadSHA: "h", Seed: seed,
		Base: Base{SHA: "b", Ref: "main", Dir: "base", Config: cfg},
		Gate: g.run,
	}
}

// seeds finds a seed that puts the head first and one that puts the base
// first.
func seeds(t *testing.T) (headFirst, baseFirst string) {
	for i := 0; headFirst == "" || baseFirst == ""; i++ {
		s := fmt.Sprint(i)
		if HeadFirst(s) {
			headFirst = s
		} else {
			baseFirst = s
		}
	}
	return headFirst, baseFirst
}

func TestOrderAlternatesBySeed(t *testing.T) {
	hf, bf := seeds(t)
	for seed, want := range map[string][]string{hf: {"head", "base"}, bf: {"base", "head"}} {
		g := &gates{verdicts: map[string][]gate.Verdict{"head": {gate.Pass}, "base": {gate.Pass}}}
		res := Run(context.Background(), options(g, seed))
		if !slices.Equal(g.calls, want) || res.Comparison.Outcome != gate.OutcomeSame {
			t.Errorf("seed %s: calls %v, outcome %s; want %v", seed, g.calls, res.Comparison.Outcome, want)
		}
	}
	// Over many pull requests each side goes first about half the time.
	first := 0
	for i := range 200 {
		if HeadFirst(fmt.Sprintf("%040x", i*7919)) {
			first++
		}
	}
	if first < 70 || first > 130 {
		t.Errorf("head first %d of 200", first)
	}
}

func TestBaseGatedWithItsOwnConfig(t *testing.T) {
	var seen []pipeline.Options
	opts := options(nil, "x")
	opts.Base.Config.Load.Rate = 123
	opts.Head.Logger = nil
	opts.Gate = func(_ context.Context, o pipeline.Options) pipeline.Result {
		seen = append(seen, o)
		return pipeline.Result{Report: report(gate.Pass)}
	}
	Run(context.Background(), opts)
	for _, o := range seen {
		if (o.Dir == "base") != (o.Config.Load.Rate == 123) {
			t.Errorf("%s gated with rate %v", o.Dir, o.Config.Load.Rate)
		}
	}
}

func TestConfirmation(t *testing.T) {
	for _, tc := range []struct {
		name        string
		head        []gate.Verdict
		confirm     int
		verdict     gate.Verdict
		flake       bool
		headRuns    int
		confirmRuns int
	}{
		{"a pass is not re-run", []gate.Verdict{gate.Pass}, 1, gate.Pass, false, 1, 0},
		{"a failure that repeats fails", []gate.Verdict{gate.Fail, gate.Fail}, 1, gate.Fail, false, 2, 1},
		{"a failure that does not repeat is a flake", []gate.Verdict{gate.Fail, gate.Pass}, 1, gate.Pass, true, 2, 1},
		{"two confirmations", []gate.Verdict{gate.Fail, gate.Fail, gate.Fail}, 2, gate.Fail, false, 3, 2},
		{"the second confirmation does not repeat", []gate.Verdict{gate.Fail, gate.Fail, gate.Pass}, 2, gate.Pass, true, 3, 2},
		{"no confirmation configured", []gate.Verdict{gate.Fail}, 0, gate.Fail, false, 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := &gates{verdicts: map[string][]gate.Verdict{"head": tc.head, "base": {gate.Pass}}}
			opts := options(g, "x")
			opts.Head.Config.Compare.Confirmations = tc.confirm
			res := Run(context.Background(), opts)
			c := res.Comparison
			heads := 0
			for _, d := range g.calls {
				if d == "head" {
					heads++
				}
			}
			if c.Verdict != tc.verdict || c.Flake != tc.flake || heads != tc.headRuns ||
				len(c.Confirmations) != tc.confirmRuns || len(res.Confirmations) != tc.confirmRuns {
				t.Fatalf("verdict %s flake %v, %d head runs, %d confirmations: %+v", c.Verdict, c.Flake, heads, len(c.Confirmations), c)
			}
			if tc.flake && (c.Head.Verdict != gate.Fail || c.Confirmations[len(c.Confirmations)-1].Verdict != gate.Pass) {
				t.Fatalf("a flake keeps both runs: head %s, confirmations %+v", c.Head.Verdict, c.Confirmations)
			}
		})
	}
}

func TestReusedBaseIsNotGated(t *testing.T) {
	g := &gates{verdicts: map[string][]gate.Verdict{"head": {gate.Fail, gate.Fail}}}
	opts := options(g, "x")
	opts.Base.Report, opts.Base.RunID = report(gate.Fail), 41
	res := Run(context.Background(), opts)
	c := res.Comparison
	if slices.Contains(g.calls, "base") || !c.Base.Reused || c.Base.RunID != 41 {
		t.Fatalf("calls %v, base %+v", g.calls, c.Base)
	}
	if c.Outcome != gate.OutcomeAlready || c.Verdict != gate.Neutral || !strings.HasPrefix(c.Headline, "already leaks on main: heap +900 B/request") || !strings.HasSuffix(c.Headline, ", run 41") {
		t.Fatalf("%s/%s %q", c.Verdict, c.Outcome, c.Headline)
	}
}

// TestHeadAlone: with no base the head is judged alone, and its failure
// is still confirmed before it is reported.
func TestHeadAlone(t *testing.T) {
	g := &gates{verdicts: map[string][]gate.Verdict{"head": {gate.Fail, gate.Pass}}}
	opts := options(g, "x")
	opts.Base = Base{}
	c := Run(context.Background(), opts).Comparison
	if !slices.Equal(g.calls, []string{"head", "head"}) || c.Verdict != gate.Pass || !c.Flake || c.Outcome != gate.OutcomeUnjudged {
		t.Fatalf("calls %v: %s/%s flake %v %q", g.calls, c.Verdict, c.Outcome, c.Flake, c.Headline)
	}
	if !strings.HasPrefix(c.Headline, "run pass (a first run failed and did not repeat on a fresh process: run fail)") {
		t.Fatalf("headline %q", c.Headline)
	}
}

// TestWorseHeadConfirmedBesideItsBase: a head slower than its base is
// confirmed against the base gated again; when the base is now as slow
// (the machine was), the failure is a flake.
func TestWorseHeadConfirmedBesideItsBase(t *testing.T) {
	for _, tc := range []struct {
		name      string
		baseAgain time.Duration // the base's p99 when gated again
		verdict   gate.Verdict
		flake     bool
	}{
		{"the machine was slow", 280 * time.Millisecond, gate.Pass, true},
		{"the head is slower", 5 * time.Millisecond, gate.Fail, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls []string
			base := []time.Duration{5 * time.Millisecond, tc.baseAgain}
			opts := options(nil, "x")
			opts.Gate = func(_ context.Context, o pipeline.Options) pipeline.Result {
				calls = append(calls, o.Dir)
				rep := report(gate.Pass)
				p99 := 300 * time.Millisecond
				if o.Dir == "base" {
					p99, base = base[0], base[1:]
				}
				rep.Load.ScheduledLatency.P99 = gate.Duration(p99)
				return pipeline.Result{Report: rep}
			}
			res := Run(context.Background(), opts)
			c := res.Comparison
			if c.Verdict != tc.verdict || c.Flake != tc.flake || len(calls) != 4 || calls[2] != "head" || calls[3] != "base" ||
				len(c.BaseConfirmations) != 1 || len(res.BaseConfirmations) != 1 {
				t.Fatalf("calls %v: %s flake %v, %d base confirmations: %q", calls, c.Verdict, c.Flake, len(c.BaseConfirmations), c.Headline)
			}
		})
	}
	// A reused base cannot be gated again: the head alone is.
	g := &gates{verdicts: map[string][]gate.Verdict{"head": {gate.Pass, gate.Pass}}}
	opts := options(g, "x")
	opts.Base.Report = report(gate.Pass)
	opts.Base.Report.Load.ScheduledLatency.P99 = gate.Duration(5 * time.Millisecond)
	inner := opts.Gate
	opts.Gate = func(ctx context.Context, o pipeline.Options) pipeline.Result {
		r := inner(ctx, o)
		r.Report.Load.ScheduledLatency.P99 = gate.Duration(300 * time.Millisecond)
		return r
	}
	if c := Run(context.Background(), opts).Comparison; !slices.Equal(g.calls, []string{"head", "head"}) || c.Verdict != gate.Fail || len(c.BaseConfirmations) != 0 {
		t.Fatalf("calls %v: %s", g.calls, c.Verdict)
	}
}

// A confirmation the job's time cannot hold is not started: the failure
// is reported, saying it was not confirmed and why, instead of a job the
// timeout stops half-way that reports nothing.
func TestNoConfirmationWithoutTimeForIt(t *testing.T) {
	g := &gates{verdicts: map[string][]gate.Verdict{"head": {gate.Fail, gate.Fail}, "base": {gate.Pass}}}
	opts := options(g, "x")
	worst := opts.Head.Config.WorstCase()
	ctx, cancel := context.WithTimeout(context.Background(), worst/2)
	defer cancel()
	c := Run(ctx, opts).Comparison
	if c.Verdict != gate.Fail || len(c.Confirmations) != 0 || len(g.calls) != 2 ||
		!strings.Contains(c.Unconfirmed, "left of the job's time, and a confirmation may take "+worst.String()) ||
		!strings.Contains(c.Headline, "(not confirmed: ") {
		t.Fatalf("calls %v: %+v", g.calls, c)
	}
	// With the time for it, the same failure is confirmed.
	g = &gates{verdicts: map[string][]gate.Verdict{"head": {gate.Fail, gate.Fail}, "base": {gate.Pass}}}
	opts = options(g, "x")
	ctx, cancel = context.WithTimeout(context.Background(), 3*worst)
	defer cancel()
	if c := Run(ctx, opts).Comparison; len(c.Confirmations) != 1 || c.Unconfirmed != "" {
		t.Fatalf("calls %v: %+v", g.calls, c)
	}
}
