package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/memgate/memgate/gate"
)

// PullRequest is what memgate keeps of a pull request: whether it is open,
// and what a re-run needs when its event does not say (a fork's check suite
// lists no pull requests).
type PullRequest struct {
	Repository string
	Number     int
	State      string // open, closed
	HeadSHA    string
	HeadRef    string
	// HeadRepo is the full name of the repository the head comes from; ""
	// when unknown (stored before memgate kept it).
	HeadRepo string
	BaseSHA  string
	BaseRef  string
}

// SetPullRequest records a pull request as its latest event shows it.
func (s *Store) SetPullRequest(ctx context.Context, tx *sql.Tx, p PullRequest) error {
	_, err := s.q(tx).ExecContext(ctx, `INSERT INTO pull_requests (repository, number, state, head_sha, head_ref, head_repo,
		base_sha, base_ref, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repository, number) DO UPDATE SET
		state = excluded.state, head_sha = excluded.head_sha, head_ref = excluded.head_ref, head_repo = excluded.head_repo,
		base_sha = excluded.base_sha, base_ref = excluded.base_ref, updated_at = excluded.updated_at`,
		p.Repository, p.Number, p.State, p.HeadSHA, p.HeadRef, p.HeadRepo, p.BaseSHA, p.BaseRef, ms(time.Now()))
	return wrap("set pull request", err)
}

const pullColumns = `repository, number, state, head_sha, head_ref, head_repo, base_sha, base_ref`

func scanPull(row *sql.Row, what string) (PullRequest, error) {
	var p PullRequest
	err := row.Scan(&p.Repository, &p.Number, &p.State, &p.HeadSHA, &p.HeadRef, &p.HeadRepo, &p.BaseSHA, &p.BaseRef)
	if errors.Is(err, sql.ErrNoRows) {
		return p, fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return p, wrap("pull request", err)
}

// GetPullRequest returns a stored pull request.
func (s *Store) GetPullRequest(ctx context.Context, tx *sql.Tx, repo string, number int) (PullRequest, error) {
	row := s.q(tx).QueryRowContext(ctx, `SELECT `+pullColumns+` FROM pull_requests WHERE repository = ? AND number = ?`, repo, number)
	return scanPull(row, fmt.Sprintf("pull request %s#%d", repo, number))
}

// PullRequestByHead returns the pull request whose latest head is a commit:
// an open one before a closed one, then the most recently updated.
func (s *Store) PullRequestByHead(ctx context.Context, tx *sql.Tx, repo, headSHA string) (PullRequest, error) {
	row := s.q(tx).QueryRowContext(ctx, `SELECT `+pullColumns+` FROM pull_requests WHERE repository = ? AND head_sha = ?
		ORDER BY CASE WHEN state = 'open' THEN 0 ELSE 1 END, updated_at DESC, number DESC LIMIT 1`, repo, headSHA)
	return scanPull(row, fmt.Sprintf("pull request with head %s in %s", gate.ShortSHA(headSHA), repo))
}

// OpenPullRequests lists a repository's open pull requests, newest first.
func (s *Store) OpenPullRequests(ctx context.Context, repo string, limit int) ([]int, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT number FROM pull_requests WHERE repository = ? AND state = 'open'
		ORDER BY updated_at DESC, number DESC LIMIT ?`, repo, limit)
	if err != nil {
		return nil, wrap("open pull requests", err)
	}
	defer rows.Close()
	var out []int
	for rows.Next() {
		var n int
		if err := rows.Scan(&n); err != nil {
			return nil, wrap("open pull requests", err)
		}
		out = append(out, n)
	}
	return out, wrap("open pull requests", rows.Err())
}

// LatestCompleted is the newest completed run of a repository.
func (s *Store) LatestCompleted(ctx context.Context, repo string) (gate.Run, error) {
	row := s.q(nil).QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE repository = ? AND status = 'completed'
		ORDER BY id DESC LIMIT 1`, repo)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("no completed run of %s: %w", repo, ErrNotFound)
	}
	return r, wrap("latest completed", err)
}
