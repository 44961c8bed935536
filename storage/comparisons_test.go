package storage

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
)

var baseKey = BaseKey{Repository: "acme/api", BaseSHA: "b1", ConfigHash: "cfg1"}

// The first run on a base measures it; a run on the same base meanwhile
// waits; once stored, the next reuses it; another config does not.
func TestBaseResultIsMeasuredOnceAndReused(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		first, err := b.store.ClaimBase(b.ctx, baseKey, 1, time.Minute, 0)
		if err != nil || !first.Mine || first.Report != nil {
			t.Fatalf("first claim: %+v %v", first, err)
		}
		busy, err := b.store.ClaimBase(b.ctx, baseKey, 2, time.Minute, 0)
		if err != nil || busy.Mine || busy.Report != nil {
			t.Fatalf("claim while measured: %+v %v", busy, err)
		}
		if ok, err := b.store.RenewBase(b.ctx, first.ID, 2, time.Minute); ok || err != nil {
			t.Fatalf("a non-holder renewed the lease: %v %v", ok, err)
		}
		rep := &gate.Report{Verdict: gate.Fail, Reason: "base leaks"}
		if ok, err := b.store.FinishBase(b.ctx, first.ID, 1, rep); !ok || err != nil {
			t.Fatalf("finish: %v %v", ok, err)
		}
		reuse, err := b.store.ClaimBase(b.ctx, baseKey, 3, time.Minute, 0)
		if err != nil || reuse.Mine || reuse.Report == nil || reuse.Report.Reason != "base leaks" || reuse.RunID != 1 || reuse.ID != first.ID {
			t.Fatalf("reuse: %+v %v", reuse, err)
		}
		other := baseKey
		other.ConfigHash = "cfg2"
		if c, err := b.store.ClaimBase(b.ctx, other, 4, time.Minute, 0); err != nil || !c.Mine {
			t.Fatalf("another config reused a result: %+v %v", c, err)
		}
		got, runID, err := b.store.BaseResult(b.ctx, first.ID)
		if err != nil || runID != 1 || got.Verdict != gate.Fail {
			t.Fatalf("base result: %+v %d %v", got, runID, err)
		}
	})
}

// Eight runs on one base at once: exactly one measures it.
func TestConcurrentClaimsMeasureTheBaseOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		var wg sync.WaitGroup
		var mu sync.Mutex
		mine := 0
		for i := int64(1); i <= 8; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := b.store.ClaimBase(b.ctx, baseKey, i, time.Minute, 0)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if c.Mine {
					mine++
				}
			}()
		}
		wg.Wait()
		if mine != 1 {
			t.Fatalf("%d runs measure the base, want 1", mine)
		}
	})
}

// A holder whose lease ran out (its worker died) is taken over, and can no
// longer store its result; a base that errored is not kept; a result older
// than the maximum age is measured again.
func TestBaseClaimsExpireAndErrorsAreNotKept(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		dead, err := b.store.ClaimBase(b.ctx, baseKey, 1, -time.Second, 0)
		if err != nil || !dead.Mine {
			t.Fatalf("claim: %+v %v", dead, err)
		}
		taken, err := b.store.ClaimBase(b.ctx, baseKey, 2, time.Minute, 0)
		if err != nil || !taken.Mine {
			t.Fatalf("an expired claim was not taken over: %+v %v", taken, err)
		}
		if ok, _ := b.store.FinishBase(b.ctx, dead.ID, 1, &gate.Report{Verdict: gate.Pass}); ok {
			t.Fatal("the dead holder stored its result over the new holder's claim")
		}
		if ok, err := b.store.FinishBase(b.ctx, taken.ID, 2, &gate.Report{Verdict: gate.Error, Reason: "build failed"}); ok || err != nil {
			t.Fatalf("an error base was kept: %v %v", ok, err)
		}
		again, err := b.store.ClaimBase(b.ctx, baseKey, 3, time.Minute, 0)
		if err != nil || !again.Mine || again.Report != nil {
			t.Fatalf("after an error base: %+v %v", again, err)
		}
		if _, err := b.store.FinishBase(b.ctx, again.ID, 3, &gate.Report{Verdict: gate.Pass}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		if c, err := b.store.ClaimBase(b.ctx, baseKey, 4, time.Minute, 10*time.Millisecond); err != nil || !c.Mine {
			t.Fatalf("an old result was reused: %+v %v", c, err)
		}
		if _, _, err := b.store.BaseResult(b.ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing base result: %v", err)
		}
	})
}

