package server

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/storage"
)

var (
	repoRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$`)
	shaRe  = regexp.MustCompile(`^[0-9a-f]{40}$`)
	nameRe = regexp.MustCompile(`^[a-z0-9.-]+\.pb\.gz$`)
)

func (s *Server) listRuns(c *gin.Context) {
	f := storage.Filter{Repository: c.Query("repository"), Verdict: gate.Verdict(c.Query("verdict")), Status: gate.RunStatus(c.Query("status"))}
	var err error
	if f.PR, err = optInt(c.Query("pr")); err != nil {
		s.fail(c, fmt.Errorf("%w: pr: %v", errBadRequest, err))
		return
	}
	cursor, err := optInt(c.Query("cursor"))
	if err != nil {
		s.fail(c, fmt.Errorf("%w: cursor: %v", errBadRequest, err))
		return
	}
	f.Before = int64(cursor)
	if f.Limit, err = optInt(c.Query("limit")); err != nil {
		s.fail(c, fmt.Errorf("%w: limit: %v", errBadRequest, err))
		return
	}
	runs, next, err := s.reader(c).List(c.Request.Context(), f)
	if err != nil {
		s.fail(c, err)
		return
	}
	if runs == nil {
		runs = []gate.Run{}
	}
	out := gin.H{"runs": runs}
	if next != 0 {
		out["next_cursor"] = next
	}
	c.JSON(http.StatusOK, out)
}

// reader is the store as the request's viewer may see it: the bearer
// token, a session cookie (the run page's live script and profile links
// send it), or nobody.
func (s *Server) reader(c *gin.Context) access.Reader { return s.auth.For(s.auth.Viewer(c.Request)) }

func optInt(s string) (int, error) {
	if s == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return n, nil
}

func (s *Server) runID(c *gin.Context) (int64, bool) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil || id <= 0 {
		s.fail(c, fmt.Errorf("%w: run id %q", errBadRequest, c.Param("id")))
		return 0, false
	}
	return id, true
}

func (s *Server) getRun(c *gin.Context) {
	id, ok := s.runID(c)
	if !ok {
		return
	}
	rd := s.reader(c)
	run, err := rd.Run(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	names, err := rd.ProfileNames(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := gin.H{"run": run, "profiles": names}
	// A pull request's run gated beside its base: the comparison (its
	// head's report is the run's) and who accepted it, if anyone.
	cmp, err := rd.Comparison(c.Request.Context(), id)
	if err != nil {
		s.fail(c, err)
		return
	}
	if cmp != nil {
		cmp.Head.Report = nil
		out["comparison"] = cmp
		a, err := rd.AcceptanceOf(c.Request.Context(), run.Repository, run.PR, run.HeadSHA, run.BaseSHA)
		switch {
		case err == nil:
			out["accepted"] = gin.H{"by": a.By, "at": a.At, "head_sha": a.HeadSHA, "run_id": a.RunID}
		case !errors.Is(err, storage.ErrNotFound):
			s.fail(c, err)
			return
		}
	}
	c.JSON(http.StatusOK, out)
}

func (s *Server) getProfile(c *gin.Context) {
	id, ok := s.runID(c)
	if !ok {
		return
	}
	name := c.Param("name")
	if !nameRe.MatchString(name) {
		s.fail(c, fmt.Errorf("%w: profile name %q", errBadRequest, name))
		return
	}
	data, err := s.reader(c).Profile(c.Request.Context(), id, name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="run-%d-%s"`, id, name))
	c.Data(http.StatusOK, "application/octet-stream", data)
}

type createRequest struct {
	Repository string `json:"repository"`
	PR         int    `json:"pr"`
	Commit     string `json:"commit"`
	// Approve gates a fork's head commit that no maintainer approved, and
	// records the approval (by "api"). The API token is an operator's, so
	// the API may approve; it never does so unasked.
	Approve bool `json:"approve"`
}

// createRun gates a pull request's head, or a commit, on request. The clone
// URL and base come from GitHub (for a PR) or from the newest stored run.
func (s *Server) createRun(c *gin.Context) {
	var req createRequest
	if err := c.ShouldBindJSON(&req); err != nil {
		s.fail(c, fmt.Errorf("%w: %v", errBadRequest, err))
		return
	}
	switch {
	case !repoRe.MatchString(req.Repository):
		s.fail(c, fmt.Errorf("%w: repository must be owner/name", errBadRequest))
		return
	case req.PR == 0 && req.Commit == "":
		s.fail(c, fmt.Errorf("%w: give pr or commit", errBadRequest))
		return
	case req.Commit != "" && !shaRe.MatchString(req.Commit):
		s.fail(c, fmt.Errorf("%w: commit must be a full 40-character sha", errBadRequest))
		return
	}
	ctx := c.Request.Context()
	run, headRepo, err := s.template(ctx, req)
	if err != nil {
		s.fail(c, err)
		return
	}
	run.Trigger, run.DeliveryID = "api", ""
	s.respondEnqueued(c, run, headRepo, req.Approve)
}

