package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/memgate/memgate/gate"
)

// BaseKey names a base commit's gate result: the same base commit gated
// with the same config (ConfigHash: the base's effective config and
// memgate's gate-affecting version) gives the same result, so pull requests
// on that base share it.
type BaseKey struct {
	Repository string
	BaseSHA    string
	ConfigHash string
}

// BaseClaim is what ClaimBase found.
type BaseClaim struct {
	ID int64 // the base_results row
	// Report is the stored result to reuse; nil when there is none yet.
	Report *gate.Report
	// RunID is the run that measured Report.
	RunID int64
	// Mine: the caller measures the base now, and must FinishBase or
	// ReleaseBase it (renewing the lease meanwhile). Neither Mine nor a
	// Report: another run is measuring it; ask again later.
	Mine bool
}

// ClaimBase looks for a base's stored result, or claims the measuring of
// it for runID. A stored result older than maxAge (0: no limit) is not
// reused but measured again; a claim whose lease ran out is taken over.
// Of the callers racing for one key exactly one gets Mine.
func (s *Store) ClaimBase(ctx context.Context, key BaseKey, runID int64, lease, maxAge time.Duration) (BaseClaim, error) {
	now := time.Now()
	if _, err := s.q(nil).ExecContext(ctx, `INSERT INTO base_results (repository, base_sha, config_hash, state, holder,
		lease_until, created_at) VALUES (?, ?, ?, 'running', ?, ?, ?) ON CONFLICT (repository, base_sha, config_hash) DO NOTHING`,
		key.Repository, key.BaseSHA, key.ConfigHash, runID, ms(now.Add(lease)), ms(now)); err != nil {
		return BaseClaim{}, wrap("claim base", err)
	}
	var c BaseClaim
	var state, report sql.NullString
	var holder, finished int64
	err := s.q(nil).QueryRowContext(ctx, `SELECT id, state, holder, run_id, finished_at, report FROM base_results
		WHERE repository = ? AND base_sha = ? AND config_hash = ?`, key.Repository, key.BaseSHA, key.ConfigHash).
		Scan(&c.ID, &state, &holder, &c.RunID, &finished, &report)
	if err != nil {
		return BaseClaim{}, wrap("claim base", err)
	}
	if state.String == "running" && holder == runID {
		c.Mine = true
		return c, nil
	}
	fresh := maxAge <= 0 || now.Sub(fromMS(finished)) <= maxAge
	if state.String == "done" && fresh && report.Valid {
		var rep gate.Report
		if err := json.Unmarshal([]byte(report.String), &rep); err != nil {
			return BaseClaim{}, fmt.Errorf("storage: base result %d: report: %w", c.ID, err)
		}
		c.Report = &rep
		return c, nil
	}
	// Running under a lease that ran out, or done too long ago: the first
	// to update the row measures it again.
	cutoff := int64(0)
	if maxAge > 0 {
		cutoff = ms(now.Add(-maxAge))
	}
	res, err := s.q(nil).ExecContext(ctx, `UPDATE base_results SET state = 'running', holder = ?, lease_until = ?
		WHERE id = ? AND ((state = 'running' AND lease_until < ?) OR (state = 'done' AND finished_at < ?))`,
		runID, ms(now.Add(lease)), c.ID, ms(now), cutoff)
	if err != nil {
		return BaseClaim{}, wrap("claim base", err)
	}
	n, _ := res.RowsAffected()
	return BaseClaim{ID: c.ID, Mine: n == 1}, nil
}

// RenewBase extends the lease of a base being measured. It reports false
// when runID no longer holds it (taken over after its lease ran out).
func (s *Store) RenewBase(ctx context.Context, id, runID int64, lease time.Duration) (bool, error) {
	res, err := s.q(nil).ExecContext(ctx, `UPDATE base_results SET lease_until = ? WHERE id = ? AND holder = ? AND state = 'running'`,
		ms(time.Now().Add(lease)), id, runID)
	if err != nil {
		return false, wrap("renew base", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// FinishBase stores the base's result measured by runID, for others to
// reuse. Only pass and fail are kept: a base that errored or was
// inconclusive is released instead, for the next pull request to measure.
// It reports false when runID no longer held the claim.
func (s *Store) FinishBase(ctx context.Context, id, runID int64, rep *gate.Report) (bool, error) {
	if rep == nil || (rep.Verdict != gate.Pass && rep.Verdict != gate.Fail) {
		return false, s.ReleaseBase(ctx, id, runID)
	}
	data, err := json.Marshal(rep)
	if err != nil {
		return false, fmt.Errorf("storage: encode base report: %w", err)
	}
	res, err := s.q(nil).ExecContext(ctx, `UPDATE base_results SET state = 'done', run_id = ?, verdict = ?, report = ?,
		finished_at = ?, lease_until = 0 WHERE id = ? AND holder = ? AND state = 'running'`,
		runID, string(rep.Verdict), string(data), ms(time.Now()), id, runID)
	if err != nil {
		return false, wrap("finish base", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReleaseBase gives a claim up without a result (the measuring failed),
// so that the next caller measures it.
func (s *Store) ReleaseBase(ctx context.Context, id, runID int64) error {
	_, err := s.q(nil).ExecContext(ctx, `DELETE FROM base_results WHERE id = ? AND holder = ? AND state = 'running'`, id, runID)
	return wrap("release base", err)
}

// BaseResult is one stored base result's report and the run that measured
// it.
func (s *Store) BaseResult(ctx context.Context, id int64) (*gate.Report, int64, error) {
	var report sql.NullString
	var runID int64
	err := s.q(nil).QueryRowContext(ctx, `SELECT run_id, report FROM base_results WHERE id = ? AND state = 'done'`, id).Scan(&runID, &report)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("base result %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, 0, wrap("base result", err)
	}
	var rep gate.Report
	if err := json.Unmarshal([]byte(report.String), &rep); err != nil {
		return nil, 0, fmt.Errorf("storage: base result %d: report: %w", id, err)
	}
	return &rep, runID, nil
}
