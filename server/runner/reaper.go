package runner

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/queue"
)

// ReaperStore is what the reaper needs of storage.
type ReaperStore interface {
	Stale(ctx context.Context, cutoff time.Time) ([]gate.Run, error)
	Rescues(ctx context.Context, runID int64) (int, error)
	Rescue(ctx context.Context, tx *sql.Tx, runID, oldJobID, newJobID int64, cutoff time.Time) (bool, error)
	Tx(ctx context.Context, fn func(tx *sql.Tx) error) error
}

// Enqueuer inserts gate jobs and tells what became of them.
type Enqueuer interface {
	EnqueueTx(ctx context.Context, tx *sql.Tx, args queue.GateArgs) (jobID int64, duplicate bool, err error)
	JobLookup
}

// Reaper hands the runs of dead workers to new jobs. A running gate's
// worker heartbeats every few seconds; a run not heard from for a lease is
// given a new queue job in the same transaction that points the run at it,
// so exactly one process rescues it and only the new job can complete it.
// The old job, should its worker come back, finds the run is no longer its
// own and stops. Every process runs a reaper; they race safely.
type Reaper struct {
	store ReaperStore
	queue Enqueuer
	lease time.Duration
	every time.Duration
	log   *slog.Logger
}

// NewReaper creates a reaper for the given lease.
func NewReaper(store ReaperStore, q Enqueuer, lease time.Duration, log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reaper{store: store, queue: q, lease: lease, every: max(lease/4, time.Second), log: log}
}

// Run reaps until ctx ends.
func (r *Reaper) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		if _, err := r.Reap(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn("reaper", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Reap rescues the runs whose lease expired and returns how many it took.
func (r *Reaper) Reap(ctx context.Context) (int, error) {
	cutoff := time.Now().Add(-r.lease)
	stale, err := r.store.Stale(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	if len(stale) == 0 {
		return 0, nil
	}
	ids := make([]int64, len(stale))
	for i, run := range stale {
		ids[i] = run.JobID
	}
	jobs, err := r.queue.Jobs(ctx, ids)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, run := range stale {
		// Only a job that counts as running (its worker died holding it)
		// or that vanished needs a new one. A job waiting to be retried
		// runs the gate again itself: rescuing it too would hand the run
		// to a new job at every retry, for ever. A job that ended is the
		// sweeper's.
		if st := jobs[run.JobID].State; st != queue.JobRunning && st != queue.JobGone {
			continue
		}
		rescues, err := r.store.Rescues(ctx, run.ID)
		if err != nil {
			return n, err
		}
		errLost := errors.New("rescued elsewhere")
		err = r.store.Tx(ctx, func(tx *sql.Tx) error {
			jobID, dup, err := r.queue.EnqueueTx(ctx, tx, queue.GateArgs{RunID: run.ID, Repository: run.Repository,
				PR: run.PR, HeadSHA: run.HeadSHA, Attempt: run.Attempt, Rescue: rescues + 1})
			if err != nil {
				return err
			}
			if dup {
				return errLost
			}
			ok, err := r.store.Rescue(ctx, tx, run.ID, run.JobID, jobID, cutoff)
			if err != nil {
				return err
			}
			if !ok {
				return errLost
			}
			return nil
		})
		switch {
		case errors.Is(err, errLost):
			continue
		case err != nil:
			return n, err
		}
		n++
		r.log.Warn("rescued a gate whose worker stopped answering", "run", run.ID, "repository", run.Repository,
			"head", gate.ShortSHA(run.HeadSHA), "lease", r.lease)
	}
	return n, nil
}
