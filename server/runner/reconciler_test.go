package runner

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
)

type fakeFinal struct {
	fail      bool
	completed []int64
	cancelled []int64
}

func (f *fakeFinal) Completed(_ context.Context, run gate.Run, rep *gate.Report) error {
	if f.fail {
		return errors.New("GitHub is down")
	}
	if rep == nil || rep.Verdict != run.Verdict {
		return errors.New("no report")
	}
	f.completed = append(f.completed, run.ID)
	return nil
}

func (f *fakeFinal) Compared(_ context.Context, run gate.Run, _ *gate.Comparison, _ string) error {
	if f.fail {
		return errors.New("GitHub is down")
	}
	f.completed = append(f.completed, run.ID)
	return nil
}

func (f *fakeFinal) Cancelled(_ context.Context, run gate.Run, _ string) error {
	if f.fail {
		return errors.New("GitHub is down")
	}
	f.cancelled = append(f.cancelled, run.ID)
	return nil
}

func TestReconcilerPostsWhatNeverReachedGitHub(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t)
	mk := func(sha string) int64 {
		id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: 1, HeadSHA: sha, CloneURL: "https://x/y.git", Trigger: "t"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	done, cancelled, reported, fresh := mk("a"), mk("b"), mk("c"), mk("d")
	st.Complete(ctx, done, 0, &gate.Report{Verdict: gate.Fail, Reason: "leak"}, nil)
	st.Cancel(ctx, nil, cancelled, "superseded")
	st.Complete(ctx, reported, 0, &gate.Report{Verdict: gate.Pass}, nil)
	st.MarkReported(ctx, reported)
	st.Complete(ctx, fresh, 0, &gate.Report{Verdict: gate.Pass}, nil)
	old := time.Now().Add(-time.Minute).UnixMilli()
	st.DB().ExecContext(ctx, `UPDATE runs SET finished_at = ? WHERE id IN (?, ?, ?)`, old, done, cancelled, reported)

	f := &fakeFinal{fail: true}
	r := NewReconciler(st, f, 30*time.Second, nil)
	if n, err := r.Reconcile(ctx); err != nil || n != 0 {
		t.Fatalf("with GitHub down: %d %v", n, err)
	}
	f.fail = false
	n, err := r.Reconcile(ctx)
	if err != nil || n != 2 || len(f.completed) != 1 || f.completed[0] != done || len(f.cancelled) != 1 || f.cancelled[0] != cancelled {
		t.Fatalf("reconciled %d: completed %v cancelled %v err %v", n, f.completed, f.cancelled, err)
	}
	// Reported runs, and runs that just ended, are left alone.
	if n, _ := r.Reconcile(ctx); n != 0 {
		t.Fatalf("reconciled %d more", n)
	}
	// A run that can never be posted is given up after ten attempts.
	stuck := mk("e")
	st.Complete(ctx, stuck, 0, &gate.Report{Verdict: gate.Pass}, nil)
	st.DB().ExecContext(ctx, `UPDATE runs SET finished_at = ? WHERE id = ?`, old, stuck)
	f.fail = true
	for i := 0; i < 12; i++ {
		r.Reconcile(ctx)
	}
	var attempts int
	st.DB().QueryRowContext(ctx, `SELECT report_attempts FROM runs WHERE id = ?`, stuck).Scan(&attempts)
	if attempts != 10 {
		t.Errorf("%d attempts, want 10", attempts)
	}
}
