package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/memgate/memgate/gate"
)

// Heartbeat says the worker running a run's job is alive. It reports false
// when the run is no longer this job's (rescued to another worker, or
// ended), so the worker can stop.
func (s *Store) Heartbeat(ctx context.Context, runID, jobID int64) (bool, error) {
	res, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET heartbeat_at = ? WHERE id = ? AND job_id = ? AND status = 'running'`,
		ms(time.Now()), runID, jobID)
	if err != nil {
		return false, wrap("heartbeat", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Stale lists running runs whose worker has not been heard from since
// before the cutoff.
func (s *Store) Stale(ctx context.Context, cutoff time.Time) ([]gate.Run, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE status = 'running'
		AND heartbeat_at < ? AND started_at < ? ORDER BY id`, ms(cutoff), ms(cutoff))
	if err != nil {
		return nil, wrap("stale runs", err)
	}
	return collect(rows)
}

// Rescues counts how often a run was handed to a new job.
func (s *Store) Rescues(ctx context.Context, runID int64) (int, error) {
	var n int
	err := s.q(nil).QueryRowContext(ctx, `SELECT rescues FROM runs WHERE id = ?`, runID).Scan(&n)
	return n, wrap("rescues", err)
}

// Rescue hands a stale run to a new job, in tx. It reports false when
// another process rescued it first, or its worker came back.
func (s *Store) Rescue(ctx context.Context, tx *sql.Tx, runID, oldJobID, newJobID int64, cutoff time.Time) (bool, error) {
	res, err := s.q(tx).ExecContext(ctx, `UPDATE runs SET job_id = ?, rescues = rescues + 1, heartbeat_at = ?
		WHERE id = ? AND job_id = ? AND status = 'running' AND heartbeat_at < ?`,
		newJobID, ms(time.Now()), runID, oldJobID, ms(cutoff))
	if err != nil {
		return false, wrap("rescue", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// GiveUp completes a stale run with rep (an error verdict) instead of
// rescuing it again, under the same conditions as Rescue: it reports false
// when another process took the run first, or its worker came back.
func (s *Store) GiveUp(ctx context.Context, runID, jobID int64, cutoff time.Time, rep *gate.Report) (bool, error) {
	data, err := json.Marshal(rep)
	if err != nil {
		return false, fmt.Errorf("storage: encode report: %w", err)
	}
	res, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET status = 'completed', verdict = ?, reason = ?, report = ?, finished_at = ?
		WHERE id = ? AND job_id = ? AND status = 'running' AND heartbeat_at < ?`,
		string(rep.Verdict), rep.Reason, string(data), ms(time.Now()), runID, jobID, ms(cutoff))
	if err != nil {
		return false, wrap("give up", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// MarkReported records that a run's final state reached GitHub.
func (s *Store) MarkReported(ctx context.Context, id int64) error {
	_, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET reported_at = ? WHERE id = ?`, ms(time.Now()), id)
	return wrap("mark reported", err)
}

// Unreported lists ended runs whose final state has not reached GitHub,
// ended before the cutoff, tried fewer than maxAttempts times; each call
// counts as an attempt. Runs whose check run is being created under a claim
// made after claimCutoff are left to their creator, which posts the final
// state once it has the check run.
func (s *Store) Unreported(ctx context.Context, cutoff, claimCutoff time.Time, maxAttempts, limit int) ([]gate.Run, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE status IN ('completed', 'cancelled')
		AND reported_at = 0 AND finished_at > 0 AND finished_at < ? AND report_attempts < ?
		AND (check_run_id <> -1 OR check_claimed_at < ?) ORDER BY id LIMIT ?`,
		ms(cutoff), maxAttempts, ms(claimCutoff), limit)
	if err != nil {
		return nil, wrap("unreported runs", err)
	}
	runs, err := collect(rows)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if _, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET report_attempts = report_attempts + 1 WHERE id = ?`, r.ID); err != nil {
			return nil, wrap("unreported runs", err)
		}
	}
	return runs, nil
}
