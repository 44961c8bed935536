// Package checks reports gate runs to GitHub: check runs when memgate is a
// GitHub App, commit statuses with a token, or nothing (logged) without
// either. Every call is retried with backoff.
package checks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bradleyfalzon/ghinstallation/v2"
	"github.com/google/go-github/v60/github"

	"github.com/memgate/memgate/gate"
)

// Name is the check run's name and the commit status's context.
const Name = "memgate"

// PullRequest is what the API needs of a pull request to gate it.
type PullRequest struct {
	Number   int
	HeadSHA  string
	BaseSHA  string
	HeadRef  string
	BaseRef  string
	CloneURL string
	Private  bool
	// HeadRepo is the full name of the repository the head comes from: a
	// fork's when it is not the base repository.
	HeadRepo string
}

// Options are shared by the reporters.
type Options struct {
	APIURL    string // e.g. https://api.github.com/ or a test server
	PublicURL string // memgate's own address, for links to a run's page
	Logger    *slog.Logger
	Transport http.RoundTripper // the base transport; nil for the default
}

func (o Options) detailsURL(run gate.Run) string {
	if o.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(o.PublicURL, "/") + "/runs/" + strconv.FormatInt(run.ID, 10)
}

func newClient(rt http.RoundTripper, apiURL string) (*github.Client, error) {
	c := github.NewClient(&http.Client{Transport: rt, Timeout: 60 * time.Second})
	u, err := url.Parse(strings.TrimRight(apiURL, "/") + "/")
	if err != nil {
		return nil, fmt.Errorf("checks: GitHub API URL: %w", err)
	}
	c.BaseURL = u
	return c, nil
}

func splitRepo(full string) (string, string, error) {
	owner, name, ok := strings.Cut(full, "/")
	if !ok || owner == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("checks: repository %q is not owner/name", full)
	}
	return owner, name, nil
}

// App reports with check runs, as a GitHub App.
type App struct {
	opts    Options
	atr     *ghinstallation.AppsTransport
	mu      sync.Mutex
	clients map[int64]*installation
}

type installation struct {
	tr     *ghinstallation.Transport
	client *github.Client
}

// NewApp reports as the GitHub App appID with its PEM private key.
func NewApp(appID int64, key []byte, opts Options) (*App, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	atr, err := ghinstallation.NewAppsTransport(newRetryTransport(opts.Transport, opts.Logger), appID, key)
	if err != nil {
		return nil, fmt.Errorf("checks: GitHub App key: %w", err)
	}
	atr.BaseURL = strings.TrimRight(opts.APIURL, "/")
	return &App{opts: opts, atr: atr, clients: map[int64]*installation{}}, nil
}

// Describe says how results reach GitHub, for the log.
func (a *App) Describe() string { return "GitHub App: check runs" }

