package storage

import (
	"context"
	"database/sql"
	"time"
)

// Approve records a maintainer's approval to gate one head commit of a
// fork's pull request.
func (s *Store) Approve(ctx context.Context, tx *sql.Tx, repo string, pr int, headSHA, by string) error {
	_, err := s.q(tx).ExecContext(ctx, `INSERT INTO approvals (repository, pr_number, head_sha, approved_by, approved_at)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (repository, pr_number, head_sha) DO NOTHING`, repo, pr, headSHA, by, ms(time.Now()))
	return wrap("approve", err)
}

// Approved reports whether a head commit of a pull request was approved.
func (s *Store) Approved(ctx context.Context, tx *sql.Tx, repo string, pr int, headSHA string) (bool, error) {
	var n int
	err := s.q(tx).QueryRowContext(ctx, `SELECT COUNT(*) FROM approvals WHERE repository = ? AND pr_number = ? AND head_sha = ?`,
		repo, pr, headSHA).Scan(&n)
	return n > 0, wrap("approved", err)
}
