package runner

import (
	"context"
	"github.com/memgate/memgate/storage/storagetest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/storage"
)

// migratedStore is a real SQLite store with memgate's tables, closed when
// the test ends.
func migratedStore(t *testing.T) *storage.Store {
	t.Helper()
	return migratedStoreAt(t, "sqlite:"+filepath.Join(t.TempDir(), "r.db"))
}

// eachEngine runs test on a migrated SQLite store, and on a Postgres one
// when MEMGATE_TEST_DATABASE_URL names a server (else that half skips).
func eachEngine(t *testing.T, test func(t *testing.T, st *storage.Store)) {
	t.Run("sqlite", func(t *testing.T) { test(t, migratedStore(t)) })
	t.Run("postgres", func(t *testing.T) {
		url := os.Getenv("MEMGATE_TEST_DATABASE_URL")
		if url == "" {
			t.Skip("MEMGATE_TEST_DATABASE_URL is not set: Postgres half skipped")
		}
		test(t, migratedStoreAt(t, storagetest.Database(t, url)))
	})
}

func migratedStoreAt(t *testing.T, url string) *storage.Store {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return st
}

// queuedStore is migratedStore with the queue's tables and a queue that
// runs nothing (no workers): tests look at and move its jobs themselves.
func queuedStore(t *testing.T) (*storage.Store, *queue.Queue) {
	t.Helper()
	st := migratedStore(t)
	if err := queue.Migrate(context.Background(), st.DB(), false); err != nil {
		t.Fatal(err)
	}
	cfg := queue.DefaultConfig()
	cfg.Workers = 0
	q, err := queue.New(st.DB(), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return st, q
}

// recordingReporter is a Reporter that remembers what it was asked to show.
type recordingReporter struct{ calls []string }

func (r *recordingReporter) Started(context.Context, gate.Run) (int64, error) {
	r.calls = append(r.calls, "started")
	return 1, nil
}
func (r *recordingReporter) Progress(context.Context, gate.Run, string) error {
	r.calls = append(r.calls, "progress")
	return nil
}
func (r *recordingReporter) Completed(context.Context, gate.Run, *gate.Report) error {
	r.calls = append(r.calls, "completed")
	return nil
}
func (r *recordingReporter) Compared(context.Context, gate.Run, *gate.Comparison, string) error {
	r.calls = append(r.calls, "compared")
	return nil
}
func (r *recordingReporter) Token(context.Context, int64) (string, error) { return "", nil }

// The server does not cancel the queue job of a run superseded while still
// queued (on Postgres that cancel costs every intake a global lock): the
// job starts, finds its run cancelled, and does nothing.
func TestJobOfARunCancelledWhileQueuedDoesNothing(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t)
	id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: "abc", CloneURL: "/nonexistent", Trigger: "t", JobID: 5})
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := st.Cancel(ctx, nil, id, "superseded by def"); !ok || err != nil {
		t.Fatalf("cancel: %v %v", ok, err)
	}
	rep := &recordingReporter{}
	r := New(st, rep, Options{AllowLocalRepos: true})
	if err := r.Execute(ctx, id, 5, true); err != nil {
		t.Fatalf("execute: %v", err)
	}
	if len(rep.calls) != 0 {
		t.Errorf("GitHub was told %v about a cancelled run", rep.calls)
	}
	run, _ := st.Run(ctx, id)
	if run.Status != gate.RunCancelled || run.Reason != "superseded by def" || run.Report != nil {
		t.Errorf("after the job: status %s, reason %q, report %v", run.Status, run.Reason, run.Report != nil)
	}
}

// A worker without a sandbox does not run a pull request's code: the run
// completes as an error saying why, and its check completes with it. With
// the operator's explicit acceptance (AllowUncontained) the same run is
// built.
func TestWorkerWithoutASandboxRefusesToGate(t *testing.T) {
	ctx := context.Background()
	repo := testgit.Init(t)
	head := testgit.Commit(t, repo, "head", map[string]string{"go.mod": testgit.GoMod, "main.go": "package main\n\nfunc main() { undefined() }\n"})
	st := migratedStore(t)
	noSandbox := service.Containment{Why: "user namespaces are off (user.max_user_namespaces = 0)"}
	execute := func(pr int, allow bool) gate.Run {
		t.Helper()
		id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: pr, HeadSHA: head, BaseSHA: head, CloneURL: repo, Trigger: "t", JobID: int64(pr)})
		if err != nil {
			t.Fatal(err)
		}
		rep := &recordingReporter{}
		r := New(st, rep, Options{AllowLocalRepos: true, GitEnv: []string{"PATH=" + os.Getenv("PATH")}, WorkDir: t.TempDir(),
			ToolEnv: service.ToolchainEnv(os.Getenv), Containment: noSandbox, AllowUncontained: allow})
		if err := r.Execute(ctx, id, int64(pr), true); err != nil {
			t.Fatalf("execute: %v", err)
		}
		if !containsCall(rep.calls, "completed") {
			t.Errorf("the check was not completed: %v", rep.calls)
		}
		run, _ := st.Run(ctx, id)
		return run
	}
	run := execute(1, false)
	if run.Verdict != gate.Error || !strings.Contains(run.Reason, "no sandbox") || !strings.Contains(run.Reason, "user namespaces are off") {
		t.Fatalf("status %s, verdict %s: %s", run.Status, run.Verdict, run.Reason)
	}
	// Accepted: the build ran (and failed on the code, not on containment).
	if run := execute(2, true); strings.Contains(run.Reason, "no sandbox") || !strings.Contains(run.Reason, "build failed") {
		t.Fatalf("AllowUncontained was ignored: %s", run.Reason)
	}
}