func (a *App) installation(id int64) (*installation, error) {
	if id == 0 {
		return nil, errors.New("checks: the run has no GitHub App installation id")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if in, ok := a.clients[id]; ok {
		return in, nil
	}
	tr := ghinstallation.NewFromAppsTransport(a.atr, id)
	tr.BaseURL = a.atr.BaseURL
	c, err := newClient(tr, a.opts.APIURL)
	if err != nil {
		return nil, err
	}
	in := &installation{tr: tr, client: c}
	a.clients[id] = in
	return in, nil
}

// Token is an installation token for cloning a private repository. It is
// refreshed before it expires.
func (a *App) Token(ctx context.Context, installationID int64) (string, error) {
	in, err := a.installation(installationID)
	if err != nil {
		return "", err
	}
	return in.tr.Token(ctx)
}

func (a *App) create(ctx context.Context, run gate.Run, status, title, summary string) (int64, error) {
	in, err := a.installation(run.InstallationID)
	if err != nil {
		return 0, err
	}
	owner, repo, err := splitRepo(run.Repository)
	if err != nil {
		return 0, err
	}
	opts := github.CreateCheckRunOptions{
		Name: Name, HeadSHA: run.HeadSHA, Status: github.String(status),
		ExternalID: github.String(strconv.FormatInt(run.ID, 10)),
		Output:     &github.CheckRunOutput{Title: github.String(title), Summary: github.String(summary)},
	}
	if u := a.opts.detailsURL(run); u != "" {
		opts.DetailsURL = github.String(u)
	}
	if status == "in_progress" {
		opts.StartedAt = &github.Timestamp{Time: time.Now()}
	}
	cr, _, err := in.client.Checks.CreateCheckRun(ctx, owner, repo, opts)
	if err != nil {
		return 0, fmt.Errorf("checks: create check run on %s@%s: %w", run.Repository, run.HeadSHA, err)
	}
	return cr.GetID(), nil
}

func (a *App) update(ctx context.Context, run gate.Run, opts github.UpdateCheckRunOptions) error {
	in, err := a.installation(run.InstallationID)
	if err != nil {
		return err
	}
	owner, repo, err := splitRepo(run.Repository)
	if err != nil {
		return err
	}
	opts.Name = Name
	if u := a.opts.detailsURL(run); u != "" {
		opts.DetailsURL = github.String(u)
	}
	if err := updateCheckRun(ctx, in.client, owner, repo, run.CheckRunID, opts); err != nil {
		return fmt.Errorf("checks: update check run %d: %w", run.CheckRunID, err)
	}
	if opts.GetStatus() == "completed" {
		// A stray gets the verdict, not the annotations: GitHub shows every
		// check run's on the diff, and one set is enough.
		if opts.Output != nil && opts.Output.Annotations != nil {
			o := *opts.Output
			o.Annotations = nil
			opts.Output = &o
		}
		a.completeStrays(ctx, in, owner, repo, run, opts)
	}
	return nil
}

// checkRunUpdate is go-github's update body with its actions always
// sent: go-github omits an empty list, and GitHub keeps the buttons a
// check run had unless the update names the new ones. A completion
// without buttons (an accepted failure, a pass after a re-run) must send
// "actions": [] or the old Accept button stays, offering to accept a run
// that needs nothing.
type checkRunUpdate struct {
	github.UpdateCheckRunOptions
	Actions []*github.CheckRunAction `json:"actions"`
}

func updateCheckRun(ctx context.Context, c *github.Client, owner, repo string, id int64, opts github.UpdateCheckRunOptions) error {
	body := any(opts)
	if opts.GetStatus() == "completed" {
		actions := opts.Actions
		if actions == nil {
			actions = []*github.CheckRunAction{}
		}
		body = checkRunUpdate{UpdateCheckRunOptions: opts, Actions: actions}
	}
	req, err := c.NewRequest(http.MethodPatch, fmt.Sprintf("repos/%v/%v/check-runs/%v", owner, repo, id), body)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/vnd.github+json")
	_, err = c.Do(ctx, req, nil)
	return err
}

// completeStrays gives a run's final state to its other check runs still
// open: ones GitHub made for a creation whose answer never came back (a
// POST retried after a 5xx that GitHub had carried out, or a memgate that
// stopped before it stored the id). They carry the run's id as external_id.
// Best effort: the run's own check run is already complete.
func (a *App) completeStrays(ctx context.Context, in *installation, owner, repo string, run gate.Run, opts github.UpdateCheckRunOptions) {
	res, _, err := in.client.Checks.ListCheckRunsForRef(ctx, owner, repo, run.HeadSHA, &github.ListCheckRunsOptions{
		CheckName: github.String(Name), Filter: github.String("all"), ListOptions: github.ListOptions{PerPage: 100}})
	if err != nil {
		a.opts.Logger.Warn("could not look for stray check runs", "run", run.ID, "err", err)
		return
	}
	ext := strconv.FormatInt(run.ID, 10)
	for _, cr := range res.CheckRuns {
		if cr.GetExternalID() != ext || cr.GetID() == run.CheckRunID || cr.GetStatus() == "completed" {
			continue
		}
		if err := updateCheckRun(ctx, in.client, owner, repo, cr.GetID(), opts); err != nil {
			a.opts.Logger.Warn("could not complete a stray check run", "run", run.ID, "check_run", cr.GetID(), "err", err)
			continue
		}
		a.opts.Logger.Info("completed a stray check run of the run", "run", run.ID, "check_run", cr.GetID())
	}
}

// Queued creates the check run as queued, so the PR shows it at once.
func (a *App) Queued(ctx context.Context, run gate.Run) (int64, error) {
	return a.create(ctx, run, "queued", "Queued", "memgate will build this commit, load it and watch its heap and goroutines.")
}

// Started marks the check run in progress, creating it if it does not exist.
func (a *App) Started(ctx context.Context, run gate.Run) (int64, error) {
	const title, summary = "Running", "Building the service, then loading it."
	if run.CheckRunID == 0 {
		return a.create(ctx, run, "in_progress", title, summary)
	}
	err := a.update(ctx, run, github.UpdateCheckRunOptions{Status: github.String("in_progress"),
		Output: &github.CheckRunOutput{Title: github.String(title), Summary: github.String(summary)}})
	return run.CheckRunID, err
}

// Progress updates the in-progress check run's output.
func (a *App) Progress(ctx context.Context, run gate.Run, text string) error {
	if run.CheckRunID == 0 {
		return nil
	}
	return a.update(ctx, run, github.UpdateCheckRunOptions{Status: github.String("in_progress"),
		Output: &github.CheckRunOutput{Title: github.String("Running"), Summary: github.String(truncate(text, maxOutputBytes))}})
}

// Completed completes the check run with the report's conclusion.
func (a *App) Completed(ctx context.Context, run gate.Run, rep *gate.Report) error {
	check, _ := conclusion(string(rep.Verdict))
	out := github.CheckRunOutput{Title: github.String(Title(rep)),
		Summary: github.String(Summary(rep, a.opts.detailsURL(run))), Text: github.String(Text(rep))}
	return a.complete(ctx, run, check, out, annotations(rep, a.opts.detailsURL(run)), nil)
}

// Compared completes the check run of a pull request's run gated beside
// its base with what the pull request changed (see comparedOutcome). A
// failure of the pull request's own offers the Accept button, and
// annotates the lines its report names; a leak already on the base
// annotates nothing of the pull request's. acceptedBy (who accepted this
// head commit, "" for nobody) turns a failure to success.
func (a *App) Compared(ctx context.Context, run gate.Run, c *gate.Comparison, acceptedBy string) error {
	outcome := comparedOutcome(c, acceptedBy)
	check, _ := conclusion(outcome)
	out := github.CheckRunOutput{Title: github.String(ComparedTitle(run, c, acceptedBy)),
		Summary: github.String(ComparedSummary(run, c, acceptedBy, a.opts.detailsURL(run)))}
	var anns []*github.CheckRunAnnotation
	if c.Head.Report != nil {
		out.Text = github.String(Text(c.Head.Report))
		if c.Outcome != gate.OutcomeAlready {
			anns = annotations(c.Head.Report, a.opts.detailsURL(run))
		}
	}
	var actions []*github.CheckRunAction
	if outcome == string(gate.Fail) && run.PR != 0 {
		actions = []*github.CheckRunAction{{Label: acceptButton.Label, Description: acceptButton.Description, Identifier: acceptButton.Identifier}}
	}
	return a.complete(ctx, run, check, out, anns, actions)
}

// complete completes the check run, creating it first when it has none.
// GitHub takes 50 annotations per request: the first batch completes the
// check run, the others follow on it (they add up).
func (a *App) complete(ctx context.Context, run gate.Run, check string, out github.CheckRunOutput,
	annotations []*github.CheckRunAnnotation, actions []*github.CheckRunAction) error {
	if run.CheckRunID == 0 {
		id, err := a.create(ctx, run, "in_progress", "Running", "")
		if err != nil {
			return err
		}
		run.CheckRunID = id
	}
	anns := batches(annotations)
	first := out
	if len(anns) > 0 {
		first.Annotations = anns[0]
	}
	err := a.update(ctx, run, github.UpdateCheckRunOptions{
		Status: github.String("completed"), Conclusion: github.String(check),
		CompletedAt: &github.Timestamp{Time: time.Now()}, Output: &first, Actions: actions,
	})
	if err != nil || len(anns) < 2 {
		return err
	}
	a.annotate(ctx, run, out, anns[1:])
	return nil
}

// annotate adds the further batches of annotations to a completed check
// run. Best effort: the verdict and the summary, which names the same
// lines, are already on GitHub, and completing again to retry would repeat
// the first batch. Each PATCH carries the same output, which GitHub
// requires with annotations.
func (a *App) annotate(ctx context.Context, run gate.Run, out github.CheckRunOutput, batches [][]*github.CheckRunAnnotation) {
	for i, batch := range batches {
		o := out
		o.Annotations = batch
		if err := a.update(ctx, run, github.UpdateCheckRunOptions{Output: &o}); err != nil {
			a.opts.Logger.Warn("could not add annotations to the check run", "run", run.ID, "check_run", run.CheckRunID,
				"batch", i+2, "of", len(batches)+1, "err", err)
			return
		}
	}
}

// Permission is a user's permission on a repository as GitHub answers it
// (admin, maintain, write, triage, read or none): GitHub does not check
// who may press a check run's button.
func (a *App) Permission(ctx context.Context, repo, user string, installationID int64) (string, error) {
	in, err := a.installation(installationID)
	if err != nil {
		return "", err
	}
	return permission(ctx, in.client, repo, user)
}

func permission(ctx context.Context, c *github.Client, repo, user string) (string, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return "", err
	}
	p, resp, err := c.Repositories.GetPermissionLevel(ctx, owner, name, user)
	if resp != nil && resp.StatusCode == http.StatusNotFound {
		return "none", nil // not a collaborator, or no such user
	}
	if err != nil {
		return "", fmt.Errorf("checks: permission of %s on %s: %w", user, repo, err)
	}
	return p.GetPermission(), nil
}

