package runner

import (
	"context"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/queue"
)

func TestReaperHandsADeadWorkersRunToANewJob(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t)
	if err := queue.Migrate(ctx, st.DB(), false); err != nil {
		t.Fatal(err)
	}
	cfg := queue.DefaultConfig()
	cfg.Workers = 0
	q, err := queue.New(st.DB(), nil, cfg)
	if err != nil {
		t.Fatal(err)
	}
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
