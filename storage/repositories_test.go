package storage

import (
	"context"
	"fmt"
	"github.com/memgate/memgate/storage/storagetest"
	"os"
	"path/filepath"
	"testing"

	"github.com/memgate/memgate/gate"
)

// Lists are scoped in the query: the zero Scope lists public repositories
// only, a run of a repository memgate never heard of is private, and pages
// and cursors count only what the scope may see.
func TestScopeFiltersListsInTheQuery(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		st, ctx := b.store, b.ctx
		if err := st.SetVisibility(ctx, nil, "acme/open", false); err != nil {
			t.Fatal(err)
		}
		if err := st.SetVisibility(ctx, nil, "acme/secret", true); err != nil {
			t.Fatal(err)
		}
		// Interleaved: open, secret, unknown, open, secret, unknown, ...
		var open []int64
		for i := 0; i < 9; i++ {
			repo := []string{"acme/open", "acme/secret", "acme/unheard-of"}[i%3]
			id, err := st.CreateRun(ctx, nil, newRun(repo, i+1, fmt.Sprintf("%040x", i)))
			if err != nil {
				t.Fatal(err)
			}
			if repo == "acme/open" {
				open = append(open, id)
			}
		}
		if private, known, _ := st.Visibility(ctx, nil, "acme/unheard-of"); !private || !known {
			t.Errorf("a run's unknown repository is recorded private=%v known=%v, want private", private, known)
		}
		// Page through the public runs two at a time: 2, then 1, and done.
		var seen []int64
		cursor := int64(0)
		for page := 0; page < 5; page++ {
			runs, next, err := st.ListRuns(ctx, Filter{Limit: 2, Before: cursor})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range runs {
				if r.Repository != "acme/open" {
					t.Fatalf("the zero scope lists %s", r.Repository)
				}
				seen = append(seen, r.ID)
			}
			if next == 0 {
				break
			}
			cursor = next
		}
		if len(seen) != len(open) || seen[0] != open[2] || seen[2] != open[0] {
			t.Errorf("public pages gave %v, want %v newest first", seen, open)
		}
		count := func(sc Scope, f Filter) int {
			f.Scope, f.Limit = sc, 100
			runs, _, err := st.ListRuns(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			return len(runs)
		}
		for name, tc := range map[string]struct {
			sc   Scope
			f    Filter
			want int
		}{
			"granted":             {Scope{Private: []string{"acme/secret"}}, Filter{}, 6},
			"all":                 {Scope{All: true}, Filter{}, 9},
			"filtered, no access": {Scope{}, Filter{Repository: "acme/secret"}, 0},
			"filtered, granted":   {Scope{Private: []string{"acme/secret"}}, Filter{Repository: "acme/secret"}, 3},
			"verdict and scope":   {Scope{Private: []string{"acme/secret"}}, Filter{Status: gate.RunQueued}, 6},
		} {
			if got := count(tc.sc, tc.f); got != tc.want {
				t.Errorf("%s: %d runs, want %d", name, got, tc.want)
			}
		}
		private, err := st.PrivateRepositories(ctx)
		if err != nil || fmt.Sprint(private) != "[acme/secret acme/unheard-of]" {
			t.Errorf("private repositories %v (%v)", private, err)
		}
		// The latest word wins: publicized, then privatized.
		st.SetVisibility(ctx, nil, "acme/secret", false)
		if n := count(Scope{}, Filter{}); n != 6 {
			t.Errorf("after publicizing: %d runs", n)
		}
		st.SetVisibility(ctx, nil, "acme/secret", true)
		if n := count(Scope{}, Filter{}); n != 3 {
			t.Errorf("after privatizing: %d runs", n)
		}
	})
}

// Upgrading a database gated before visibility was recorded: a repository
// is private if any of its runs said so, else public.
func TestMigrationRecordsExistingRepositories(t *testing.T) {
	url := "sqlite:" + filepath.Join(t.TempDir(), "old.db")
	if base := os.Getenv("MEMGATE_TEST_DATABASE_URL"); base != "" {
		url = storagetest.Database(t, base)
	}
	ctx := context.Background()
	st, err := Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	p, err := st.migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.UpTo(ctx, 5); err != nil {
		t.Fatal(err)
	}
	for i, r := range []struct {
		repo    string
		private int
	}{{"acme/open", 0}, {"acme/secret", 1}, {"acme/was-private", 1}, {"acme/was-private", 0}} {
		if _, err := st.q(nil).ExecContext(ctx, `INSERT INTO runs (repository, pr_number, head_sha, clone_url, private, trigger, status, created_at)
			VALUES (?, 1, ?, 'x', ?, 't', 'queued', 1)`, r.repo, fmt.Sprintf("%040x", i), r.private); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	for repo, want := range map[string]bool{"acme/open": false, "acme/secret": true, "acme/was-private": true} {
		if private, known, err := st.Visibility(ctx, nil, repo); private != want || !known || err != nil {
			t.Errorf("%s: private=%v known=%v (%v), want private=%v", repo, private, known, err, want)
		}
	}
}