// MayAccept reports whether a permission (Permission's answer) lets its
// holder accept a change: write or above.
func MayAccept(permission string) bool {
	switch permission {
	case "admin", "maintain", "write":
		return true
	}
	return false
}

// Cancelled completes the check run as cancelled.
func (a *App) Cancelled(ctx context.Context, run gate.Run, reason string) error {
	if run.CheckRunID == 0 {
		return nil // never shown: nothing to complete
	}
	check, _ := conclusion(outcomeCancelled)
	return a.update(ctx, run, github.UpdateCheckRunOptions{
		Status: github.String("completed"), Conclusion: github.String(check),
		CompletedAt: &github.Timestamp{Time: time.Now()},
		Output: &github.CheckRunOutput{Title: github.String(truncate(flatten("Cancelled: "+reason), maxTitleBytes)),
			Summary: github.String(truncate("Cancelled: "+text(reason), maxOutputBytes))},
	})
}

// NeedsApproval shows a check run that blocks the pull request until a
// maintainer approves it (action_required: a required check does not pass).
func (a *App) NeedsApproval(ctx context.Context, run gate.Run, text string) error {
	return a.ActionRequired(ctx, run, "Waiting for a maintainer to approve gating this fork's commit", text)
}

// ActionRequired shows a completed check run that blocks the pull request
// until someone does what text says.
func (a *App) ActionRequired(ctx context.Context, run gate.Run, title, text string) error {
	in, err := a.installation(run.InstallationID)
	if err != nil {
		return err
	}
	owner, repo, err := splitRepo(run.Repository)
	if err != nil {
		return err
	}
	check, _ := conclusion(outcomeNeedsApproval)
	opts := github.CreateCheckRunOptions{
		Name: Name, HeadSHA: run.HeadSHA, Status: github.String("completed"), Conclusion: github.String(check),
		CompletedAt: &github.Timestamp{Time: time.Now()},
		Output: &github.CheckRunOutput{Title: github.String(truncate(title, maxTitleBytes)),
			Summary: github.String(truncate(text, maxOutputBytes))},
	}
	// GitHub wants a page for action_required: the pull request, where the
	// approval happens, or the commit.
	page := WebURL(a.opts.APIURL) + "/" + run.Repository + "/commit/" + run.HeadSHA
	if run.PR != 0 {
		page = WebURL(a.opts.APIURL) + "/" + run.Repository + "/pull/" + strconv.Itoa(run.PR)
	}
	opts.DetailsURL = github.String(page)
	if _, _, err := in.client.Checks.CreateCheckRun(ctx, owner, repo, opts); err != nil {
		return fmt.Errorf("checks: action_required check on %s@%s: %w", run.Repository, run.HeadSHA, err)
	}
	return nil
}

