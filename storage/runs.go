package storage

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
)

const runColumns = `id, repository, pr_number, head_sha, base_sha, head_ref, base_ref, clone_url, private,
	installation_id, trigger, delivery_guid, attempt, rerun_of, status, verdict, reason, check_run_id, job_id,
	created_at, started_at, finished_at, heap_fluctuation, heap_growth, goroutine_growth, progress`

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

type scanner interface{ Scan(dest ...any) error }

func scanRun(sc scanner) (gate.Run, error) {
	var r gate.Run
	var private int
	var status, verdict string
	var created, started, finished int64
	var fluct, hgrowth, ggrowth sql.NullFloat64
	err := sc.Scan(&r.ID, &r.Repository, &r.PR, &r.HeadSHA, &r.BaseSHA, &r.HeadRef, &r.BaseRef, &r.CloneURL, &private,
		&r.InstallationID, &r.Trigger, &r.DeliveryID, &r.Attempt, &r.RerunOf, &status, &verdict, &r.Reason,
		&r.CheckRunID, &r.JobID, &created, &started, &finished, &fluct, &hgrowth, &ggrowth, &r.Progress)
	if err != nil {
		return r, err
	}
	r.HeapFluctuation, r.HeapGrowth, r.GoroutineGrowth = ptr(fluct), ptr(hgrowth), ptr(ggrowth)
	r.Private = private != 0
	r.Status, r.Verdict = gate.RunStatus(status), gate.Verdict(verdict)
	r.CreatedAt, r.StartedAt, r.FinishedAt = fromMS(created), fromMS(started), fromMS(finished)
	return r, nil
}

// CreateRun stores a new queued run and returns its id.
func (s *Store) CreateRun(ctx context.Context, tx *sql.Tx, r gate.Run) (int64, error) {
	if r.CreatedAt.IsZero() {
		r.CreatedAt = time.Now()
	}
	if r.Status == "" {
		r.Status = gate.RunQueued
	}
	if err := s.knowRepository(ctx, tx, r.Repository); err != nil {
		return 0, err
	}
	var id int64
	err := s.q(tx).QueryRowContext(ctx, `INSERT INTO runs (repository, pr_number, head_sha, base_sha, head_ref, base_ref,
		clone_url, private, installation_id, trigger, delivery_guid, attempt, rerun_of, status, job_id, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`,
		r.Repository, r.PR, r.HeadSHA, r.BaseSHA, r.HeadRef, r.BaseRef, r.CloneURL, boolInt(r.Private), r.InstallationID,
		r.Trigger, r.DeliveryID, r.Attempt, r.RerunOf, string(r.Status), r.JobID, ms(r.CreatedAt)).Scan(&id)
	if err != nil {
		return 0, wrap("create run", err)
	}
	return id, nil
}

// SetJob records the queue job that runs a run.
func (s *Store) SetJob(ctx context.Context, tx *sql.Tx, runID, jobID int64) error {
	_, err := s.q(tx).ExecContext(ctx, `UPDATE runs SET job_id = ? WHERE id = ?`, jobID, runID)
	return wrap("set job", err)
}

// Run returns one run, without its report.
func (s *Store) Run(ctx context.Context, id int64) (gate.Run, error) {
	row := s.q(nil).QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE id = ?`, id)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("run %d: %w", id, ErrNotFound)
	}
	return r, wrap("get run", err)
}

// RunWithReport returns one run with its full report.
func (s *Store) RunWithReport(ctx context.Context, id int64) (gate.Run, error) {
	r, err := s.Run(ctx, id)
	if err != nil {
		return r, err
	}
	var report sql.NullString
	if err := s.q(nil).QueryRowContext(ctx, `SELECT report FROM runs WHERE id = ?`, id).Scan(&report); err != nil {
		return r, wrap("get report", err)
	}
	if report.Valid && report.String != "" {
		var rep gate.Report
		if err := json.Unmarshal([]byte(report.String), &rep); err != nil {
			return r, fmt.Errorf("storage: run %d: report: %w", id, err)
		}
		r.Report = &rep
	}
	return r, nil
}

// LatestAttempt returns the newest run of a head commit in a repository.
func (s *Store) LatestAttempt(ctx context.Context, tx *sql.Tx, repo, headSHA string) (gate.Run, error) {
	row := s.q(tx).QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE repository = ? AND head_sha = ?
		ORDER BY attempt DESC, id DESC LIMIT 1`, repo, headSHA)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("no run of %s@%s: %w", repo, gate.ShortSHA(headSHA), ErrNotFound)
	}
	return r, wrap("latest attempt", err)
}

