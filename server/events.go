package server

import (
	"encoding/json"
	"fmt"
)

// The webhook payloads memgate reads, with only the fields it uses. Real
// payloads carry timestamps in more than one format (GitHub's own examples
// have "2018-04-25 20:42:10" where go-github expects RFC 3339), so decoding
// just these fields keeps a delivery from failing over a field memgate
// ignores.

type repository struct {
	ID       int64  `json:"id"`
	FullName string `json:"full_name"`
	CloneURL string `json:"clone_url"`
	// Private is nil when the payload does not say: memgate then treats
	// the repository as private.
	Private *bool `json:"private"`
}

// private reports whether the repository is private, or not known to be
// public.
func (r repository) private() bool { return r.Private == nil || *r.Private }

type installation struct {
	ID int64 `json:"id"`
}

type commitRef struct {
	SHA  string      `json:"sha"`
	Ref  string      `json:"ref"`
	Repo *repository `json:"repo"`
}

type label struct {
	Name string `json:"name"`
}

type pullRequest struct {
	Number int       `json:"number"`
	Draft  bool      `json:"draft"`
	Head   commitRef `json:"head"`
	Base   commitRef `json:"base"`
	Labels []label   `json:"labels"`
	// UpdatedAt moves with every event of the pull request.
	UpdatedAt string `json:"updated_at"`
}

// sameRepoIDs reports whether a check suite's pull request entry names one
// repository as both head and base: those entries carry repository ids,
// not names.
func (p *pullRequest) sameRepoIDs() bool {
	return p.Head.Repo != nil && p.Base.Repo != nil && p.Head.Repo.ID != 0 && p.Head.Repo.ID == p.Base.Repo.ID
}

// fromFork reports whether the pull request's head lives in another
// repository than its base: a stranger's code.
func (p *pullRequest) fromFork(base string) bool {
	return p.Head.Repo == nil || p.Head.Repo.FullName != base
}

type event struct {
	Action       string        `json:"action"`
	Repository   *repository   `json:"repository"`
	Installation *installation `json:"installation"`
	PullRequest  *pullRequest  `json:"pull_request"`
	CheckRun     *struct {
		ID      int64  `json:"id"`
		Name    string `json:"name"`
		HeadSHA string `json:"head_sha"`
		// ExternalID is the run id memgate gave its check run.
		ExternalID   string        `json:"external_id"`
		PullRequests []pullRequest `json:"pull_requests"`
	} `json:"check_run"`
	// RequestedAction is the button pressed on a check run (check_run
	// requested_action).
	RequestedAction *struct {
		Identifier string `json:"identifier"`
	} `json:"requested_action"`
	CheckSuite *struct {
		HeadSHA      string        `json:"head_sha"`
		PullRequests []pullRequest `json:"pull_requests"`
		UpdatedAt    string        `json:"updated_at"` // a re-request resets the suite
	} `json:"check_suite"`
	// Repositories and RepositoriesAdded list an installation's
	// repositories (installation, installation_repositories).
	Repositories      []repository `json:"repositories"`
	RepositoriesAdded []repository `json:"repositories_added"`
	Label             *label       `json:"label"` // pull_request labeled

	Changes *struct {
		// Base is set when a pull request's base branch changed
		// (pull_request edited).
		Base *struct {
			Ref struct {
				From string `json:"from"`
			} `json:"ref"`
		} `json:"base"`
	} `json:"changes"`
	Sender *struct {
		Login string `json:"login"`
	} `json:"sender"`
	Zen string `json:"zen"` // ping
}

func (e *event) repo() repository {
	if e.Repository == nil {
		return repository{}
	}
	return *e.Repository
}

func (e *event) installationID() int64 {
	if e.Installation == nil {
		return 0
	}
	return e.Installation.ID
}

// parseEvent decodes a payload and checks the fields its event needs.
func parseEvent(name string, body []byte) (*event, error) {
	var e event
	if err := json.Unmarshal(body, &e); err != nil {
		return nil, fmt.Errorf("%w: %v", errMalformed, err)
	}
	switch name {
	case "pull_request":
		if e.PullRequest == nil || e.Repository == nil {
			return nil, fmt.Errorf("%w: pull_request event without pull_request or repository", errUnprocessable)
		}
	case "check_run":
		if e.CheckRun == nil || e.Repository == nil {
			return nil, fmt.Errorf("%w: check_run event without check_run or repository", errUnprocessable)
		}
	case "check_suite":
		if e.CheckSuite == nil || e.Repository == nil {
			return nil, fmt.Errorf("%w: check_suite event without check_suite or repository", errUnprocessable)
		}
	}
	return &e, nil
}
