package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/storage"
)

// rerequest re-runs the gate of a head commit ("Re-run" on GitHub). The
// event names the commit; its pull request (for the base, whose config
// gates it, and for a fork's approval) is the one the event lists, else the
// stored one whose head it is, else the one it was gated for before. A
// commit of no known pull request is refused: gating it with defaults could
// be looser than its base's config.
func (s *Server) rerequest(ctx context.Context, tx *sql.Tx, guid, trigger string, e *event,
	head string, prs []pullRequest) (string, int64, []followup, error) {
	repo := e.repo()
	run := gate.Run{Repository: repo.FullName, HeadSHA: head, CloneURL: repo.CloneURL,
		Private: repo.private(), InstallationID: e.installationID(), Trigger: trigger, DeliveryID: guid}
	prev, err := s.store.LatestAttempt(ctx, tx, run.Repository, head)
	switch {
	case err == nil:
		run.RerunOf = prev.ID
	case !errors.Is(err, storage.ErrNotFound):
		return "", 0, nil, err
	}
	pull, err := s.pullOf(ctx, tx, repo.FullName, head, prs, prev.PR)
	if errors.Is(err, storage.ErrNotFound) {
		text := fmt.Sprintf("memgate was asked to re-run its gate of %s, but knows no pull request whose head it is, "+
			"so it cannot tell which base's %s should gate it. Push to the pull request, or close and reopen it, to gate it again.",
			gate.ShortSHA(head), ".memgate.yml")
		s.log.Warn("re-run of a commit of no known pull request refused", "repository", repo.FullName, "head", gate.ShortSHA(head))
		ask := func(ctx context.Context) error {
			return s.reporter.ActionRequired(ctx, run, "No pull request known for this commit", text)
		}
		return outcomeNoPull, 0, []followup{ask}, nil
	}
	if err != nil {
		return "", 0, nil, err
	}
	run.PR, run.BaseSHA, run.BaseRef, run.HeadRef = pull.Number, pull.BaseSHA, pull.BaseRef, pull.HeadRef
	if run.BaseSHA == "" && prev.PR == run.PR {
		// Stored before memgate kept the base: the one it was gated with.
		run.BaseSHA, run.BaseRef = prev.BaseSHA, prev.BaseRef
	}
	if ask, err := s.approvalNeeded(ctx, tx, run, pull.HeadRepo != repo.FullName); err != nil || ask != nil {
		return outcomeApproval, 0, []followup{ask}, err
	}
	return s.enqueue(ctx, tx, run, true)
}

// pullOf finds the pull request of a re-run's head: the first one the event
// lists (as stored, else as the event shows it), else the stored one whose
// head it is, else the stored one it was last gated for (prevPR, 0 for
// none). A pull request whose head repository is not known counts as a
// fork's.
func (s *Server) pullOf(ctx context.Context, tx *sql.Tx, repo, head string, listed []pullRequest, prevPR int) (storage.PullRequest, error) {
	if len(listed) > 0 {
		p := listed[0]
		stored, err := s.store.GetPullRequest(ctx, tx, repo, p.Number)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return stored, err
		}
		if err != nil {
			stored = storage.PullRequest{Repository: repo, Number: p.Number, HeadRef: p.Head.Ref, BaseRef: p.Base.Ref}
			if p.sameRepoIDs() {
				stored.HeadRepo = repo
			}
		}
		if p.Base.SHA != "" {
			stored.BaseSHA, stored.BaseRef = p.Base.SHA, p.Base.Ref
		}
		return stored, nil
	}
	pull, err := s.store.PullRequestByHead(ctx, tx, repo, head)
	if errors.Is(err, storage.ErrNotFound) && prevPR != 0 {
		return s.store.GetPullRequest(ctx, tx, repo, prevPR)
	}
	return pull, err
}