// LatestForPR returns the newest run of a pull request.
func (s *Store) LatestForPR(ctx context.Context, repo string, pr int) (gate.Run, error) {
	row := s.q(nil).QueryRowContext(ctx, `SELECT `+runColumns+` FROM runs WHERE repository = ? AND pr_number = ?
		ORDER BY id DESC LIMIT 1`, repo, pr)
	r, err := scanRun(row)
	if errors.Is(err, sql.ErrNoRows) {
		return r, fmt.Errorf("no run of %s#%d: %w", repo, pr, ErrNotFound)
	}
	return r, wrap("latest for PR", err)
}

// ActiveForPR returns the queued and running runs of a pull request.
func (s *Store) ActiveForPR(ctx context.Context, tx *sql.Tx, repo string, pr int) ([]gate.Run, error) {
	rows, err := s.q(tx).QueryContext(ctx, `SELECT `+runColumns+` FROM runs
		WHERE repository = ? AND pr_number = ? AND status IN ('queued', 'running') ORDER BY id`, repo, pr)
	if err != nil {
		return nil, wrap("active runs", err)
	}
	return collect(rows)
}

// Active returns every queued or running run.
func (s *Store) Active(ctx context.Context) ([]gate.Run, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT `+runColumns+` FROM runs WHERE status IN ('queued', 'running') ORDER BY id`)
	if err != nil {
		return nil, wrap("active runs", err)
	}
	return collect(rows)
}

func collect(rows *sql.Rows) ([]gate.Run, error) {
	defer rows.Close()
	var out []gate.Run
	for rows.Next() {
		r, err := scanRun(rows)
		if err != nil {
			return nil, wrap("scan run", err)
		}
		out = append(out, r)
	}
	return out, wrap("list runs", rows.Err())
}

// Filter selects runs to list. Zero fields match everything, except Scope:
// its zero value lists public repositories only.
type Filter struct {
	Scope      Scope
	Repository string
	PR         int
	Verdict    gate.Verdict
	Status     gate.RunStatus
	Before     int64 // cursor: only runs with a smaller id
	Limit      int
}

// ListRuns returns runs newest first, and the cursor of the next page (0
// when there is none).
func (s *Store) ListRuns(ctx context.Context, f Filter) ([]gate.Run, int64, error) {
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	var where []string
	var args []any
	if f.Repository != "" {
		where, args = append(where, "repository = ?"), append(args, f.Repository)
	}
	if f.PR != 0 {
		where, args = append(where, "pr_number = ?"), append(args, f.PR)
	}
	if f.Verdict != "" {
		where, args = append(where, "verdict = ?"), append(args, string(f.Verdict))
	}
	if f.Status != "" {
		where, args = append(where, "status = ?"), append(args, string(f.Status))
	}
	if f.Before > 0 {
		where, args = append(where, "id < ?"), append(args, f.Before)
	}
	if cond, scopeArgs := f.Scope.where(); cond != "" {
		where, args = append(where, cond), append(args, scopeArgs...)
	}
	query := `SELECT ` + runColumns + ` FROM runs`
	if len(where) > 0 {
		query += " WHERE " + strings.Join(where, " AND ")
	}
	query += " ORDER BY id DESC LIMIT ?"
	rows, err := s.q(nil).QueryContext(ctx, query, append(args, f.Limit+1)...)
	if err != nil {
		return nil, 0, wrap("list runs", err)
	}
	runs, err := collect(rows)
	if err != nil {
		return nil, 0, err
	}
	var next int64
	if len(runs) > f.Limit {
		runs = runs[:f.Limit]
		next = runs[len(runs)-1].ID
	}
	return runs, next, nil
}

// MarkRunning moves a queued run to running. It reports false when the run
// is no longer queued or running (cancelled meanwhile).
func (s *Store) MarkRunning(ctx context.Context, id int64, at time.Time) (bool, error) {
	res, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET status = 'running', started_at = ?, heartbeat_at = ?
		WHERE id = ? AND status IN ('queued', 'running')`, ms(at), ms(at), id)
	if err != nil {
		return false, wrap("mark running", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ClaimCheckRun lets exactly one caller create a run's check run: it
// succeeds for the first caller while the run has none, and marks the run
// as having one being created (check_run_id -1) until SetCheckRun stores
// its id or ReleaseCheckRun gives the claim up. The claim (its time, unix
// ms) tells this claim from a later one.
func (s *Store) ClaimCheckRun(ctx context.Context, id int64) (claim int64, ok bool, err error) {
	claim = time.Now().UnixMilli()
	res, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET check_run_id = -1, check_claimed_at = ? WHERE id = ? AND check_run_id = 0`, claim, id)
	if err != nil {
		return 0, false, wrap("claim check run", err)
	}
	n, _ := res.RowsAffected()
	return claim, n == 1, nil
}

// SetCheckRun stores the check run created under a claim. It reports false,
// storing nothing, when the claim is no longer held (released as stale):
// the caller then holds a check run nobody else knows of, and must complete
// it itself.
func (s *Store) SetCheckRun(ctx context.Context, id, claim, checkRunID int64) (bool, error) {
	res, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET check_run_id = ? WHERE id = ? AND check_run_id = -1 AND check_claimed_at = ?`,
		checkRunID, id, claim)
	if err != nil {
		return false, wrap("set check run", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// ReleaseCheckRun gives a claim up after the check run could not be
// created, so that someone else may try.
func (s *Store) ReleaseCheckRun(ctx context.Context, id, claim int64) error {
	_, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET check_run_id = 0 WHERE id = ? AND check_run_id = -1 AND check_claimed_at = ?`, id, claim)
	return wrap("release check run", err)
}

// ClaimReport lets exactly one of those who see a run end (its worker, the
// creator of its check run, a cancellation, the sweeper) post its final
// state: the first to ask once the run has ended and its check run is
// known (not being created). It returns the check run's id, 0 when there is
// none yet. The reconciler re-posts what was claimed but never reported.
func (s *Store) ClaimReport(ctx context.Context, id int64) (checkRunID int64, ok bool, err error) {
	err = s.q(nil).QueryRowContext(ctx, `UPDATE runs SET report_claimed_at = ? WHERE id = ? AND status IN ('completed', 'cancelled')
		AND check_run_id >= 0 AND report_claimed_at = 0 RETURNING check_run_id`, ms(time.Now()), id).Scan(&checkRunID)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, wrap("claim report", err)
	}
	return checkRunID, true, nil
}

// ReleaseStaleCheckClaim gives up a claim made before the cutoff, whose
// creator must be dead (every creator gives up well before), so that the
// run's final state can be posted on a check run of its own. It reports
// whether there was such a claim.
func (s *Store) ReleaseStaleCheckClaim(ctx context.Context, id int64, cutoff time.Time) (bool, error) {
	res, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET check_run_id = 0 WHERE id = ? AND check_run_id = -1 AND check_claimed_at < ?`,
		id, ms(cutoff))
	if err != nil {
		return false, wrap("release stale check claim", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Cancel ends a queued or running run as cancelled. It reports false when
// the run had already ended.
func (s *Store) Cancel(ctx context.Context, tx *sql.Tx, id int64, reason string) (bool, error) {
	res, err := s.q(tx).ExecContext(ctx, `UPDATE runs SET status = 'cancelled', reason = ?, finished_at = ?
		WHERE id = ? AND status IN ('queued', 'running')`, reason, ms(time.Now()), id)
	if err != nil {
		return false, wrap("cancel run", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// Complete stores a finished run: its verdict, report, samples and
// profiles, in one transaction. Only the run's current job may complete it;
// a run cancelled meanwhile, or handed to another job, is left as it is and
// Complete reports false.
func (s *Store) Complete(ctx context.Context, id, jobID int64, rep *gate.Report, profiles map[string][]byte) (bool, error) {
	return s.complete(ctx, id, jobID, rep, profiles, nil)
}

// complete is Complete, and CompletePair when pair is set: the run's
// verdict and reason are then the comparison's.
func (s *Store) complete(ctx context.Context, id, jobID int64, rep *gate.Report, profiles map[string][]byte, pair *pairColumns) (bool, error) {
	data, err := json.Marshal(rep)
	if err != nil {
		return false, fmt.Errorf("storage: encode report: %w", err)
	}
	verdict, reason := string(rep.Verdict), rep.Reason
	if pair != nil {
		verdict, reason = string(pair.verdict), pair.reason
	}
	crit := func(name string) any {
		if c, ok := rep.Criterion(name); ok {
			return c.Value
		}
		return nil
	}
	done := false
	err = s.Tx(ctx, func(tx *sql.Tx) error {
		res, err := s.q(tx).ExecContext(ctx, `UPDATE runs SET status = 'completed', verdict = ?, reason = ?, report = ?,
			build_log = ?, service_log = ?, heap_fluctuation = ?, heap_growth = ?, goroutine_growth = ?, finished_at = ?
			WHERE id = ? AND job_id = ? AND status IN ('queued', 'running')`,
			verdict, reason, string(data), rep.BuildOutput, rep.ServiceOutput,
			crit(gate.CritHeapFluctuation), crit(gate.CritHeapGrowth), crit(gate.CritGoroutineGrowth),
			ms(time.Now()), id, jobID)
		if err != nil {
			return wrap("complete run", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		done = true
		if pair != nil {
			if err := s.setPair(ctx, tx, id, pair); err != nil {
				return err
			}
		}
		for i, smp := range rep.Samples {
			if _, err := s.q(tx).ExecContext(ctx, `INSERT INTO samples (run_id, seq, t, phase, heap_inuse, post_gc_heap, heap_live,
				goroutines, gc_cycles, requests) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				id, i, smp.Offset, string(smp.Phase), int64(smp.HeapInuse), int64(smp.PostGCHeap), int64(smp.HeapLive),
				smp.Goroutines, int64(smp.GCCycles), int64(smp.Requests)); err != nil {
				return wrap("store sample", err)
			}
		}
		for name, p := range profiles {
			if _, err := s.q(tx).ExecContext(ctx, `INSERT INTO profiles (run_id, name, data) VALUES (?, ?, ?)`, id, name, p); err != nil {
				return wrap("store profile", err)
			}
		}
		return nil
	})
	return done, err
}

// Profile returns one stored profile of a run.
func (s *Store) Profile(ctx context.Context, runID int64, name string) ([]byte, error) {
	var data []byte
	err := s.q(nil).QueryRowContext(ctx, `SELECT data FROM profiles WHERE run_id = ? AND name = ?`, runID, name).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("profile %s of run %d: %w", name, runID, ErrNotFound)
	}
	return data, wrap("get profile", err)
}

// ProfileNames lists the profiles stored for a run.
func (s *Store) ProfileNames(ctx context.Context, runID int64) ([]string, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT name FROM profiles WHERE run_id = ? ORDER BY name`, runID)
	if err != nil {
		return nil, wrap("list profiles", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, wrap("list profiles", err)
		}
		names = append(names, n)
	}
	return names, wrap("list profiles", rows.Err())
}

// CountByVerdict counts completed runs by verdict, for metrics.
func (s *Store) CountByVerdict(ctx context.Context) (map[gate.Verdict]int64, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT verdict, COUNT(*) FROM runs WHERE status = 'completed' GROUP BY verdict`)
	if err != nil {
		return nil, wrap("count runs", err)
	}
	defer rows.Close()
	out := map[gate.Verdict]int64{}
	for rows.Next() {
		var v string
		var n int64
		if err := rows.Scan(&v, &n); err != nil {
			return nil, wrap("count runs", err)
		}
		out[gate.Verdict(v)] = n
	}
	return out, wrap("count runs", rows.Err())
}

func ptr(v sql.NullFloat64) *float64 {
	if !v.Valid {
		return nil
	}
	return &v.Float64
}

// SetProgress records a running gate's latest progress line.
func (s *Store) SetProgress(ctx context.Context, id int64, text string) error {
	_, err := s.q(nil).ExecContext(ctx, `UPDATE runs SET progress = ? WHERE id = ? AND status = 'running'`, text, id)
	return wrap("set progress", err)
}
