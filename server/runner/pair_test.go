package runner

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/storage"
)

// pairRecorder is a PairGate that records what it was given and answers
// with base, or reuses the stored base it was handed.
type pairRecorder struct {
	mu      sync.Mutex
	given   []Pair
	base    gate.Verdict // the verdict of a base it measures
	outcome gate.Outcome // the comparison's outcome; "" for same
}

func (p *pairRecorder) gate(_ context.Context, pr Pair) PairResult {
	p.mu.Lock()
	p.given = append(p.given, pr)
	verdict, outcome := p.base, p.outcome
	p.mu.Unlock()
	if outcome == "" {
		outcome = gate.OutcomeSame
	}
	now := time.Now().UTC()
	base := pr.Base.Stored
	if base == nil {
		base = &gate.Report{Verdict: verdict, Reason: "base " + string(verdict), StartedAt: now, FinishedAt: now}
		if _, err := os.Stat(pr.Base.Dir + "/go.mod"); err != nil {
			base = &gate.Report{Verdict: gate.Error, Reason: "no base checkout at " + pr.Base.Dir}
		}
	}
	head := &gate.Report{Verdict: gate.Pass, Reason: "head pass", StartedAt: now, FinishedAt: now}
	return PairResult{
		Comparison: gate.Comparison{Verdict: gate.Pass, Outcome: outcome, Headline: "no change",
			Base: gate.RunRef{SHA: pr.Base.SHA, Verdict: base.Verdict, Reason: base.Reason, Report: base, Reused: pr.Base.Stored != nil, RunID: pr.Base.StoredRun},
			Head: gate.RunRef{SHA: pr.HeadSHA, Verdict: gate.Pass, Reason: head.Reason, Report: head}},
		Head: pipeline.Result{Report: head},
	}
}

