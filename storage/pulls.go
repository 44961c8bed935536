package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/memgate/memgate/gate"
)

// SetPullRequest records whether a pull request is open, for the pages.
func (s *Store) SetPullRequest(ctx context.Context, tx *sql.Tx, repo string, number int, state, headSHA string) error {
	_, err := s.q(tx).ExecContext(ctx, `INSERT INTO pull_requests (repository, number, state, head_sha, updated_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (repository, number) DO UPDATE SET
		state = excluded.state, head_sha = excluded.head_sha, updated_at = excluded.updated_at`,
		repo, number, state, headSHA, ms(time.Now()))
	return wrap("set pull request", err)
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