// A compared run keeps its comparison; the base's report comes back from
// the stored base result, the head's from the run.
func TestComparisonRoundTrip(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		id, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 7, "h1"))
		if err != nil {
			t.Fatal(err)
		}
		if c, err := b.store.Comparison(b.ctx, id); c != nil || err != nil {
			t.Fatalf("comparison of a run not compared: %v %v", c, err)
		}
		if _, err := b.store.Comparison(b.ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Fatalf("comparison of no run: %v", err)
		}
		c, _ := b.store.ClaimBase(b.ctx, baseKey, id, time.Minute, 0)
		base := &gate.Report{Verdict: gate.Fail, Reason: "base leaks", Samples: []gate.Sample{{Offset: 1, HeapInuse: 5}}}
		b.store.FinishBase(b.ctx, c.ID, id, base)
		head := &gate.Report{Verdict: gate.Fail, Reason: "head leaks", Criteria: []gate.Criterion{{Name: gate.CritHeapGrowth, Value: 900}}}
		cmp := &gate.Comparison{Verdict: gate.Neutral, Outcome: gate.OutcomeAlready, Headline: "already leaks on main: heap grows",
			Base: gate.RunRef{SHA: "b1", Verdict: gate.Fail, Report: base}, Head: gate.RunRef{SHA: "h1", Verdict: gate.Fail, Report: head},
			Rows: []gate.ComparisonRow{{Criterion: gate.CmpHeapGrowth, Base: 880, Head: 900, Status: gate.StatusPass}}, Flake: true}
		if ok, err := b.store.CompletePair(b.ctx, id, 0, cmp, c.ID, nil); !ok || err != nil {
			t.Fatalf("complete pair: %v %v", ok, err)
		}
		run, _ := b.store.Run(b.ctx, id)
		if run.Verdict != gate.Neutral || run.Reason != cmp.Headline || run.HeapGrowth == nil || *run.HeapGrowth != 900 {
			t.Fatalf("run: %+v", run)
		}
		got, err := b.store.Comparison(b.ctx, id)
		if err != nil || got.Outcome != gate.OutcomeAlready || len(got.Rows) != 1 || got.Head.Report == nil || got.Head.Report.Reason != "head leaks" ||
			got.Base.Report == nil || len(got.Base.Report.Samples) != 1 {
			t.Fatalf("comparison: %+v %v", got, err)
		}
		if n, err := b.store.CountRepo(b.ctx, "acme/api"); err != nil || n.Flakes != 1 || n.Accepted != 0 {
			t.Fatalf("counts: %+v %v", n, err)
		}
	})
}

// An acceptance covers one head commit of one pull request against one
// base commit; the first stands.
func TestAcceptanceCoversOneHead(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		a := Acceptance{Repository: "acme/api", PR: 7, HeadSHA: "h1", BaseSHA: "b1", RunID: 3, By: "octocat"}
		if ok, err := b.store.Accept(b.ctx, nil, a); !ok || err != nil {
			t.Fatalf("accept: %v %v", ok, err)
		}
		a.By = "mallory"
		if ok, err := b.store.Accept(b.ctx, nil, a); ok || err != nil {
			t.Fatalf("second acceptance: %v %v", ok, err)
		}
		got, err := b.store.AcceptanceOf(b.ctx, "acme/api", 7, "h1", "b1")
		if err != nil || got.By != "octocat" || got.RunID != 3 || got.At.IsZero() {
			t.Fatalf("acceptance: %+v %v", got, err)
		}
		for _, miss := range []struct {
			pr         int
			head, base string
		}{{7, "h2", "b1"}, {8, "h1", "b1"}, {7, "h1", "b2"}} {
			if _, err := b.store.AcceptanceOf(b.ctx, "acme/api", miss.pr, miss.head, miss.base); !errors.Is(err, ErrNotFound) {
				t.Errorf("#%d@%s on %s: %v", miss.pr, miss.head, miss.base, err)
			}
		}
		if by, err := b.store.AcceptedBy(b.ctx, "acme/api", 7, "h2", "b1"); by != "" || err != nil {
			t.Errorf("accepted by %q (%v) after a new push", by, err)
		}
		// The pull request's base moved (its base branch edited, main
		// moved and the run re-run): the old acceptance covers nothing.
		if by, err := b.store.AcceptedBy(b.ctx, "acme/api", 7, "h1", "b2"); by != "" || err != nil {
			t.Errorf("accepted by %q (%v) against another base", by, err)
		}
		if list, err := b.store.RecentAcceptances(b.ctx, "acme/api", 10); err != nil || len(list) != 1 || list[0].By != "octocat" || list[0].PR != 7 || list[0].BaseSHA != "b1" {
			t.Errorf("recent acceptances: %+v %v", list, err)
		}
		if n, _ := b.store.CountRepo(b.ctx, "acme/api"); n.Accepted != 1 {
			t.Errorf("accepted count %d", n.Accepted)
		}
	})
}