// A pull request's run measures its base once it holds the base's claim,
// keeps a good result and not a broken one, and a run on the same base
// and config reuses the kept one; another run's claim is waited for.
func TestPullRequestRunsKeepAndReuseTheirBase(t *testing.T) {
	ctx := context.Background()
	repo := testgit.Init(t)
	base := testgit.Commit(t, repo, "base", map[string]string{"go.mod": testgit.GoMod, "main.go": "package main\n\nfunc main() {}\n"})
	head := testgit.Commit(t, repo, "head", map[string]string{"README.md": "a change\n"})
	st := migratedStore(t)
	pairs := &pairRecorder{base: gate.Error}
	rep := &recordingReporter{}
	r := New(st, rep, Options{AllowLocalRepos: true, GitEnv: []string{"PATH=" + os.Getenv("PATH")}, WorkDir: t.TempDir(),
		Defaults: config.Default(), Pair: pairs.gate, BaseWait: 20 * time.Millisecond})
	execute := func(pr int) gate.Run {
		t.Helper()
		id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: pr, HeadSHA: head, BaseSHA: base, BaseRef: "main",
			CloneURL: repo, Trigger: "t", JobID: int64(pr)})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Execute(ctx, id, int64(pr), true); err != nil {
			t.Fatalf("execute: %v", err)
		}
		run, _ := st.Run(ctx, id)
		return run
	}
	measured := func() (n int) {
		pairs.mu.Lock()
		defer pairs.mu.Unlock()
		for _, p := range pairs.given {
			if p.Base.Stored == nil {
				n++
			}
		}
		return n
	}

	// A base that errored is not kept: the next run measures it again.
	execute(1)
	// Nor a failure nothing bore out (the head passed: "fixes"): one run's
	// failure may be a noisy machine's.
	pairs.mu.Lock()
	pairs.base, pairs.outcome = gate.Fail, gate.OutcomeFixed
	pairs.mu.Unlock()
	execute(5)
	// A failure the head's run bore out ("already") is kept.
	pairs.mu.Lock()
	pairs.outcome = gate.OutcomeAlready
	pairs.mu.Unlock()
	second := execute(2)
	if measured() != 3 {
		t.Fatalf("%d bases measured, want 3 (an errored base, and an uncorroborated failure, are measured again)", measured())
	}
	// The kept result is reused.
	third := execute(3)
	pairs.mu.Lock()
	last := pairs.given[len(pairs.given)-1]
	pairs.mu.Unlock()
	if measured() != 3 || last.Base.Stored == nil || last.Base.Stored.Verdict != gate.Fail || last.Base.StoredRun != second.ID {
		t.Fatalf("third run: measured %d, given %+v", measured(), last.Base)
	}
	cmp, err := st.Comparison(ctx, third.ID)
	if err != nil || cmp == nil || cmp.Base.Report == nil || cmp.Base.Report.Reason != "base fail" || third.Verdict != gate.Pass {
		t.Fatalf("third run's comparison: %+v %v (run %+v)", cmp, err, third)
	}
	if !containsCall(rep.calls, "compared") {
		t.Errorf("the check was not completed with the comparison: %v", rep.calls)
	}

	// Another config is another key; while run 999 measures it, a run
	// waits, then reuses what 999 kept.
	cfg := config.Default()
	cfg.Load.Rate++
	r.opts.Defaults = cfg
	// The base's effective config, as the runner makes it: the import
	// path is the repository's (for GOPATH-era repositories).
	keyed := cfg
	keyed.Build.ImportPath = "github.com/acme/api"
	hash, _ := ConfigHash(keyed, r.opts.Version)
	claim, err := st.ClaimBase(ctx, storage.BaseKey{Repository: "acme/api", BaseSHA: base, ConfigHash: hash}, 999, time.Minute, 0)
	if err != nil || !claim.Mine {
		t.Fatalf("claim: %+v %v", claim, err)
	}
	go func() {
		time.Sleep(200 * time.Millisecond)
		st.FinishBase(ctx, claim.ID, 999, &gate.Report{Verdict: gate.Pass, Reason: "measured by 999"})
	}()
	start := time.Now()
	execute(4)
	pairs.mu.Lock()
	last = pairs.given[len(pairs.given)-1]
	pairs.mu.Unlock()
	if last.Base.StoredRun != 999 || time.Since(start) < 200*time.Millisecond || measured() != 3 {
		t.Fatalf("a run on a base being measured: given %+v after %s, %d measured", last.Base, time.Since(start), measured())
	}
}

// A pull request's job gates its base as well as its head: a config whose
// gate fits the job timeout once but not twice is refused before either
// starts, naming the key, rather than stopped half-way every time.
func TestPairThatCannotFitTheJobTimeoutIsRefused(t *testing.T) {
	ctx := context.Background()
	repo := testgit.Init(t)
	yml := "load:\n  duration: 10m\n" // a 28m5s gate: fits 30m once, not twice
	base := testgit.Commit(t, repo, "base", map[string]string{"go.mod": testgit.GoMod, ".memgate.yml": yml})
	head := testgit.Commit(t, repo, "head", map[string]string{"README.md": "a change\n"})
	st := migratedStore(t)
	pairs := &pairRecorder{base: gate.Pass}
	r := New(st, &recordingReporter{}, Options{AllowLocalRepos: true, GitEnv: []string{"PATH=" + os.Getenv("PATH")}, WorkDir: t.TempDir(),
		JobTimeout: 30 * time.Minute, Defaults: config.Default(), Pair: pairs.gate})
	id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 3, HeadSHA: head, BaseSHA: base, BaseRef: "main",
		CloneURL: repo, Trigger: "t", JobID: 3})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Execute(ctx, id, 3, true); err != nil {
		t.Fatal(err)
	}
	run, _ := st.Run(ctx, id)
	if run.Verdict != gate.Error || !strings.Contains(run.Reason, "line 2: load.duration: the gate could take 28m5s") ||
		!strings.Contains(run.Reason, "more than the 15m0s a pull request's gate gets") || len(pairs.given) != 0 {
		t.Fatalf("run %s %q; pairs gated %d", run.Verdict, run.Reason, len(pairs.given))
	}
}