// WebURL is GitHub's web address for an API URL: github.com for the public
// API, the Enterprise host for GHE's /api/v3.
func WebURL(apiURL string) string {
	u := strings.TrimRight(apiURL, "/")
	if strings.HasSuffix(u, "/api/v3") {
		return strings.TrimSuffix(u, "/api/v3")
	}
	return "https://github.com"
}

// PullRequest looks a pull request up.
func (a *App) PullRequest(ctx context.Context, repo string, number int, installationID int64) (PullRequest, error) {
	in, err := a.installation(installationID)
	if err != nil {
		return PullRequest{}, err
	}
	return getPR(ctx, in.client, repo, number)
}

func getPR(ctx context.Context, c *github.Client, repo string, number int) (PullRequest, error) {
	owner, name, err := splitRepo(repo)
	if err != nil {
		return PullRequest{}, err
	}
	pr, _, err := c.PullRequests.Get(ctx, owner, name, number)
	if err != nil {
		return PullRequest{}, fmt.Errorf("checks: get %s#%d: %w", repo, number, err)
	}
	return PullRequest{Number: number, HeadSHA: pr.GetHead().GetSHA(), BaseSHA: pr.GetBase().GetSHA(),
		HeadRef: pr.GetHead().GetRef(), BaseRef: pr.GetBase().GetRef(),
		CloneURL: pr.GetHead().GetRepo().GetCloneURL(), Private: pr.GetBase().GetRepo().GetPrivate(),
		HeadRepo: pr.GetHead().GetRepo().GetFullName()}, nil
}

