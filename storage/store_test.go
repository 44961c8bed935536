package storage

import (
	"context"
	"database/sql"
	"errors"
	"github.com/memgate/memgate/storage/storagetest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
)

type testBundle struct {
	store *Store
	ctx   context.Context
}

// eachEngine runs a test against SQLite, and against Postgres when
// MEMGATE_TEST_DATABASE_URL names one (CI does; a developer's machine may
// not, and then the Postgres half is skipped). Each gets a new database.
func eachEngine(t *testing.T, test func(t *testing.T, b testBundle)) {
	t.Helper()
	t.Run("sqlite", func(t *testing.T) {
		t.Parallel()
		test(t, open(t, "sqlite:"+filepath.Join(t.TempDir(), "memgate.db")))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		url := os.Getenv("MEMGATE_TEST_DATABASE_URL")
		if url == "" {
			t.Skip("MEMGATE_TEST_DATABASE_URL is not set: Postgres half skipped")
		}
		test(t, open(t, storagetest.Database(t, url)))
	})
}

func open(t *testing.T, url string) testBundle {
	t.Helper()
	ctx := context.Background()
	st, err := Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// Migrating twice is a no-op.
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return testBundle{store: st, ctx: ctx}
}

func newRun(repo string, pr int, sha string) gate.Run {
	return gate.Run{Repository: repo, PR: pr, HeadSHA: sha, CloneURL: "https://example/" + repo, Trigger: "test"}
}

func TestRunLifecycle(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		id, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 7, "abc123"))
		if err != nil {
			t.Fatal(err)
		}
		r, err := b.store.Run(b.ctx, id)
		if err != nil || r.Status != gate.RunQueued || r.PR != 7 || r.CreatedAt.IsZero() {
			t.Fatalf("run %+v err %v", r, err)
		}
		if ok, err := b.store.MarkRunning(b.ctx, id, time.Now()); !ok || err != nil {
			t.Fatalf("mark running: %v %v", ok, err)
		}
		rep := &gate.Report{Verdict: gate.Fail, Reason: "heap grows", Criteria: []gate.Criterion{{Name: gate.CritHeapGrowth, Value: 1024}},
			Samples: []gate.Sample{{Offset: 1, Phase: gate.PhaseMeasure, HeapInuse: 10, Goroutines: 3}, {Offset: 2, Phase: gate.PhaseMeasure, HeapInuse: 20, PostGCHeap: 9}}}
		ok, err := b.store.Complete(b.ctx, id, 0, rep, map[string][]byte{"heap-end.pb.gz": []byte("profile")})
		if !ok || err != nil {
			t.Fatalf("complete: %v %v", ok, err)
		}
		got, err := b.store.RunWithReport(b.ctx, id)
		if err != nil || got.Status != gate.RunCompleted || got.Verdict != gate.Fail || got.Report == nil || len(got.Report.Samples) != 2 {
			t.Fatalf("got %+v err %v", got, err)
		}
		p, err := b.store.Profile(b.ctx, id, "heap-end.pb.gz")
		if err != nil || string(p) != "profile" {
			t.Fatalf("profile %q %v", p, err)
		}
		if _, err := b.store.Profile(b.ctx, id, "nope"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("missing profile: %v", err)
		}
		// A completed run cannot be cancelled or completed again.
		if ok, _ := b.store.Cancel(b.ctx, nil, id, "late"); ok {
			t.Error("cancelled a completed run")
		}
		if ok, _ := b.store.Complete(b.ctx, id, 0, rep, nil); ok {
			t.Error("completed twice")
		}
		if _, err := b.store.Run(b.ctx, 999); !errors.Is(err, ErrNotFound) {
			t.Errorf("missing run: %v", err)
		}
	})
}

func TestCancelledRunStaysCancelled(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		id, _ := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "a1"))
		if ok, err := b.store.Cancel(b.ctx, nil, id, "superseded by b2"); !ok || err != nil {
			t.Fatal(ok, err)
		}
		if ok, _ := b.store.MarkRunning(b.ctx, id, time.Now()); ok {
			t.Error("a cancelled run started")
		}
		if ok, _ := b.store.Complete(b.ctx, id, 0, &gate.Report{Verdict: gate.Pass}, nil); ok {
			t.Error("a cancelled run completed")
		}
		r, _ := b.store.Run(b.ctx, id)
		if r.Status != gate.RunCancelled || r.Reason != "superseded by b2" {
			t.Errorf("%+v", r)
		}
	})
}

