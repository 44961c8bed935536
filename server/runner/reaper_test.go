package runner

import (
	"context"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/storage"
)

func TestReaperHandsADeadWorkersRunToANewJob(t *testing.T) {
	ctx := context.Background()
	st, q := queuedStore(t)
	id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: "abc", CloneURL: "https://x/y.git", Trigger: "t", JobID: 77})
	if err != nil {
		t.Fatal(err)
	}
	// The worker started 2 minutes ago and was last heard from then.
	st.MarkRunning(ctx, id, time.Now().Add(-2*time.Minute))
	alive, _ := st.Heartbeat(ctx, id, 99)
	if alive {
		t.Fatal("a heartbeat from a job that does not own the run was taken")
	}
	st.DB().ExecContext(ctx, `UPDATE runs SET heartbeat_at = ? WHERE id = ?`, time.Now().Add(-2*time.Minute).UnixMilli(), id)

	reaper := NewReaper(st, q, time.Minute, nil)
	n, err := reaper.Reap(ctx)
	if err != nil || n != 1 {
		t.Fatalf("reaped %d, err %v", n, err)
	}
	run, _ := st.Run(ctx, id)
	if run.JobID == 77 || run.JobID == 0 || run.Status != gate.RunRunning {
		t.Fatalf("after rescue: %+v", run)
	}
	// The new job owns the run now; the old one's heartbeat is refused,
	// and it cannot complete the run.
	if mine, _ := st.Heartbeat(ctx, id, 77); mine {
		t.Error("the dead job still owns the run")
	}
	if ok, _ := st.Complete(ctx, id, 77, &gate.Report{Verdict: gate.Pass}, nil); ok {
		t.Error("the dead job completed the run")
	}
	if mine, _ := st.Heartbeat(ctx, id, run.JobID); !mine {
		t.Error("the new job does not own the run")
	}
	// A fresh heartbeat: nothing more to reap.
	if n, err := reaper.Reap(ctx); err != nil || n != 0 {
		t.Fatalf("second reap took %d (%v)", n, err)
	}
	if waiting, _, _ := q.Depth(ctx, st.DB()); waiting != 1 {
		t.Errorf("%d jobs waiting, want the rescue job", waiting)
	}
}

// finalRecorder is a FinalReporter that remembers the runs it posted.
type finalRecorder struct{ completed []gate.Run }

func (f *finalRecorder) Completed(_ context.Context, run gate.Run, rep *gate.Report) error {
	run.Report = rep
	f.completed = append(f.completed, run)
	return nil
}
func (f *finalRecorder) Compared(_ context.Context, run gate.Run, c *gate.Comparison, _ string) error {
	run.Report = c.Head.Report
	f.completed = append(f.completed, run)
	return nil
}
func (f *finalRecorder) Cancelled(context.Context, gate.Run, string) error { return nil }

// A run whose every worker dies (a service that exhausts the worker's
// memory kills each one that gates it) is rescued three times, then
// completes as an error saying why, and its check completes: no worker
// crash-loops on it. On both engines.
func TestReaperGivesUpOnARunWhoseWorkersKeepDying(t *testing.T) {
	eachEngine(t, func(t *testing.T, st *storage.Store) {
		ctx := context.Background()
		if err := queue.Migrate(ctx, st.DB(), st.Engine() == storage.Postgres); err != nil {
			t.Fatal(err)
		}
		cfg := queue.DefaultConfig()
		cfg.Workers, cfg.Postgres = 0, st.Engine() == storage.Postgres
		q, err := queue.New(st.DB(), nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: "abc", CloneURL: "https://x/y.git",
			Trigger: "t", JobID: 77})
		if err != nil {
			t.Fatal(err)
		}
		claim, _, _ := st.ClaimCheckRun(ctx, id)
		st.SetCheckRun(ctx, id, claim, 4242)
		st.MarkRunning(ctx, id, time.Now().Add(-2*time.Minute))
		// Each worker dies: the run's heartbeat is two minutes old.
		stale := `UPDATE runs SET heartbeat_at = ? WHERE id = ?`
		if st.Engine() == storage.Postgres {
			stale = `UPDATE runs SET heartbeat_at = $1 WHERE id = $2`
		}
		// A worker took the run's current job and died holding it: the
		// job counts as running in the queue (the reaper rescues only such
		// jobs, or vanished ones).
		running := `UPDATE river_job SET state = 'running' WHERE id = (SELECT job_id FROM runs WHERE id = ?)`
		if st.Engine() == storage.Postgres {
			running = `UPDATE river_job SET state = 'running' WHERE id = (SELECT job_id FROM runs WHERE id = $1)`
		}
		die := func() {
			if _, err := st.DB().ExecContext(ctx, stale, time.Now().Add(-2*time.Minute).UnixMilli(), id); err != nil {
				t.Fatal(err)
			}
			if _, err := st.DB().ExecContext(ctx, running, id); err != nil {
				t.Fatal(err)
			}
		}
		gh := &finalRecorder{}
		reaper := NewReaper(st, q, time.Minute, nil).GiveUpAfter(DefaultMaxRescues, gh)
		for i := 1; i <= DefaultMaxRescues; i++ {
			die()
			if n, err := reaper.Reap(ctx); err != nil || n != 1 {
				t.Fatalf("rescue %d: reaped %d, %v", i, n, err)
			}
			if run, _ := st.Run(ctx, id); run.Status != gate.RunRunning {
				t.Fatalf("after rescue %d: %s", i, run.Status)
			}
		}
		die()
		waiting, _, _ := q.Depth(ctx, st.DB())
		if n, err := reaper.Reap(ctx); err != nil || n != 0 {
			t.Fatalf("the fourth death: reaped %d, %v", n, err)
		}
		run, err := st.RunWithReport(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		const want = "the gate was rescued 3 times: its worker died each time — the service may exhaust the worker's memory"
		if run.Status != gate.RunCompleted || run.Verdict != gate.Error || run.Reason != want || run.Report == nil || run.Report.Reason != want {
			t.Fatalf("after giving up: status %s, verdict %s, reason %q", run.Status, run.Verdict, run.Reason)
		}
		if len(gh.completed) != 1 || gh.completed[0].ID != id || gh.completed[0].CheckRunID != 4242 || gh.completed[0].Report.Verdict != gate.Error {
			t.Fatalf("GitHub was told %+v", gh.completed)
		}
		if now, _, _ := q.Depth(ctx, st.DB()); now != waiting {
			t.Errorf("%d jobs waiting after giving up, %d before: a new rescue was queued", now, waiting)
		}
		// Reported, so the reconciler has nothing to post; nothing more to reap.
		if runs, _ := st.Unreported(ctx, time.Now().Add(time.Hour), time.Now(), 10, 10); len(runs) != 0 {
			t.Errorf("still unreported: %v", runs)
		}
		if n, err := reaper.Reap(ctx); err != nil || n != 0 {
			t.Errorf("reaped %d after giving up (%v)", n, err)
		}
	})
}
