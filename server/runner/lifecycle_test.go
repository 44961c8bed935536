package runner

import (
	"context"
	"database/sql"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/server/queue"
)

// finalReports is a Reporter that keeps the final reports it was given.
type finalReports struct {
	recordingReporter
	mu      sync.Mutex
	reports []*gate.Report
}

func (f *finalReports) Completed(ctx context.Context, run gate.Run, rep *gate.Report) error {
	f.mu.Lock()
	f.reports = append(f.reports, rep)
	f.mu.Unlock()
	return f.recordingReporter.Completed(ctx, run, rep)
}

func (f *finalReports) Cancelled(context.Context, gate.Run, string) error { return nil }

// hangs is a gate that hangs until it is stopped, as a service that never
// answers its last request would keep it.
func hangs(ctx context.Context, opts pipeline.Options) pipeline.Result {
	<-ctx.Done()
	return pipeline.Result{Report: &gate.Report{Verdict: gate.Error, Reason: "read heap: " + ctx.Err().Error()}}
}

// gateRun stores a run of a real repository whose base commit holds
// memgateYML, ready for job 9, and a runner whose gate is g.
func gateRun(t *testing.T, memgateYML string, g func(context.Context, pipeline.Options) pipeline.Result) (*Runner, *finalReports, int64, func() []config.Config) {
	t.Helper()
	dir, sha := testgit.Repo(t, map[string]string{".memgate.yml": memgateYML, "go.mod": "module x\n"})
	st := migratedStore(t)
	id, err := st.CreateRun(context.Background(), nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: sha, BaseSHA: sha,
		CloneURL: dir, Trigger: "t", JobID: 9})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []config.Config
	rep := &finalReports{}
	r := New(st, rep, Options{AllowLocalRepos: true, GitEnv: []string{"PATH=" + os.Getenv("PATH")}, WorkDir: t.TempDir(),
		JobTimeout: 30 * time.Minute, Defaults: config.Default(),
		Gate: func(ctx context.Context, opts pipeline.Options) pipeline.Result {
			mu.Lock()
			seen = append(seen, opts.Config)
			mu.Unlock()
			return g(ctx, opts)
		}})
	return r, rep, id, func() []config.Config { mu.Lock(); defer mu.Unlock(); return append([]config.Config(nil), seen...) }
}

// Item 6: a gate stopped by the job timeout used to return the error to
// the queue, which tried again, hit the same timeout and gave up with the
// run still running. It now completes as an error that says so.
func TestGateStoppedByTheJobTimeoutCompletesAsAnError(t *testing.T) {
	r, rep, id, seen := gateRun(t, "load:\n  duration: 5s\n", hangs)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	if err := r.Execute(ctx, id, 9, false); err != nil {
		t.Fatalf("execute returned %v: the queue would try again", err)
	}
	run, _ := r.store.Run(context.Background(), id)
	if run.Status != gate.RunCompleted || run.Verdict != gate.Error ||
		!strings.Contains(run.Reason, "did not finish within the job timeout of 30m0s") || !strings.Contains(run.Reason, "deadline exceeded") {
		t.Fatalf("run after the job timeout: %s %s %q", run.Status, run.Verdict, run.Reason)
	}
	if len(seen()) != 1 || len(rep.reports) != 1 || rep.reports[0].Reason != run.Reason {
		t.Fatalf("gates %d, reports %+v", len(seen()), rep.reports)
	}
}

// Item 6: a config whose gate cannot end within the job timeout is a
// config error naming the key; the gate does not start.
func TestConfigLongerThanTheJobTimeoutIsRefused(t *testing.T) {
	r, rep, id, seen := gateRun(t, "load:\n  warmup: 10s\n  duration: 2h\n", hangs)
	if err := r.Execute(context.Background(), id, 9, true); err != nil {
		t.Fatal(err)
	}
	run, _ := r.store.Run(context.Background(), id)
	if run.Verdict != gate.Error || !strings.Contains(run.Reason, "line 3: load.duration: the gate could take 4h8m5s") ||
		!strings.Contains(run.Reason, "more than the 30m0s") {
		t.Fatalf("run: %s %q", run.Verdict, run.Reason)
	}
	if len(seen()) != 0 || len(rep.reports) != 1 {
		t.Fatalf("the gate ran %d times; reports %d", len(seen()), len(rep.reports))
	}
}

