package server

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

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
	outcomeVisibility = "visibility"
	outcomeNoPull     = "unknown_pull_request"
)

// followup is GitHub work to do once a delivery's transaction committed.
type followup func(ctx context.Context) error

// inbound is one webhook delivery on its way in.
type inbound struct {
	guid, event string
	bodySHA256  string
	parsed      *event
	outcome     string
	runID       int64
	after       []followup
	// accept is an Accept click's decision, made before the delivery's
	// transaction (it asks GitHub); reason says why it was refused.
	accept *acceptDecision
	reason string
}

func (s *Server) webhook(c *gin.Context) {
	d, err := s.receive(c)
	if err == nil {
		err = s.prepare(c.Request.Context(), d)
	}
	if err == nil {
		err = s.intake(c.Request.Context(), d)
	}
	if err != nil {
		s.refuse(c, d, err)
		return
	}
	s.metrics.delivery(d.outcome)
	for _, f := range d.after {
		s.background(d.event+" follow-up", f)
	}
	status := http.StatusAccepted
	if d.event == "ping" {
		status = http.StatusOK
	}
	answer := gin.H{"delivery": d.guid, "outcome": d.outcome, "run_id": d.runID}
	if d.reason != "" && d.outcome != outcomeDuplicate {
		answer["reason"] = d.reason
	}
	c.JSON(status, answer)
}

// receive reads, verifies and decodes a delivery; nothing is stored yet.
func (s *Server) receive(c *gin.Context) (*inbound, error) {
	d := &inbound{event: c.GetHeader(github.EventTypeHeader), guid: c.GetHeader(github.DeliveryIDHeader)}
	if s.cfg.WebhookSecret == "" {
		return d, errNoSecret
	}
	body, err := io.ReadAll(http.MaxBytesReader(c.Writer, c.Request.Body, s.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return d, fmt.Errorf("%w: over %d bytes", errTooLarge, s.cfg.MaxBody)
		}
		return d, fmt.Errorf("%w: reading body: %v", errBadRequest, err)
	}
	// Constant-time HMAC-SHA256 check; a missing signature fails too.
	if err := github.ValidateSignature(c.GetHeader(github.SHA256SignatureHeader), body, []byte(s.cfg.WebhookSecret)); err != nil {
		return d, errBadSignature
	}
	if d.guid == "" || len(d.guid) > 100 {
		return d, errNoDelivery
	}
	if d.parsed, err = parseEvent(d.event, body); err != nil {
		return d, err
	}
	if err := s.checkAge(d.parsed, d.event, time.Now()); err != nil {
		return d, err
	}
	if !d.parsed.repeatable(d.event) {
		sum := sha256.Sum256(body)
		d.bodySHA256 = hex.EncodeToString(sum[:])
	}
	return d, nil
}

// intake records a verified delivery and what it leads to in one
// transaction: all of it, or (on an error) nothing.
func (s *Server) intake(ctx context.Context, d *inbound) error {
	return s.store.Tx(ctx, func(tx *sql.Tx) error {
		fresh, err := s.store.RecordDelivery(ctx, tx, storage.Delivery{GUID: d.guid, Event: d.event, Action: d.parsed.Action,
			Repository: d.parsed.repo().FullName, Outcome: "received", BodySHA256: d.bodySHA256})
		if err != nil {
			return err
		}
		if !fresh {
			d.outcome = outcomeDuplicate
			return nil
		}
		d.outcome, d.runID, d.after, err = s.handle(ctx, tx, d)
		if err != nil {
			return err
		}
		return s.store.SetDeliveryOutcome(ctx, tx, d.guid, d.outcome, d.runID)
	})
}

// refuse answers a delivery that failed, or that needs nothing done
// (replays, duplicate jobs), with its class's status. Nothing of it was
// stored.
func (s *Server) refuse(c *gin.Context, d *inbound, err error) {
	f := classify(err)
	s.metrics.delivery(f.outcome)
	log := s.log.Info
	if f.delivery >= 500 {
		log = s.log.Error
	}
	log("delivery not recorded", "delivery", d.guid, "event", d.event, "outcome", f.outcome, "status", f.delivery, "err", err)
	switch {
	case f.delivery < 300:
		c.JSON(f.delivery, gin.H{"delivery": d.guid, "outcome": f.outcome})
	case f.delivery == http.StatusServiceUnavailable:
		// GitHub records a failed delivery; a redelivery is handled in full.
		c.JSON(f.delivery, gin.H{"error": "could not record the delivery: the database is unavailable; try again"})
	case f.delivery >= 500:
		c.JSON(f.delivery, gin.H{"error": "internal error; the delivery was not recorded"})
	default:
		c.JSON(f.delivery, gin.H{"error": err.Error()})
	}
}

// handle decides what a verified, new delivery does, inside its transaction.
func (s *Server) handle(ctx context.Context, tx *sql.Tx, d *inbound) (string, int64, []followup, error) {
	guid, name, e := d.guid, d.event, d.parsed
	if err := s.recordVisibility(ctx, tx, e); err != nil {
		return "", 0, nil, err
	}
	switch name {
	case "repository":
		if e.Action == "publicized" || e.Action == "privatized" {
			return outcomeVisibility, 0, nil, nil
		}
		return outcomeIgnored, 0, nil, nil
	case "ping":
		return outcomePing, 0, nil, nil
	case "pull_request":
		return s.pullRequest(ctx, tx, guid, e)
	case "check_run":
		switch {
		case e.CheckRun.Name != checks.Name:
			return outcomeIgnored, 0, nil, nil
		case e.Action == "rerequested":
			return s.rerequest(ctx, tx, guid, "check_run.rerequested", e, e.CheckRun.HeadSHA, e.CheckRun.PullRequests)
		case e.Action == "requested_action" && d.accept != nil:
			return s.recordAccept(ctx, tx, d.accept)
		}
		return outcomeIgnored, 0, nil, nil
	case "check_suite":
		if e.Action != "rerequested" {
			return outcomeIgnored, 0, nil, nil
		}
		return s.rerequest(ctx, tx, guid, "check_suite.rerequested", e, e.CheckSuite.HeadSHA, e.CheckSuite.PullRequests)
	}
	return outcomeIgnored, 0, nil, nil
}

// recordVisibility keeps each repository's visibility as the latest
// delivery says: every event about a repository carries repository.private
// (repository publicized and privatized are just such events), and
// installation events list the installation's repositories. A repository
// whose payload does not say is recorded private.
func (s *Server) recordVisibility(ctx context.Context, tx *sql.Tx, e *event) error {
	repos := append([]repository{e.repo()}, e.Repositories...)
	for _, r := range append(repos, e.RepositoriesAdded...) {
		if r.FullName == "" {
			continue
		}
		if err := s.store.SetVisibility(ctx, tx, r.FullName, r.private()); err != nil {
			return err
		}
	}
	return nil
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
		Private: repo.private(), InstallationID: e.installationID(),
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
		return "", 0, nil, fmt.Errorf("%w: the queue holds a gate for %s@%s attempt %d", errDuplicate, run.Repository, gate.ShortSHA(run.HeadSHA), run.Attempt)
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
