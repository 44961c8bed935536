package runner

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/queue"
)

// SweeperStore is what the sweeper needs of storage.
type SweeperStore interface {
	Active(ctx context.Context) ([]gate.Run, error)
	Stale(ctx context.Context, cutoff time.Time) ([]gate.Run, error)
	Complete(ctx context.Context, id, jobID int64, rep *gate.Report, profiles map[string][]byte) (bool, error)
	Run(ctx context.Context, id int64) (gate.Run, error)
	ClaimReport(ctx context.Context, id int64) (checkRunID int64, ok bool, err error)
	MarkReported(ctx context.Context, id int64) error
}

// JobLookup tells what became of queue jobs.
type JobLookup interface {
	Jobs(ctx context.Context, ids []int64) (map[int64]queue.Job, error)
}

// Sweeper ends the runs nobody will end: a queued or running run whose job
// the queue gave up on (it failed, or panicked, on every attempt), or that
// was cancelled, completed without storing a result, or deleted; and a run
// whose worker went silent after the job timeout while its job still
// counts as running. Each completes as an error whose reason says what
// happened, and its check run is completed, so no check waits for ever.
type Sweeper struct {
	store      SweeperStore
	jobs       JobLookup
	reporter   FinalReporter
	lease      time.Duration
	jobTimeout time.Duration
	every      time.Duration
	version    string
	log        *slog.Logger
}

// NewSweeper creates a sweeper for the queue's job timeout and the
// workers' lease; it looks every lease/4 (at least every second).
func NewSweeper(store SweeperStore, jobs JobLookup, reporter FinalReporter, lease, jobTimeout time.Duration, version string, log *slog.Logger) *Sweeper {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Sweeper{store: store, jobs: jobs, reporter: reporter, lease: lease, jobTimeout: jobTimeout,
		every: max(lease/4, time.Second), version: version, log: log}
}

// Run sweeps until ctx ends.
func (s *Sweeper) Run(ctx context.Context) {
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("sweeper", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Sweep ends the runs nobody will end and returns how many it ended.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	active, err := s.store.Active(ctx)
	if err != nil {
		return 0, err
	}
	// Runs whose worker has been silent since before the job timeout
	// could have stopped their gate.
	silent := map[int64]bool{}
	stale, err := s.store.Stale(ctx, time.Now().Add(-s.lease))
	if err != nil {
		return 0, err
	}
	for _, r := range stale {
		if r.StartedAt.Before(time.Now().Add(-s.jobTimeout - s.lease)) {
			silent[r.ID] = true
		}
	}
	var ids []int64
	for _, r := range active {
		if r.JobID != 0 {
			ids = append(ids, r.JobID)
		}
	}
	if len(ids) == 0 {
		return 0, nil
	}
	jobs, err := s.jobs.Jobs(ctx, ids)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range active {
		job, ok := jobs[r.JobID]
		if !ok {
			continue
		}
		reason := orphanReason(job, silent[r.ID], s.jobTimeout)
		if reason == "" {
			continue
		}
		ended, err := s.end(ctx, r, reason)
		if err != nil {
			return n, err
		}
		if ended {
			n++
		}
	}
	return n, nil
}

// orphanReason says why nobody will end a run whose job is job, or "" when
// its job will.
func orphanReason(job queue.Job, silent bool, jobTimeout time.Duration) string {
	switch {
	case job.State == queue.JobDiscarded:
		last := ""
		if job.LastError != "" {
			last = "; the last error: " + truncateRunes(job.LastError, 500)
		}
		return fmt.Sprintf("memgate gave up on this gate: its job failed on all %d attempts%s", job.Attempts, last)
	case job.State == queue.JobCancelled:
		return "the gate's job was cancelled in the queue before the gate ended"
	case job.State == queue.JobCompleted:
		return "the gate's job ended without storing a result"
	case job.State == queue.JobGone:
		return "the gate's job is no longer in the queue"
	case job.State == queue.JobRunning && silent:
		return fmt.Sprintf("the gate's worker stopped answering and the gate is past its job timeout (%s)", jobTimeout)
	}
	return ""
}

// end completes a run as an error, if it still belongs to the job it was
// judged by, and completes its check run.
func (s *Sweeper) end(ctx context.Context, run gate.Run, reason string) (bool, error) {
	now := time.Now().UTC()
	rep := &gate.Report{Verdict: gate.Error, Reason: reason, StartedAt: now, FinishedAt: now,
		Environment: gate.Environment{MemgateVersion: s.version}}
	stored, err := s.store.Complete(ctx, run.ID, run.JobID, rep, nil)
	if err != nil || !stored {
		return false, err
	}
	s.log.Warn("ended a run nobody would end", "run", run.ID, "job", run.JobID, "reason", reason)
	checkID, mine, err := s.store.ClaimReport(ctx, run.ID)
	if err != nil || !mine {
		return true, err // its check run is being made: its creator posts the verdict
	}
	cur, err := s.store.Run(ctx, run.ID)
	if err != nil {
		return true, err
	}
	cur.CheckRunID = checkID
	if err := s.reporter.Completed(ctx, cur, rep); err != nil {
		s.log.Warn("could not post an ended run's verdict; the reconciler will retry", "run", run.ID, "err", err)
		return true, nil
	}
	return true, s.store.MarkReported(ctx, run.ID)
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