// statusesOnly reports like commit statuses: no check run ids.
type statusesOnly struct{ finalReports }

func (s *statusesOnly) Started(ctx context.Context, run gate.Run) (int64, error) {
	s.recordingReporter.Started(ctx, run)
	return 0, nil
}

// A reporter without check run ids (commit statuses) still gets every
// verdict: the worker does not wait for an id that never comes.
func TestVerdictReachesAReporterWithoutCheckRunIDs(t *testing.T) {
	r, _, id, _ := gateRun(t, "load:\n  duration: 5s\n", func(context.Context, pipeline.Options) pipeline.Result {
		return pipeline.Result{Report: &gate.Report{Verdict: gate.Pass, Reason: "fine"}}
	})
	rep := &statusesOnly{}
	r.reporter = rep
	if err := r.Execute(context.Background(), id, 9, true); err != nil {
		t.Fatal(err)
	}
	if len(rep.reports) != 1 || rep.reports[0].Verdict != gate.Pass {
		t.Fatalf("calls %v, reports %+v", rep.calls, rep.reports)
	}
}

// Item 6: runs whose job will never run them end as errors that say why,
// with their check completed; a run whose job waits is left alone.
func TestSweeperEndsRunsWhoseJobWillNeverRunThem(t *testing.T) {
	ctx := context.Background()
	st, q := queuedStore(t)
	mk := func(sha string) (int64, int64) {
		id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: sha, CloneURL: "https://x/y.git", Trigger: "t"})
		if err != nil {
			t.Fatal(err)
		}
		var jobID int64
		err = st.Tx(ctx, func(tx *sql.Tx) (err error) {
			jobID, _, err = q.EnqueueTx(ctx, tx, queue.GateArgs{RunID: id, Repository: "acme/api", PR: 1, HeadSHA: sha})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		st.SetJob(ctx, nil, id, jobID)
		claim, _, _ := st.ClaimCheckRun(ctx, id)
		st.SetCheckRun(ctx, id, claim, 500+id)
		return id, jobID
	}
	waiting, _ := mk("a")
	cancelled, cancelledJob := mk("b")
	gone, _ := mk("c")
	if err := st.Tx(ctx, func(tx *sql.Tx) error { return q.CancelTx(ctx, tx, cancelledJob) }); err != nil {
		t.Fatal(err)
	}
	st.DB().ExecContext(ctx, `UPDATE runs SET job_id = 424242 WHERE id = ?`, gone)

	rep := &fakeFinal{}
	n, err := NewSweeper(st, q, rep, time.Minute, 30*time.Minute, "test", nil).Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("swept %d (%v), want 2", n, err)
	}
	for id, want := range map[int64]string{cancelled: "cancelled in the queue", gone: "no longer in the queue"} {
		run, _ := st.Run(ctx, id)
		if run.Status != gate.RunCompleted || run.Verdict != gate.Error || !strings.Contains(run.Reason, want) {
			t.Errorf("run %d: %s %s %q, want an error saying %q", id, run.Status, run.Verdict, run.Reason, want)
		}
	}
	if len(rep.completed) != 2 {
		t.Errorf("checks completed for runs %v, want 2", rep.completed)
	}
	if run, _ := st.Run(ctx, waiting); run.Status != gate.RunQueued {
		t.Errorf("the run whose job waits was touched: %+v", run)
	}
}

// A running run whose worker is silent because its job failed and waits to
// be tried again is not rescued: its job runs it again. Rescuing it too
// handed the run to a new job at every retry, so the queue never gave up
// on a gate that fails every time.
func TestReaperLeavesARunWhoseJobWillBeRetried(t *testing.T) {
	ctx := context.Background()
	st, q := queuedStore(t)
	id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: "abc", CloneURL: "https://x/y.git", Trigger: "t"})
	if err != nil {
		t.Fatal(err)
	}
	err = st.Tx(ctx, func(tx *sql.Tx) error {
		jobID, _, err := q.EnqueueTx(ctx, tx, queue.GateArgs{RunID: id, Repository: "acme/api", PR: 1, HeadSHA: "abc"})
		if err != nil {
			return err
		}
		return st.SetJob(ctx, tx, id, jobID)
	})
	if err != nil {
		t.Fatal(err)
	}
	// Its first attempt started two minutes ago and failed; the job waits.
	st.MarkRunning(ctx, id, time.Now().Add(-2*time.Minute))
	if n, err := NewReaper(st, q, time.Minute, nil).Reap(ctx); err != nil || n != 0 {
		t.Fatalf("reaped %d (%v), want 0", n, err)
	}
	if run, _ := st.Run(ctx, id); run.Status != gate.RunRunning {
		t.Fatalf("run %+v", run)
	}
}

