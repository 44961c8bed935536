package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/google/go-github/v60/github"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/storage"
)

// Delivery outcomes, recorded per delivery and counted in metrics.
const (
	outcomeQueued     = "queued"
	outcomeDuplicate  = "duplicate"
	outcomeGated      = "already_gated"
	outcomeCancelled  = "cancelled"
	outcomeIgnored    = "ignored"
	outcomePing       = "ping"
	outcomeBadSig     = "bad_signature"
	outcomeMalformed  = "malformed"
	outcomeTooLarge   = "too_large"
	outcomeDBDown     = "unavailable"
	outcomeNoSecret   = "no_secret"
	outcomeNoDelivery = "no_delivery_id"
	outcomeApproval   = "needs_approval"
	outcomeNoPull     = "unknown_pull_request"
)

// followup is GitHub work to do once a delivery's transaction committed.
type followup func(ctx context.Context) error

func (s *Server) webhook(c *gin.Context) {
	if s.cfg.WebhookSecret == "" {
		s.metrics.delivery(outcomeNoSecret)
		c.JSON(http.StatusUnauthorized, gin.H{"error": "webhooks are refused: MEMGATE_WEBHOOK_SECRET is not set"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			s.metrics.delivery(outcomeTooLarge)
			c.JSON(http.StatusRequestEntityTooLarge, gin.H{"error": fmt.Sprintf("body over %d bytes", s.cfg.MaxBody)})
			return
		}
		c.JSON(http.StatusBadRequest, gin.H{"error": "reading body: " + err.Error()})
		return
	}
	// Constant-time HMAC-SHA256 check; a missing signature fails too.
	if err := github.ValidateSignature(c.GetHeader(github.SHA256SignatureHeader), body, []byte(s.cfg.WebhookSecret)); err != nil {
		s.metrics.delivery(outcomeBadSig)
		c.JSON(http.StatusUnauthorized, gin.H{"error": "invalid or missing X-Hub-Signature-256"})
		return
	}
	event, guid := c.GetHeader(github.EventTypeHeader), c.GetHeader(github.DeliveryIDHeader)
	if guid == "" || len(guid) > 100 {
		s.metrics.delivery(outcomeNoDelivery)
		c.JSON(http.StatusBadRequest, gin.H{"error": "missing or invalid X-GitHub-Delivery"})
		return
	}
	parsed, err := parseEvent(event, body)
	if err != nil {
		s.metrics.delivery(outcomeMalformed)
		c.JSON(http.StatusBadRequest, gin.H{"error": "malformed payload: " + err.Error()})
		return
	}

	var outcome string
	var runID int64
	var after []followup
	err = s.store.Tx(c.Request.Context(), func(tx *sql.Tx) error {
		fresh, err := s.store.RecordDelivery(c.Request.Context(), tx, storage.Delivery{
			GUID: guid, Event: event, Action: parsed.Action, Repository: parsed.repo().FullName, Outcome: "received"})
		if err != nil {
			return err
		}
		if !fresh {
			outcome = outcomeDuplicate
			return nil
		}
		outcome, runID, after, err = s.handle(c.Request.Context(), tx, guid, event, parsed)
		if err != nil {
			return err
		}
		return s.store.SetDeliveryOutcome(c.Request.Context(), tx, guid, outcome, runID)
	})
	if err != nil {
		// Nothing was written: GitHub records a failed delivery, and a
		// redelivery will be handled in full.
		s.metrics.delivery(outcomeDBDown)
		s.log.Error("delivery not recorded", "delivery", guid, "event", event, "err", err)
		c.JSON(http.StatusServiceUnavailable, gin.H{"error": "could not record the delivery; try again"})
		return
	}
	s.metrics.delivery(outcome)
	for _, f := range after {
		s.background(event+" follow-up", f)
	}
	status := http.StatusAccepted
	if event == "ping" {
		status = http.StatusOK
	}
	c.JSON(status, gin.H{"delivery": guid, "outcome": outcome, "run_id": runID})
}

// handle decides what a verified, new delivery does, inside its transaction.
func (s *Server) handle(ctx context.Context, tx *sql.Tx, guid, name string, e *event) (string, int64, []followup, error) {
	switch name {
	case "ping":
		return outcomePing, 0, nil, nil
	case "pull_request":
		return s.pullRequest(ctx, tx, guid, e)
	case "check_run":
		if e.Action != "rerequested" || e.CheckRun.Name != checks.Name {
			return outcomeIgnored, 0, nil, nil
		}
		return s.rerequest(ctx, tx, guid, "check_run.rerequested", e, e.CheckRun.HeadSHA, e.CheckRun.PullRequests)
	case "check_suite":
		if e.Action != "rerequested" {
			return outcomeIgnored, 0, nil, nil
		}
		return s.rerequest(ctx, tx, guid, "check_suite.rerequested", e, e.CheckSuite.HeadSHA, e.CheckSuite.PullRequests)
	}
	return outcomeIgnored, 0, nil, nil
}

func (s *Server) pullRequest(ctx context.Context, tx *sql.Tx, guid string, e *event) (string, int64, []followup, error) {
	pr, repo := e.PullRequest, e.repo()
	state := "open"
	if e.Action == "closed" {
		state = "closed"
	}
	headRepo := ""
	if pr.Head.Repo != nil {
		headRepo = pr.Head.Repo.FullName
	}
	if err := s.store.SetPullRequest(ctx, tx, storage.PullRequest{Repository: repo.FullName, Number: pr.Number, State: state,
		HeadSHA: pr.Head.SHA, HeadRef: pr.Head.Ref, HeadRepo: headRepo, BaseSHA: pr.Base.SHA, BaseRef: pr.Base.Ref}); err != nil {
		return "", 0, nil, err
	}
	fork := pr.fromFork(repo.FullName)
	head := pr.Head.SHA
	// A new push supersedes the older heads' gates; a new base supersedes
	// every gate, this head's too: its config came from the old base.
	keepHead, reason, regate := head, "superseded by "+gate.ShortSHA(head), false
	switch e.Action {
	case "opened", "synchronize", "reopened", "ready_for_review":
	case "edited":
		if e.Changes == nil || e.Changes.Base == nil {
			return outcomeIgnored, 0, nil, nil
		}
		keepHead, regate = "", true
		reason = fmt.Sprintf("superseded: the pull request's base changed from %s to %s", e.Changes.Base.Ref.From, pr.Base.Ref)
	case "labeled":
		// A maintainer approves a fork's head commit for gating.
		if e.Label == nil || e.Label.Name != s.cfg.ApproveLabel || !fork || s.cfg.AllowForks {
			return outcomeIgnored, 0, nil, nil
		}
		by := ""
		if e.Sender != nil {
			by = e.Sender.Login
		}
		if err := s.store.Approve(ctx, tx, repo.FullName, pr.Number, head, by); err != nil {
			return "", 0, nil, err
		}
	case "closed":
		after, n, err := s.cancelActive(ctx, tx, repo.FullName, pr.Number, "", "the pull request was closed")
		if err != nil {
			return "", 0, nil, err
		}
		if n == 0 {
			return outcomeIgnored, 0, nil, nil
		}
		return outcomeCancelled, 0, after, nil
	default:
		return outcomeIgnored, 0, nil, nil
	}
	if pr.Draft && !s.cfg.GateDrafts {
		return outcomeIgnored, 0, nil, nil
	}
	after, _, err := s.cancelActive(ctx, tx, repo.FullName, pr.Number, keepHead, reason)
	if err != nil {
		return "", 0, nil, err
	}
	// The base repository's clone URL: GitHub serves a fork's pull request
	// commits from it too, and the installation's token reaches it.
	run := gate.Run{
		Repository: repo.FullName, PR: pr.Number, HeadSHA: head, BaseSHA: pr.Base.SHA,
		HeadRef: pr.Head.Ref, BaseRef: pr.Base.Ref, CloneURL: repo.CloneURL,
		Private: repo.Private, InstallationID: e.installationID(),
		Trigger: "pull_request." + e.Action, DeliveryID: guid,
	}
	if ask, err := s.approvalNeeded(ctx, tx, run, fork); err != nil || ask != nil {
		return outcomeApproval, 0, append(after, ask), err
	}
	outcome, id, more, err := s.enqueue(ctx, tx, run, regate)
	return outcome, id, append(after, more...), err
}

// enqueue stores a run and its job in tx. A head already gated (or being
// gated) is not gated again unless rerun is set; a cancelled one is.
func (s *Server) enqueue(ctx context.Context, tx *sql.Tx, run gate.Run, rerun bool) (string, int64, []followup, error) {
	if run.HeadSHA == "" || run.Repository == "" || run.CloneURL == "" {
		return "", 0, nil, fmt.Errorf("%w: the event has no repository, clone URL or head commit", errUnprocessable)
	}
	prev, err := s.store.LatestAttempt(ctx, tx, run.Repository, run.HeadSHA)
	switch {
	case err == nil:
		if !rerun && prev.Status != gate.RunCancelled && prev.PR == run.PR && prev.BaseRef == run.BaseRef {
			return outcomeGated, prev.ID, nil, nil
		}
		run.Attempt = prev.Attempt + 1
	case !errors.Is(err, storage.ErrNotFound):
		return "", 0, nil, err
	}
	id, err := s.store.CreateRun(ctx, tx, run)
	if err != nil {
		return "", 0, nil, err
	}
	run.ID = id
	jobID, dup, err := s.queue.EnqueueTx(ctx, tx, queue.GateArgs{RunID: id, Repository: run.Repository, PR: run.PR,
		HeadSHA: run.HeadSHA, Attempt: run.Attempt})
	if err != nil {
		return "", 0, nil, err
	}
	if dup {
		return "", 0, nil, fmt.Errorf("queue already holds a gate for %s@%s attempt %d", run.Repository, gate.ShortSHA(run.HeadSHA), run.Attempt)
	}
	if err := s.store.SetJob(ctx, tx, id, jobID); err != nil {
		return "", 0, nil, err
	}
	return outcomeQueued, id, []followup{s.createCheck(run)}, nil
}

// cancelActive cancels the queued and running gates of a pull request
// (except those of keepHead) and returns the check completions to post.
func (s *Server) cancelActive(ctx context.Context, tx *sql.Tx, repo string, pr int, keepHead, reason string) ([]followup, int, error) {
	active, err := s.store.ActiveForPR(ctx, tx, repo, pr)
	if err != nil {
		return nil, 0, err
	}
	var after []followup
	n := 0
	for _, run := range active {
		if run.HeadSHA == keepHead {
			continue
		}
		ok, err := s.store.Cancel(ctx, tx, run.ID, reason)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			continue
		}
		// A queued job finds its run cancelled when it starts and skips it;
		// only a running gate needs the queue's cancel to stop at once. On
		// Postgres that cancel sends a NOTIFY, and transactions that
		// notify commit one at a time under a global lock: without it intake
		// took 1.3x the deliveries/s on both engines (docs/benchmarks.md).
		if run.Status == gate.RunRunning {
			if err := s.queue.CancelTx(ctx, tx, run.JobID); err != nil {
				return nil, 0, err
			}
		}
		n++
		run := run
		after = append(after, func(ctx context.Context) error {
			// Not when its check run is still being created: its creator
			// completes it.
			checkID, mine, err := s.store.ClaimReport(ctx, run.ID)
			if err != nil || !mine {
				return err
			}
			run.CheckRunID = checkID
			if err := s.reporter.Cancelled(ctx, run, reason); err != nil {
				return err
			}
			return s.store.MarkReported(ctx, run.ID)
		})
	}
	return after, n, nil
}
