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

// pairColumns are what a compared run stores besides its head's report.
type pairColumns struct {
	verdict      gate.Verdict
	reason       string
	comparison   []byte
	outcome      gate.Outcome
	flake        bool
	baseResultID int64
}

// CompletePair stores a pull request's run gated with its base beside it:
// the head's report, samples and profiles as Complete does, with the
// comparison's verdict and headline as the run's, and the comparison.
// baseResultID is the stored base result the comparison used (measured by
// this run or reused), 0 for none: the base's report then stays inside the
// comparison. Only the run's current job may complete it.
func (s *Store) CompletePair(ctx context.Context, id, jobID int64, cmp *gate.Comparison, baseResultID int64, profiles map[string][]byte) (bool, error) {
	if cmp == nil || cmp.Head.Report == nil {
		return false, errors.New("storage: a comparison without the head's report")
	}
	// The head's report is the run's own; a stored base's report is in
	// base_results: neither is written twice.
	slim := *cmp
	slim.Head.Report = nil
	if baseResultID != 0 {
		slim.Base.Report = nil
	}
	data, err := json.Marshal(slim)
	if err != nil {
		return false, fmt.Errorf("storage: encode comparison: %w", err)
	}
	return s.complete(ctx, id, jobID, cmp.Head.Report, profiles, &pairColumns{verdict: cmp.Verdict, reason: cmp.Headline,
		comparison: data, outcome: cmp.Outcome, flake: cmp.Flake, baseResultID: baseResultID})
}

func (s *Store) setPair(ctx context.Context, tx *sql.Tx, id int64, p *pairColumns) error {
	_, err := s.q(tx).ExecContext(ctx, `UPDATE runs SET comparison = ?, outcome = ?, flake = ?, base_result_id = ? WHERE id = ?`,
		string(p.comparison), string(p.outcome), boolInt(p.flake), p.baseResultID, id)
	return wrap("store comparison", err)
}

// Comparison is a compared run's comparison with both reports; nil for a
// run that was not compared with its base, ErrNotFound for no such run.
func (s *Store) Comparison(ctx context.Context, runID int64) (*gate.Comparison, error) {
	var cmpJSON, report sql.NullString
	var baseID int64
	err := s.q(nil).QueryRowContext(ctx, `SELECT comparison, report, base_result_id FROM runs WHERE id = ?`, runID).
		Scan(&cmpJSON, &report, &baseID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("run %d: %w", runID, ErrNotFound)
	}
	if err != nil {
		return nil, wrap("comparison", err)
	}
	if !cmpJSON.Valid || cmpJSON.String == "" {
		return nil, nil
	}
	var cmp gate.Comparison
	if err := json.Unmarshal([]byte(cmpJSON.String), &cmp); err != nil {
		return nil, fmt.Errorf("storage: run %d: comparison: %w", runID, err)
	}
	if report.Valid && report.String != "" {
		var rep gate.Report
		if err := json.Unmarshal([]byte(report.String), &rep); err != nil {
			return nil, fmt.Errorf("storage: run %d: report: %w", runID, err)
		}
		cmp.Head.Report = &rep
	}
	if baseID != 0 && cmp.Base.Report == nil {
		rep, _, err := s.BaseResult(ctx, baseID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, err
		}
		cmp.Base.Report = rep // nil when taken over and being measured again
	}
	return &cmp, nil
}

// RepoCounts are a repository's compared runs' tallies for its history page.
type RepoCounts struct {
	Flakes   int // failures that did not confirm on a fresh process
	Accepted int // head commits whose change was accepted
}

// CountRepo tallies a repository's flakes and acceptances.
func (s *Store) CountRepo(ctx context.Context, repo string) (RepoCounts, error) {
	var c RepoCounts
	err := s.q(nil).QueryRowContext(ctx, `SELECT (SELECT COUNT(*) FROM runs WHERE repository = ? AND flake = 1),
		(SELECT COUNT(*) FROM acceptances WHERE repository = ?)`, repo, repo).Scan(&c.Flakes, &c.Accepted)
	return c, wrap("count repository", err)
}

// Acceptance is an intended change accepted by someone with write
// permission: it covers one head commit of one pull request, gated against
// one base commit (a base that moves judges the head anew, against another
// base and its config).
type Acceptance struct {
	Repository string
	PR         int
	HeadSHA    string
	BaseSHA    string
	RunID      int64 // the run whose check run was accepted
	By         string
	At         time.Time
}

// Accept records an acceptance, in tx when there is one. It reports false
// when that head commit of the pull request was already accepted against
// that base (the first one stands).
func (s *Store) Accept(ctx context.Context, tx *sql.Tx, a Acceptance) (bool, error) {
	if a.At.IsZero() {
		a.At = time.Now()
	}
	res, err := s.q(tx).ExecContext(ctx, `INSERT INTO acceptances (repository, pr_number, head_sha, base_sha, run_id, accepted_by, accepted_at)
		VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (repository, pr_number, head_sha, base_sha) DO NOTHING`,
		a.Repository, a.PR, a.HeadSHA, a.BaseSHA, a.RunID, a.By, ms(a.At))
	if err != nil {
		return false, wrap("accept", err)
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// AcceptanceOf is the acceptance of a pull request's head commit gated
// against a base commit, or ErrNotFound.
func (s *Store) AcceptanceOf(ctx context.Context, repo string, pr int, headSHA, baseSHA string) (Acceptance, error) {
	a := Acceptance{Repository: repo, PR: pr, HeadSHA: headSHA, BaseSHA: baseSHA}
	var at int64
	err := s.q(nil).QueryRowContext(ctx, `SELECT run_id, accepted_by, accepted_at FROM acceptances
		WHERE repository = ? AND pr_number = ? AND head_sha = ? AND base_sha = ?`, repo, pr, headSHA, baseSHA).Scan(&a.RunID, &a.By, &at)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fmt.Errorf("no acceptance of %s#%d@%s on %s: %w", repo, pr, gate.ShortSHA(headSHA), gate.ShortSHA(baseSHA), ErrNotFound)
	}
	a.At = fromMS(at)
	return a, wrap("acceptance", err)
}

// AcceptedBy is who accepted a pull request's head commit against a base
// commit, "" for nobody.
func (s *Store) AcceptedBy(ctx context.Context, repo string, pr int, headSHA, baseSHA string) (string, error) {
	a, err := s.AcceptanceOf(ctx, repo, pr, headSHA, baseSHA)
	if errors.Is(err, ErrNotFound) {
		return "", nil
	}
	return a.By, err
}

// RecentAcceptances lists a repository's newest acceptances.
func (s *Store) RecentAcceptances(ctx context.Context, repo string, limit int) ([]Acceptance, error) {
	rows, err := s.q(nil).QueryContext(ctx, `SELECT pr_number, head_sha, base_sha, run_id, accepted_by, accepted_at FROM acceptances
		WHERE repository = ? ORDER BY accepted_at DESC, run_id DESC LIMIT ?`, repo, limit)
	if err != nil {
		return nil, wrap("acceptances", err)
	}
	defer rows.Close()
	var out []Acceptance
	for rows.Next() {
		a := Acceptance{Repository: repo}
		var at int64
		if err := rows.Scan(&a.PR, &a.HeadSHA, &a.BaseSHA, &a.RunID, &a.By, &at); err != nil {
			return nil, wrap("acceptances", err)
		}
		a.At = fromMS(at)
		out = append(out, a)
	}
	return out, wrap("acceptances", rows.Err())
}
