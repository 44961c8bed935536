package server

import (
	"context"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/checks"
)

// createCheck is the follow-up that shows a queued run on GitHub. One check
// run per run: whoever claims it first (this, or a worker that already
// started) creates it, and nobody else makes another however slow GitHub
// is. A run that ended while its check run was being created found none to
// complete, so its final state is posted here.
func (s *Server) createCheck(run gate.Run) followup {
	return func(ctx context.Context) error {
		claim, ok, err := s.store.ClaimCheckRun(ctx, run.ID)
		if err != nil || !ok {
			return err
		}
		checkID, err := s.reporter.Queued(ctx, run)
		if err != nil {
			// Released even when ctx ended (memgate is stopping): a claim
			// left behind would keep the worker from making the check run.
			rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			if rerr := s.store.ReleaseCheckRun(rctx, run.ID, claim); rerr != nil {
				s.log.Warn("could not release a check run claim", "run", run.ID, "err", rerr)
			}
			return err
		}
		stored, err := s.store.SetCheckRun(ctx, run.ID, claim, checkID)
		if err != nil {
			return err
		}
		if stored {
			// If the run ended meanwhile, whoever ended it found its check
			// run still being made and left the report to this.
			_, mine, err := s.store.ClaimReport(ctx, run.ID)
			if err != nil || !mine {
				return err
			}
		}
		// Not stored: the claim was given up as stale (only for ended
		// runs), another check run carries the final state, and this one
		// is known to nobody else: it gets the same final state.
		cur, err := s.store.RunWithReport(ctx, run.ID)
		if err != nil {
			return err
		}
		cur.CheckRunID = checkID
		return s.postFinal(ctx, cur, stored)
	}
}

// postFinal completes a check run with an ended run's final state, and
// records that it was reported when it is the run's own check run.
func (s *Server) postFinal(ctx context.Context, run gate.Run, own bool) error {
	var err error
	if run.Status == gate.RunCancelled {
		err = s.reporter.Cancelled(ctx, run, run.Reason)
	} else {
		rep := run.Report
		if rep == nil {
			rep = &gate.Report{Verdict: run.Verdict, Reason: run.Reason}
		}
		err = checks.PostCompleted(ctx, s.store, s.reporter, run, rep)
	}
	if err != nil || !own {
		return err
	}
	return s.store.MarkReported(ctx, run.ID)
}
