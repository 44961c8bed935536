package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/storage"
)

// A fork's pull request is a stranger's code: it is gated only once a
// maintainer approved its head commit (the label), whichever way the gate
// is asked for (a push, GitHub's re-runs, the API).

// approvalNeeded returns the follow-up that asks a maintainer to approve a
// fork's head commit, or nil when it may be gated: not a fork's, forks are
// allowed, or that very commit was approved.
func (s *Server) approvalNeeded(ctx context.Context, tx *sql.Tx, run gate.Run, fork bool) (followup, error) {
	if !fork || s.cfg.AllowForks {
		return nil, nil
	}
	approved, err := s.store.Approved(ctx, tx, run.Repository, run.PR, run.HeadSHA)
	if err != nil || approved {
		return nil, err
	}
	text := fmt.Sprintf("This pull request comes from a fork, so memgate will not build and run its code until a maintainer approves it: "+
		"add the label `%s` to the pull request. The approval covers this commit (%s) only; after a new push, remove and add the label again.",
		s.cfg.ApproveLabel, gate.ShortSHA(run.HeadSHA))
	return func(ctx context.Context) error { return s.reporter.NeedsApproval(ctx, run, text) }, nil
}

// apiApproval refuses an API run of a fork's head commit that no maintainer
// approved, unless the request approves it: the API token is an operator's,
// who may approve as a label would, for that commit only, and on record.
func (s *Server) apiApproval(ctx context.Context, tx *sql.Tx, run gate.Run, headRepo string, approve bool) error {
	if s.cfg.AllowForks {
		return nil
	}
	fork, err := s.forkHead(ctx, tx, run, headRepo)
	if err != nil || !fork {
		return err
	}
	approved, err := s.store.Approved(ctx, tx, run.Repository, run.PR, run.HeadSHA)
	if err != nil || approved {
		return err
	}
	if approve {
		return s.store.Approve(ctx, tx, run.Repository, run.PR, run.HeadSHA, "api")
	}
	return fmt.Errorf("%w: %s is the head of %s#%d, a fork's pull request, and no maintainer approved it: add the label %s, "+
		"or send \"approve\": true to approve this commit", errNeedsApproval, gate.ShortSHA(run.HeadSHA), run.Repository, run.PR, s.cfg.ApproveLabel)
}

// forkHead reports whether a run's head is a fork's: as GitHub said
// (headRepo), else as the stored pull request says. A pull request memgate
// knows nothing of counts as a fork's; a commit of no pull request is the
// operator's own.
func (s *Server) forkHead(ctx context.Context, tx *sql.Tx, run gate.Run, headRepo string) (bool, error) {
	if headRepo != "" {
		return headRepo != run.Repository, nil
	}
	var pull storage.PullRequest
	var err error
	if run.PR != 0 {
		pull, err = s.store.GetPullRequest(ctx, tx, run.Repository, run.PR)
	} else {
		pull, err = s.store.PullRequestByHead(ctx, tx, run.Repository, run.HeadSHA)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return run.PR != 0, nil
	}
	if err != nil {
		return false, err
	}
	return pull.HeadRepo != run.Repository, nil
}