// Item 7: a run that ended while its check run was being created is left
// to that check run's creator, which posts the final state once it has the
// id; only when the creator must have died (its claim older than any
// creator lives) does the reconciler post on a check run of its own.
func TestReconcilerLeavesACheckRunBeingCreatedToItsCreator(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t)
	mk := func(sha string, claimedAgo time.Duration) int64 {
		id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: sha, CloneURL: "https://x/y.git", Trigger: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, err := st.ClaimCheckRun(ctx, id); !ok || err != nil {
			t.Fatalf("claim: %v %v", ok, err)
		}
		st.Complete(ctx, id, 0, &gate.Report{Verdict: gate.Pass}, nil)
		old := time.Now().Add(-time.Minute).UnixMilli()
		st.DB().ExecContext(ctx, `UPDATE runs SET finished_at = ?, check_claimed_at = ? WHERE id = ?`,
			old, time.Now().Add(-claimedAgo).UnixMilli(), id)
		return id
	}
	creating, dead := mk("a", time.Minute), mk("b", ClaimLifetime+time.Minute)
	f := &fakeFinal{}
	n, err := NewReconciler(st, f, 30*time.Second, nil).Reconcile(ctx)
	if err != nil || n != 1 || len(f.completed) != 1 || f.completed[0] != dead {
		t.Fatalf("reconciled %d (%v): completed %v, want only the dead creator's run %d", n, err, f.completed, dead)
	}
	var attempts int
	st.DB().QueryRowContext(ctx, `SELECT report_attempts FROM runs WHERE id = ?`, creating).Scan(&attempts)
	if run, _ := st.Run(ctx, creating); run.CheckRunID != -1 || attempts != 0 {
		t.Fatalf("the run whose check run is being created: check %d, %d report attempts", run.CheckRunID, attempts)
	}
}

// run.network: host gives a repository's service and dependencies the
// worker's network: a server refuses it unless its operator allows it
// (found by an attacker's review: on a shared server one owner's service
// could reach memgate's database, the metadata endpoint, others' gates).
func TestHostNetworkNeedsTheOperatorsLeave(t *testing.T) {
	for _, allow := range []bool{false, true} {
		r, _, id, seen := gateRun(t, "run:\n  network: host\n", func(context.Context, pipeline.Options) pipeline.Result {
			return pipeline.Result{Report: &gate.Report{Verdict: gate.Pass, Reason: "fine"}}
		})
		r.opts.AllowHostNetwork = allow
		if err := r.Execute(context.Background(), id, 9, true); err != nil {
			t.Fatal(err)
		}
		run, _ := r.store.Run(context.Background(), id)
		if allow {
			if run.Verdict != gate.Pass || len(seen()) != 1 {
				t.Fatalf("allowed: %s %q, gates %d", run.Verdict, run.Reason, len(seen()))
			}
			continue
		}
		if run.Verdict != gate.Error || !strings.Contains(run.Reason, "run.network: host would give the service and its dependencies this worker's network") ||
			!strings.Contains(run.Reason, "MEMGATE_ALLOW_HOST_NETWORK") || len(seen()) != 0 {
			t.Fatalf("refused: %s %q, gates %d", run.Verdict, run.Reason, len(seen()))
		}
	}
}

// A config that asks for more than the server's ceilings is refused
// before anything is built, naming the key and the setting.
func TestConfigOverTheServersCeilingsIsRefused(t *testing.T) {
	r, _, id, seen := gateRun(t, "run:\n  memory_limit: 64GiB\n", hangs)
	r.opts.Ceilings = config.DefaultCeilings()
	if err := r.Execute(context.Background(), id, 9, true); err != nil {
		t.Fatal(err)
	}
	run, _ := r.store.Run(context.Background(), id)
	if run.Verdict != gate.Error || !strings.Contains(run.Reason, "run.memory_limit: run.memory_limit come to 64GiB, more than this server lets a gate hold (8GiB, MEMGATE_MAX_MEMORY)") ||
		len(seen()) != 0 {
		t.Fatalf("run %s %q, gates %d", run.Verdict, run.Reason, len(seen()))
	}
}
