package storage

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"
)

// Scope limits a list to the repositories a viewer may see: every
// repository known to be public, and the private ones named in Private.
// The zero Scope sees public repositories only, so a list that forgets to
// set one leaks nothing; All sees everything (the API token).
type Scope struct {
	All     bool
	Private []string
}

// where is the scope as a condition on runs.repository. A repository with
// no row in repositories counts as private.
func (sc Scope) where() (string, []any) {
	if sc.All {
		return "", nil
	}
	// "repository || ''" keeps the planners from driving the query from
	// the repository index (every visible run, then a sort): newest first
	// and stopping at the page's end is what a list wants.
	cond := "repository || '' IN (SELECT full_name FROM repositories WHERE private = 0)"
	if len(sc.Private) == 0 {
		return cond, nil
	}
	args := make([]any, len(sc.Private))
	for i, r := range sc.Private {
		args[i] = r
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(sc.Private)), ", ")
	return "(" + cond + " OR repository || '' IN (" + marks + "))", args
}

// SetVisibility records whether a repository is private, as the latest
// word from GitHub.
func (s *Store) SetVisibility(ctx context.Context, tx *sql.Tx, repo string, private bool) error {
	_, err := s.q(tx).ExecContext(ctx, `INSERT INTO repositories (full_name, private, updated_at) VALUES (?, ?, ?)
		ON CONFLICT (full_name) DO UPDATE SET private = excluded.private, updated_at = excluded.updated_at`,
		repo, boolInt(private), ms(time.Now()))
	return wrap("set visibility", err)
}

// Visibility reports whether a repository is private; known is false when
// memgate has never heard (callers then treat it as private).
func (s *Store) Visibility(ctx context.Context, tx *sql.Tx, repo string) (private, known bool, err error) {
	var p int
	err = s.q(tx).QueryRowContext(ctx, `SELECT private FROM repositories WHERE full_name = ?`, repo).Scan(&p)
	if errors.Is(err, sql.ErrNoRows) {
		return true, false, nil
	}
	if err != nil {
		return true, false, wrap("visibility", err)
	}
	return p != 0, true, nil
}

// PrivateRepositories lists the repositories memgate holds runs of that are
// not known to be public.
func (s *Store) PrivateRepositories(ctx context.Context) ([]string, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT full_name FROM repositories WHERE private <> 0 ORDER BY full_name`)
	if err != nil {
		return nil, wrap("private repositories", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, wrap("private repositories", err)
		}
		out = append(out, n)
	}
	return out, wrap("private repositories", rows.Err())
}

// knowRepository makes sure a run's repository has a visibility: private
// until GitHub says otherwise.
func (s *Store) knowRepository(ctx context.Context, tx *sql.Tx, repo string) error {
	_, err := s.q(tx).ExecContext(ctx, `INSERT INTO repositories (full_name, private, updated_at) VALUES (?, 1, ?)
		ON CONFLICT (full_name) DO NOTHING`, repo, ms(time.Now()))
	return wrap("know repository", err)
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
