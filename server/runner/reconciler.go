package runner

import (
	"context"
	"log/slog"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/checks"
)

// ReconcilerStore is what the reconciler needs of storage.
type ReconcilerStore interface {
	Unreported(ctx context.Context, cutoff, claimCutoff time.Time, maxAttempts, limit int) ([]gate.Run, error)
	RunWithReport(ctx context.Context, id int64) (gate.Run, error)
	MarkReported(ctx context.Context, id int64) error
	ReleaseStaleCheckClaim(ctx context.Context, id int64, cutoff time.Time) (bool, error)
	checks.Finals
}

// ClaimLifetime is how long a claim to create a check run is honoured. Its
// creator has given up long before: the call that creates the check run is
// bounded by the GitHub client's 60 s timeout, retries included, and a
// creator that fails gives its claim back. Only a creator that died holds
// one longer; then the reconciler posts the run's final state on a check
// run of its own.
const ClaimLifetime = 3 * time.Minute

// FinalReporter posts a run's final state.
type FinalReporter interface {
	Completed(ctx context.Context, run gate.Run, rep *gate.Report) error
	Compared(ctx context.Context, run gate.Run, c *gate.Comparison, acceptedBy string) error
	Cancelled(ctx context.Context, run gate.Run, reason string) error
}

// Reconciler re-posts the final state of runs whose report never reached
// GitHub (the API was down past its retries, or the process died between
// storing and reporting), so no check stays queued or in progress.
type Reconciler struct {
	store    ReconcilerStore
	reporter FinalReporter
	every    time.Duration
	log      *slog.Logger
}

// NewReconciler creates a reconciler that looks every interval.
func NewReconciler(store ReconcilerStore, reporter FinalReporter, every time.Duration, log *slog.Logger) *Reconciler {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reconciler{store: store, reporter: reporter, every: every, log: log}
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) {
	t := time.NewTicker(r.every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reconciler", "err", err)
			}
		}
	}
}

// Reconcile re-posts what it can and returns how many runs it reported.
func (r *Reconciler) Reconcile(ctx context.Context) (int, error) {
	// Give the worker or server that ended the run a moment to report.
	claimCutoff := time.Now().Add(-ClaimLifetime)
	runs, err := r.store.Unreported(ctx, time.Now().Add(-r.every), claimCutoff, 10, 50)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, run := range runs {
		if run.CheckRunID < 0 {
			// Its creator died holding the claim: post on a new check run.
			released, err := r.store.ReleaseStaleCheckClaim(ctx, run.ID, claimCutoff)
			if err != nil {
				return n, err
			}
			if !released {
				continue // its creator stored it just now, and posts it
			}
			run.CheckRunID = 0
		}
		var err error
		if run.Status == gate.RunCancelled {
			err = r.reporter.Cancelled(ctx, run, run.Reason)
		} else {
			full, ferr := r.store.RunWithReport(ctx, run.ID)
			if ferr != nil {
				return n, ferr
			}
			rep := full.Report
			if rep == nil {
				rep = &gate.Report{Verdict: full.Verdict, Reason: full.Reason}
			}
			err = checks.PostCompleted(ctx, r.store, r.reporter, full, rep)
		}
		if err != nil {
			r.log.Warn("could not post a run's final state; will try again", "run", run.ID, "err", err)
			continue
		}
		if err := r.store.MarkReported(ctx, run.ID); err != nil {
			return n, err
		}
		n++
		r.log.Info("posted a run's final state that had not reached GitHub", "run", run.ID, "status", run.Status)
	}
	return n, nil
}