// template makes the run a request asks for. headRepo is the repository
// its head comes from when GitHub said, else "".
func (s *Server) template(ctx context.Context, req createRequest) (run gate.Run, headRepo string, err error) {
	var prev gate.Run
	if req.Commit != "" {
		prev, err = s.store.LatestAttempt(ctx, nil, req.Repository, req.Commit)
	} else {
		prev, err = s.store.LatestForPR(ctx, req.Repository, req.PR)
	}
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return gate.Run{}, "", err
	}
	found := err == nil
	run = gate.Run{Repository: req.Repository, PR: req.PR, HeadSHA: req.Commit}
	if found {
		run.CloneURL, run.InstallationID, run.RerunOf = prev.CloneURL, prev.InstallationID, prev.ID
		if req.Commit != "" {
			run.PR, run.BaseSHA, run.HeadRef, run.BaseRef = prev.PR, prev.BaseSHA, prev.HeadRef, prev.BaseRef
		}
	}
	if req.PR != 0 && req.Commit == "" {
		// The PR's current head comes from GitHub when it can be asked.
		pr, perr := s.reporter.PullRequest(ctx, req.Repository, req.PR, run.InstallationID)
		switch {
		case perr == nil:
			run.HeadSHA, run.BaseSHA, run.HeadRef, run.BaseRef = pr.HeadSHA, pr.BaseSHA, pr.HeadRef, pr.BaseRef
			headRepo = pr.HeadRepo
			if run.CloneURL == "" {
				run.CloneURL = pr.CloneURL
			}
			// GitHub's word is the latest on the repository's visibility.
			if err := s.store.SetVisibility(ctx, nil, req.Repository, pr.Private); err != nil {
				return gate.Run{}, "", err
			}
		case found:
			run.HeadSHA, run.BaseSHA, run.HeadRef, run.BaseRef = prev.HeadSHA, prev.BaseSHA, prev.HeadRef, prev.BaseRef
		default:
			return gate.Run{}, "", fmt.Errorf("%w: %s#%d has no stored run and GitHub could not be asked: %v", errUnprocessable, req.Repository, req.PR, perr)
		}
	}
	if run.CloneURL == "" {
		return gate.Run{}, "", fmt.Errorf("%w: no stored run of %s to take the clone URL from; gate it through a pull request first", errUnprocessable, req.Repository)
	}
	run.Private, err = s.private(ctx, req.Repository)
	return run, headRepo, err
}

// private is a repository's visibility for a run made here (API, re-run):
// as GitHub last said, and private when it never said.
func (s *Server) private(ctx context.Context, repo string) (bool, error) {
	private, _, err := s.store.Visibility(ctx, nil, repo)
	return private, err
}

type rerunRequest struct {
	Approve bool `json:"approve"` // as createRequest's
}

func (s *Server) rerun(c *gin.Context) {
	id, ok := s.runID(c)
	if !ok {
		return
	}
	var req rerunRequest
	if c.Request.ContentLength != 0 {
		if err := c.ShouldBindJSON(&req); err != nil {
			s.fail(c, fmt.Errorf("%w: %v", errBadRequest, err))
			return
		}
	}
	newID, err := s.rerunRun(c.Request.Context(), id, req.Approve)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", fmt.Sprintf("/api/v1/runs/%d", newID))
	c.JSON(http.StatusAccepted, gin.H{"id": newID})
}

// Rerun gates a stored run's head again, as a new attempt, and returns the
// new run's id. A fork's head commit needs its approval, as on GitHub.
func (s *Server) Rerun(ctx context.Context, id int64) (int64, error) {
	return s.rerunRun(ctx, id, false)
}

func (s *Server) rerunRun(ctx context.Context, id int64, approve bool) (int64, error) {
	prev, err := s.store.Run(ctx, id)
	if err != nil {
		return 0, err
	}
	private, err := s.private(ctx, prev.Repository)
	if err != nil {
		return 0, err
	}
	run := gate.Run{Repository: prev.Repository, PR: prev.PR, HeadSHA: prev.HeadSHA, BaseSHA: prev.BaseSHA,
		HeadRef: prev.HeadRef, BaseRef: prev.BaseRef, CloneURL: prev.CloneURL, Private: private,
		InstallationID: prev.InstallationID, Trigger: "api.rerun", RerunOf: prev.ID}
	return s.enqueueNow(ctx, run, "", approve)
}

// enqueueNow stores and queues a run requested through the API in its own
// transaction, then starts its follow-ups.
func (s *Server) enqueueNow(ctx context.Context, run gate.Run, headRepo string, approve bool) (int64, error) {
	var id int64
	var after []followup
	err := s.store.Tx(ctx, func(tx *sql.Tx) error {
		if err := s.apiApproval(ctx, tx, run, headRepo, approve); err != nil {
			return err
		}
		var err error
		_, id, after, err = s.enqueue(ctx, tx, run, true)
		return err
	})
	if err != nil {
		return 0, err
	}
	for _, f := range after {
		s.background("enqueue follow-up", f)
	}
	return id, nil
}

func (s *Server) respondEnqueued(c *gin.Context, run gate.Run, headRepo string, approve bool) {
	id, err := s.enqueueNow(c.Request.Context(), run, headRepo, approve)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Location", fmt.Sprintf("/api/v1/runs/%d", id))
	c.JSON(http.StatusAccepted, gin.H{"id": id})
}