// Statuses reports with commit statuses, with a personal or fine-grained
// token (a token cannot create check runs).
type Statuses struct {
	opts   Options
	token  string
	client *github.Client
}

// NewStatuses reports with token.
func NewStatuses(token string, opts Options) (*Statuses, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	c, err := newClient(&bearer{token: token, base: newRetryTransport(opts.Transport, opts.Logger)}, opts.APIURL)
	if err != nil {
		return nil, err
	}
	return &Statuses{opts: opts, token: token, client: c}, nil
}

type bearer struct {
	token string
	base  http.RoundTripper
}

func (b *bearer) RoundTrip(req *http.Request) (*http.Response, error) {
	r := req.Clone(req.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.base.RoundTrip(r)
}

// Describe says how results reach GitHub, for the log.
func (s *Statuses) Describe() string { return "token: commit statuses" }

func (s *Statuses) post(ctx context.Context, run gate.Run, state, description string) error {
	owner, repo, err := splitRepo(run.Repository)
	if err != nil {
		return err
	}
	st := &github.RepoStatus{State: github.String(state), Context: github.String(Name),
		Description: github.String(StatusDescription(description))}
	if u := s.opts.detailsURL(run); u != "" {
		st.TargetURL = github.String(u)
	}
	if _, _, err := s.client.Repositories.CreateStatus(ctx, owner, repo, run.HeadSHA, st); err != nil {
		return fmt.Errorf("checks: commit status on %s@%s: %w", run.Repository, run.HeadSHA, err)
	}
	return nil
}

// Queued posts a pending status.
func (s *Statuses) Queued(ctx context.Context, run gate.Run) (int64, error) {
	return 0, s.post(ctx, run, "pending", "queued")
}

// Started posts a pending status.
func (s *Statuses) Started(ctx context.Context, run gate.Run) (int64, error) {
	return 0, s.post(ctx, run, "pending", "running: building and loading the service")
}

// Progress posts a pending status with the progress.
func (s *Statuses) Progress(ctx context.Context, run gate.Run, text string) error {
	first, _, _ := strings.Cut(text, "\n")
	return s.post(ctx, run, "pending", "running: "+first)
}

// Completed posts the verdict.
func (s *Statuses) Completed(ctx context.Context, run gate.Run, rep *gate.Report) error {
	_, state := conclusion(string(rep.Verdict))
	return s.post(ctx, run, state, Title(rep))
}

// Compared posts what the pull request changed. A commit status has no
// button: a change is accepted on a check run only.
func (s *Statuses) Compared(ctx context.Context, run gate.Run, c *gate.Comparison, acceptedBy string) error {
	_, state := conclusion(comparedOutcome(c, acceptedBy))
	return s.post(ctx, run, state, ComparedTitle(run, c, acceptedBy))
}

// Permission is a user's permission on a repository.
func (s *Statuses) Permission(ctx context.Context, repo, user string, _ int64) (string, error) {
	return permission(ctx, s.client, repo, user)
}

// Cancelled posts an error status saying why.
func (s *Statuses) Cancelled(ctx context.Context, run gate.Run, reason string) error {
	_, state := conclusion(outcomeCancelled)
	return s.post(ctx, run, state, "cancelled: "+reason)
}

// NeedsApproval posts a pending status saying what is needed.
func (s *Statuses) NeedsApproval(ctx context.Context, run gate.Run, text string) error {
	first, _, _ := strings.Cut(text, ":")
	_, state := conclusion(outcomeNeedsApproval)
	return s.post(ctx, run, state, first+": a maintainer must approve it")
}

// ActionRequired posts a pending status saying what is needed.
func (s *Statuses) ActionRequired(ctx context.Context, run gate.Run, title, _ string) error {
	return s.post(ctx, run, "pending", title)
}

// Token is the configured token, for cloning private repositories.
func (s *Statuses) Token(context.Context, int64) (string, error) { return s.token, nil }

// PullRequest looks a pull request up.
func (s *Statuses) PullRequest(ctx context.Context, repo string, number int, _ int64) (PullRequest, error) {
	return getPR(ctx, s.client, repo, number)
}

// Silent reports nothing: gates run and are stored, and the log says so.
type Silent struct{}

// Describe says how results reach GitHub, for the log.
func (Silent) Describe() string { return "none: results are stored, not reported" }

// Queued does nothing.
func (Silent) Queued(context.Context, gate.Run) (int64, error) { return 0, nil }

// Started does nothing.
func (Silent) Started(context.Context, gate.Run) (int64, error) { return 0, nil }

// Progress does nothing.
func (Silent) Progress(context.Context, gate.Run, string) error { return nil }

// Completed does nothing.
func (Silent) Completed(context.Context, gate.Run, *gate.Report) error { return nil }

// Compared does nothing.
func (Silent) Compared(context.Context, gate.Run, *gate.Comparison, string) error { return nil }

// Permission cannot ask: nobody may accept.
func (Silent) Permission(context.Context, string, string, int64) (string, error) {
	return "", errors.New("checks: no GitHub credentials to ask for the user's permission")
}

// Cancelled does nothing.
func (Silent) Cancelled(context.Context, gate.Run, string) error { return nil }

// NeedsApproval does nothing.
func (Silent) NeedsApproval(context.Context, gate.Run, string) error { return nil }

// ActionRequired does nothing.
func (Silent) ActionRequired(context.Context, gate.Run, string, string) error { return nil }

// Token has none.
func (Silent) Token(context.Context, int64) (string, error) { return "", nil }

// PullRequest cannot look anything up.
func (Silent) PullRequest(context.Context, string, int, int64) (PullRequest, error) {
	return PullRequest{}, errors.New("checks: no GitHub credentials to look the pull request up")
}