func TestListRunsFiltersAndPages(t *testing.T) {
	// Visibility is TestScopeFiltersListsInTheQuery's: here, everything.
	everything := Scope{All: true}
	eachEngine(t, func(t *testing.T, b testBundle) {
		for i := 0; i < 7; i++ {
			id, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1+i%2, "sha"+string(rune('a'+i))))
			if err != nil {
				t.Fatal(err)
			}
			v := gate.Pass
			if i%3 == 0 {
				v = gate.Fail
			}
			b.store.Complete(b.ctx, id, 0, &gate.Report{Verdict: v}, nil)
		}
		b.store.CreateRun(b.ctx, nil, newRun("acme/web", 3, "w1"))

		all, next, err := b.store.ListRuns(b.ctx, Filter{Scope: everything, Limit: 3})
		if err != nil || len(all) != 3 || next == 0 || all[0].Repository != "acme/web" {
			t.Fatalf("page 1: %d runs next %d err %v", len(all), next, err)
		}
		seen := len(all)
		for next != 0 {
			var page []gate.Run
			page, next, err = b.store.ListRuns(b.ctx, Filter{Scope: everything, Limit: 3, Before: next})
			if err != nil {
				t.Fatal(err)
			}
			seen += len(page)
		}
		if seen != 8 {
			t.Errorf("paged through %d runs, want 8", seen)
		}
		fails, _, _ := b.store.ListRuns(b.ctx, Filter{Scope: everything, Repository: "acme/api", Verdict: gate.Fail})
		if len(fails) != 3 {
			t.Errorf("%d failed runs, want 3", len(fails))
		}
		pr2, _, _ := b.store.ListRuns(b.ctx, Filter{Scope: everything, Repository: "acme/api", PR: 2})
		if len(pr2) != 3 {
			t.Errorf("%d runs of PR 2, want 3", len(pr2))
		}
		counts, _ := b.store.CountByVerdict(b.ctx)
		if counts[gate.Fail] != 3 || counts[gate.Pass] != 4 {
			t.Errorf("counts %v", counts)
		}
	})
}

func TestDeliveriesAreDeduplicated(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		d := Delivery{GUID: "72d3162e-cc78-11e3-81ab-4c9367dc0958", Event: "pull_request", Action: "opened", Outcome: "received"}
		for i, want := range []bool{true, false, false} {
			var got bool
			err := b.store.Tx(b.ctx, func(tx *sql.Tx) error {
				var err error
				got, err = b.store.RecordDelivery(b.ctx, tx, d)
				return err
			})
			if err != nil || got != want {
				t.Fatalf("delivery %d: new=%v err=%v", i, got, err)
			}
		}
		if n, _ := b.store.CountDeliveries(b.ctx); n != 1 {
			t.Errorf("%d deliveries stored", n)
		}
	})
}

func TestUniqueAttemptPerHead(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		if _, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "abc")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "abc")); err == nil {
			t.Fatal("two runs of the same head and attempt")
		}
		r := newRun("acme/api", 1, "abc")
		r.Attempt = 1
		if _, err := b.store.CreateRun(b.ctx, nil, r); err != nil {
			t.Fatal(err)
		}
		latest, err := b.store.LatestAttempt(b.ctx, nil, "acme/api", "abc")
		if err != nil || latest.Attempt != 1 {
			t.Fatalf("latest %+v %v", latest, err)
		}
	})
}

func TestOpenRejectsBadURLs(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"mysql://x", "", "sqlite:", "postgres://user:pw@127.0.0.1/db"} {
		if _, err := Open(context.Background(), u, nil); err == nil {
			t.Errorf("%q opened", u)
		} else if u == "postgres://user:pw@127.0.0.1/db" && strings.Contains(err.Error(), "pw") {
			t.Errorf("password in error: %v", err)
		}
	}
}
