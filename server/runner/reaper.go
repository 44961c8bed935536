package runner

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
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
	GiveUp(ctx context.Context, runID, jobID int64, cutoff time.Time, rep *gate.Report) (bool, error)
	MarkReported(ctx context.Context, id int64) error
	ClaimReport(ctx context.Context, id int64) (checkRunID int64, ok bool, err error)
	Tx(ctx context.Context, fn func(tx *sql.Tx) error) error
}

// DefaultMaxRescues is how often a run is handed to a new worker before it
// completes as an error: a service that kills every worker that gates it
// (e.g. by exhausting its memory) would otherwise crash-loop them all.
const DefaultMaxRescues = 3

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
	store      ReaperStore
	queue      Enqueuer
	lease      time.Duration
	every      time.Duration
	log        *slog.Logger
	maxRescues int
	reporter   FinalReporter // nil: the reconciler posts given-up runs
}

// NewReaper creates a reaper for the given lease, giving up on a run after
// DefaultMaxRescues rescues.
func NewReaper(store ReaperStore, q Enqueuer, lease time.Duration, log *slog.Logger) *Reaper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reaper{store: store, queue: q, lease: lease, every: max(lease/4, time.Second), log: log,
		maxRescues: DefaultMaxRescues}
}

// GiveUpAfter sets how many rescues a run gets before it completes as an
// error (0: rescued for ever), and who posts its check then; the
// reconciler posts it should that fail.
func (r *Reaper) GiveUpAfter(rescues int, rep FinalReporter) *Reaper {
	r.maxRescues, r.reporter = rescues, rep
	return r
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
		if r.maxRescues > 0 && rescues >= r.maxRescues {
			if err := r.giveUp(ctx, run, rescues, cutoff); err != nil {
				return n, err
			}
			continue
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

// giveUp completes a run whose every worker died as an error, and its
// check with it.
func (r *Reaper) giveUp(ctx context.Context, run gate.Run, rescues int, cutoff time.Time) error {
	now := time.Now().UTC()
	rep := &gate.Report{Verdict: gate.Error, StartedAt: run.StartedAt, FinishedAt: now,
		Reason: fmt.Sprintf("the gate was rescued %d times: its worker died each time — the service may exhaust the worker's memory", rescues)}
	ok, err := r.store.GiveUp(ctx, run.ID, run.JobID, cutoff, rep)
	if err != nil || !ok {
		return err // !ok: rescued elsewhere, or its worker came back
	}
	r.log.Error("gave up on a gate whose workers kept dying", "run", run.ID, "repository", run.Repository,
		"head", gate.ShortSHA(run.HeadSHA), "rescues", rescues)
	if r.reporter == nil {
		return nil
	}
	// One report per run: post it unless someone (the check run's
	// creator) claimed it first.
	checkID, mine, err := r.store.ClaimReport(ctx, run.ID)
	if err != nil || !mine {
		return err
	}
	run.CheckRunID = checkID
	run.Status, run.Verdict, run.Reason, run.FinishedAt = gate.RunCompleted, rep.Verdict, rep.Reason, now
	if err := r.reporter.Completed(ctx, run, rep); err != nil {
		r.log.Warn("could not post the given-up run; the reconciler will", "run", run.ID, "err", err)
		return nil
	}
	return r.store.MarkReported(ctx, run.ID)
}
