package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/storage"
)

// A failing pull request's check run offers an "Accept" button: an intended
// change (a bigger cache) is accepted for that head commit without
// loosening anyone's limits. GitHub sends the click as check_run
// requested_action with who clicked (sender), and checks nobody's rights:
// memgate asks GitHub for the sender's permission on the repository and
// accepts only for write, maintain or admin. An acceptance covers the head
// commit of one pull request: a new push is gated, and must be accepted,
// anew. A refused click is recorded nowhere but in the delivery's outcome
// and the log.

// Delivery outcomes of an Accept.
const (
	outcomeAcceptRequested = "accept_requested" // until the follow-up decides
	outcomeAccepted        = "accepted"
	outcomeAcceptRefused   = "accept_refused"
)

// acceptRequest is an Accept click, as its delivery says.
type acceptRequest struct {
	guid           string
	repository     string
	installationID int64
	runID          int64
	checkRunID     int64
	headSHA        string
	sender         string
}

// acceptRequested records an Accept click; deciding it asks GitHub, so it
// is done once the delivery is committed.
func (s *Server) acceptRequested(guid string, e *event) (string, int64, []followup, error) {
	if e.RequestedAction == nil || e.RequestedAction.Identifier != checks.AcceptAction {
		return outcomeIgnored, 0, nil, nil
	}
	req := acceptRequest{guid: guid, repository: e.repo().FullName, installationID: e.installationID(),
		checkRunID: e.CheckRun.ID, headSHA: e.CheckRun.HeadSHA}
	if e.Sender != nil {
		req.sender = e.Sender.Login
	}
	// The check run's external id is the run's, as memgate created it; one
	// that is not a run id is refused by the follow-up like an unknown run.
	req.runID, _ = strconv.ParseInt(e.CheckRun.ExternalID, 10, 64)
	return outcomeAcceptRequested, req.runID, []followup{s.accept(req)}, nil
}

// errRefused is an Accept refused; its text says why, to the log and the
// delivery's record.
var errRefused = errors.New("accept refused")

// accept decides an Accept click and records its outcome on the delivery.
func (s *Server) accept(req acceptRequest) followup {
	return func(ctx context.Context) error {
		run, err := s.acceptRun(ctx, req)
		outcome := outcomeAccepted
		switch {
		case errors.Is(err, errRefused):
			outcome = outcomeAcceptRefused
			s.log.Info("Accept refused", "delivery", req.guid, "repository", req.repository, "run", req.runID, "by", req.sender, "why", err)
		case err != nil:
			return err
		default:
			s.log.Info("change accepted", "repository", run.Repository, "pr", run.PR, "head", gate.ShortSHA(run.HeadSHA), "by", req.sender)
		}
		return s.store.SetDeliveryOutcome(ctx, nil, req.guid, outcome, req.runID)
	}
}

// acceptRun records the acceptance a click asks for and completes the
// clicked check run as accepted, or says (errRefused) why not.
func (s *Server) acceptRun(ctx context.Context, req acceptRequest) (gate.Run, error) {
	refuse := func(format string, args ...any) (gate.Run, error) {
		return gate.Run{}, fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...)
	}
	if req.sender == "" {
		return refuse("the event names nobody who clicked")
	}
	run, err := s.store.RunWithReport(ctx, req.runID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (run.Repository != req.repository || run.HeadSHA != req.headSHA)) {
		return refuse("check run %d is not one of memgate's runs of %s@%s", req.checkRunID, req.repository, gate.ShortSHA(req.headSHA))
	}
	if err != nil {
		return gate.Run{}, err
	}
	cmp, err := s.store.Comparison(ctx, run.ID)
	if err != nil {
		return gate.Run{}, err
	}
	if run.PR == 0 || cmp == nil || run.Status != gate.RunCompleted || run.Verdict != gate.Fail {
		return refuse("run %d is not a pull request's failure against its base: there is nothing to accept", run.ID)
	}
	pull, err := s.store.GetPullRequest(ctx, nil, run.Repository, run.PR)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return gate.Run{}, err
	}
	if pull.HeadSHA != "" && pull.HeadSHA != run.HeadSHA {
		return refuse("%s is no longer the head of #%d (%s was pushed since): accept the new commit's run", gate.ShortSHA(run.HeadSHA),
			run.PR, gate.ShortSHA(pull.HeadSHA))
	}
	perm, err := s.reporter.Permission(ctx, run.Repository, req.sender, run.InstallationID)
	if err != nil {
		return refuse("could not ask GitHub for @%s's permission on %s: %v", req.sender, run.Repository, err)
	}
	if !checks.MayAccept(perm) {
		return refuse("@%s has %q permission on %s; accepting a change needs write", req.sender, perm, run.Repository)
	}
	if _, err := s.store.Accept(ctx, storage.Acceptance{Repository: run.Repository, PR: run.PR, HeadSHA: run.HeadSHA,
		RunID: run.ID, By: req.sender, At: time.Now()}); err != nil {
		return gate.Run{}, err
	}
	run.CheckRunID = req.checkRunID
	return run, checks.PostCompleted(ctx, s.store, s.reporter, run, run.Report)
}
