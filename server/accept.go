package server

import (
	"context"
	"database/sql"
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
// commit of one pull request gated against one base commit: a new push, or
// a base that moved (the base branch edited, main moved and the run re-run),
// is gated, and must be accepted, anew.
//
// The click is decided before its delivery's transaction (asking GitHub
// inside it would hold the database), and recorded with the delivery in
// it: the acceptance, or the refusal as the delivery's outcome, and the
// reason in the delivery's answer and the log. A refusal is recorded
// nowhere else. The check run is completed as accepted once the
// transaction committed.

// Delivery outcomes of an Accept.
const (
	outcomeAccepted      = "accepted"
	outcomeAcceptRefused = "accept_refused"
)

// permissionTimeout bounds the question to GitHub, well within the 10 s
// GitHub waits for a delivery's answer.
const permissionTimeout = 6 * time.Second

// acceptDecision is what an Accept click comes to.
type acceptDecision struct {
	run        gate.Run // the clicked run
	checkRunID int64    // the clicked check run
	by         string
	// refused says why not (wrapping errRefused); nil: accepted.
	refused error
}

// errRefused is an Accept refused; its text says why.
var errRefused = errors.New("accept refused")

// prepare does what a delivery needs done before its transaction: an
// Accept click's decision. It returns only errors that keep the delivery
// from being recorded (the database is down).
func (s *Server) prepare(ctx context.Context, d *inbound) error {
	e := d.parsed
	if d.event != "check_run" || e.Action != "requested_action" || e.CheckRun.Name != checks.Name ||
		e.RequestedAction == nil || e.RequestedAction.Identifier != checks.AcceptAction {
		return nil
	}
	dec, err := s.decideAccept(ctx, e)
	if err != nil {
		return err
	}
	d.accept = dec
	if dec.refused != nil {
		d.reason = dec.refused.Error()
	}
	return nil
}

// decideAccept checks an Accept click: the check run must be one of
// memgate's runs of the repository and head the event names, a pull
// request's failure against its base, whose head is still the pull
// request's, and the sender must have write permission.
func (s *Server) decideAccept(ctx context.Context, e *event) (*acceptDecision, error) {
	dec := &acceptDecision{checkRunID: e.CheckRun.ID}
	if e.Sender != nil {
		dec.by = e.Sender.Login
	}
	refuse := func(format string, args ...any) (*acceptDecision, error) {
		dec.refused = fmt.Errorf("%w: "+format, append([]any{errRefused}, args...)...)
		return dec, nil
	}
	if dec.by == "" {
		return refuse("the event names nobody who clicked")
	}
	repo, head := e.repo().FullName, e.CheckRun.HeadSHA
	// The check run's external id is the run id memgate gave it.
	runID, _ := strconv.ParseInt(e.CheckRun.ExternalID, 10, 64)
	run, err := s.store.Run(ctx, runID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && (run.Repository != repo || run.HeadSHA != head)) {
		return refuse("check run %d is not one of memgate's runs of %s@%s", e.CheckRun.ID, repo, gate.ShortSHA(head))
	}
	if err != nil {
		return nil, err
	}
	dec.run = run
	cmp, err := s.store.Comparison(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	if run.PR == 0 || cmp == nil || run.Status != gate.RunCompleted || run.Verdict != gate.Fail {
		return refuse("run %d is not a pull request's failure against its base: there is nothing to accept", run.ID)
	}
	pull, err := s.store.GetPullRequest(ctx, nil, run.Repository, run.PR)
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	if pull.HeadSHA != "" && pull.HeadSHA != run.HeadSHA {
		return refuse("%s is no longer the head of #%d (%s was pushed since): accept the new commit's run", gate.ShortSHA(run.HeadSHA),
			run.PR, gate.ShortSHA(pull.HeadSHA))
	}
	pctx, cancel := context.WithTimeout(ctx, permissionTimeout)
	defer cancel()
	perm, err := s.reporter.Permission(pctx, run.Repository, dec.by, run.InstallationID)
	if err != nil {
		return refuse("could not ask GitHub for @%s's permission on %s (%v): click Accept again", dec.by, run.Repository, err)
	}
	if !checks.MayAccept(perm) {
		return refuse("@%s has %q permission on %s; accepting a change needs write", dec.by, perm, run.Repository)
	}
	return dec, nil
}

// recordAccept records an Accept's decision in the delivery's transaction:
// the acceptance, and the check run completed as accepted once committed.
func (s *Server) recordAccept(ctx context.Context, tx *sql.Tx, dec *acceptDecision) (string, int64, []followup, error) {
	run := dec.run
	if dec.refused != nil {
		s.log.Info("Accept refused", "run", run.ID, "by", dec.by, "why", dec.refused)
		return outcomeAcceptRefused, run.ID, nil, nil
	}
	if _, err := s.store.Accept(ctx, tx, storage.Acceptance{Repository: run.Repository, PR: run.PR, HeadSHA: run.HeadSHA, BaseSHA: run.BaseSHA,
		RunID: run.ID, By: dec.by, At: time.Now()}); err != nil {
		return "", 0, nil, err
	}
	s.log.Info("change accepted", "repository", run.Repository, "pr", run.PR, "head", gate.ShortSHA(run.HeadSHA), "by", dec.by)
	post := func(ctx context.Context) error {
		full, err := s.store.RunWithReport(ctx, run.ID)
		if err != nil {
			return err
		}
		full.CheckRunID = dec.checkRunID
		return checks.PostCompleted(ctx, s.store, s.reporter, full, full.Report)
	}
	return outcomeAccepted, run.ID, []followup{post}, nil
}

// repeatable reports whether a delivery's body may come again under a new
// delivery id and be handled again. An Accept click is: a click repeated
// on the same check run by the same user has the very same body (a click
// refused while GitHub could not be asked must be able to try again), and
// handling it again decides it afresh (the sender's permission and the
// pull request's head as they are then), which can do no more than the
// sender may do on that very run. Other bodies are refused as replays.
func (e *event) repeatable(name string) bool {
	return name == "check_run" && e.Action == "requested_action"
}
