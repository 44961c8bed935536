package storage

import (
	"errors"
	"testing"
	"time"
)

// One creator per check run: a claim is exclusive, its id is stored only
// while it is held, and a stale claim can be given up for another.
func TestCheckRunClaims(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		id, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "a"))
		if err != nil {
			t.Fatal(err)
		}
		claim, ok, err := b.store.ClaimCheckRun(b.ctx, id)
		if err != nil || !ok {
			t.Fatalf("first claim: %v %v", ok, err)
		}
		if _, ok, _ := b.store.ClaimCheckRun(b.ctx, id); ok {
			t.Fatal("a second creator claimed the check run")
		}
		// Not stale yet: nothing to give up.
		if released, _ := b.store.ReleaseStaleCheckClaim(b.ctx, id, time.Now().Add(-time.Minute)); released {
			t.Fatal("a fresh claim was given up")
		}
		time.Sleep(5 * time.Millisecond)
		if released, _ := b.store.ReleaseStaleCheckClaim(b.ctx, id, time.Now()); !released {
			t.Fatal("a stale claim was not given up")
		}
		// Its creator comes back late: it no longer holds the claim.
		if stored, _ := b.store.SetCheckRun(b.ctx, id, claim, 1001); stored {
			t.Fatal("a late creator stored its check run over a released claim")
		}
		again, ok, _ := b.store.ClaimCheckRun(b.ctx, id)
		if !ok {
			t.Fatal("no claim after the release")
		}
		if err := b.store.ReleaseCheckRun(b.ctx, id, claim); err != nil {
			t.Fatal(err)
		}
		if stored, err := b.store.SetCheckRun(b.ctx, id, again, 1002); !stored || err != nil {
			t.Fatalf("the holder's store: %v %v", stored, err)
		}
		if run, _ := b.store.Run(b.ctx, id); run.CheckRunID != 1002 {
			t.Fatalf("check run %d", run.CheckRunID)
		}
	})
}

// A re-run's pull request is found by its head: an open one first.
func TestPullRequestByHead(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		for _, p := range []PullRequest{
			{Repository: "acme/api", Number: 3, State: "closed", HeadSHA: "h", BaseSHA: "b3", BaseRef: "old"},
			{Repository: "acme/api", Number: 4, State: "open", HeadSHA: "h", HeadRef: "f", HeadRepo: "stranger/api", BaseSHA: "b4", BaseRef: "main"},
			{Repository: "acme/other", Number: 5, State: "open", HeadSHA: "h"},
		} {
			if err := b.store.SetPullRequest(b.ctx, nil, p); err != nil {
				t.Fatal(err)
			}
		}
		p, err := b.store.PullRequestByHead(b.ctx, nil, "acme/api", "h")
		if err != nil || p.Number != 4 || p.HeadRepo != "stranger/api" || p.BaseSHA != "b4" || p.BaseRef != "main" || p.HeadRef != "f" {
			t.Fatalf("by head: %+v %v", p, err)
		}
		if _, err := b.store.PullRequestByHead(b.ctx, nil, "acme/api", "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("unknown head: %v", err)
		}
		if p, err := b.store.GetPullRequest(b.ctx, nil, "acme/api", 3); err != nil || p.State != "closed" || p.BaseRef != "old" {
			t.Fatalf("by number: %+v %v", p, err)
		}
	})
}

// Exactly one of those who see a run end posts its final state, and only
// once its check run is known.
func TestReportIsClaimedOnce(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		id, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "a"))
		if err != nil {
			t.Fatal(err)
		}
		claim, _, _ := b.store.ClaimCheckRun(b.ctx, id)
		if _, ok, _ := b.store.ClaimReport(b.ctx, id); ok {
			t.Fatal("the report of a queued run was claimed")
		}
		b.store.Cancel(b.ctx, nil, id, "superseded")
		if _, ok, _ := b.store.ClaimReport(b.ctx, id); ok {
			t.Fatal("the report was claimed while the check run is being created")
		}
		b.store.SetCheckRun(b.ctx, id, claim, 1001)
		if check, ok, err := b.store.ClaimReport(b.ctx, id); !ok || err != nil || check != 1001 {
			t.Fatalf("first claim: %d %v %v", check, ok, err)
		}
		if _, ok, _ := b.store.ClaimReport(b.ctx, id); ok {
			t.Fatal("the report was claimed twice")
		}
	})
}
