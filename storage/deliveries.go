package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Delivery is one webhook delivery as received.
type Delivery struct {
	GUID       string
	Event      string
	Action     string
	Repository string
	Outcome    string
	RunID      int64
	ReceivedAt time.Time
	// BodySHA256 is the hex SHA-256 of the signed body; "" stores none.
	BodySHA256 string
}

// RecordDelivery stores a delivery unless its GUID is already stored (a
// redelivery); it reports whether it was new. A body already stored under
// another GUID is a replay: nothing is stored and the error is ErrReplayed.
func (s *Store) RecordDelivery(ctx context.Context, tx *sql.Tx, d Delivery) (bool, error) {
	if d.ReceivedAt.IsZero() {
		d.ReceivedAt = time.Now()
	}
	var body sql.NullString
	if d.BodySHA256 != "" {
		body = sql.NullString{String: d.BodySHA256, Valid: true}
	}
	// DO NOTHING on either key: a concurrent insert of the same GUID or
	// body waits for the other transaction, then yields to it.
	res, err := s.q(tx).ExecContext(ctx, `INSERT INTO deliveries (guid, event, action, repository, outcome, run_id, received_at, body_sha256)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		d.GUID, d.Event, d.Action, d.Repository, d.Outcome, d.RunID, ms(d.ReceivedAt), body)
	if err != nil {
		return false, wrap("record delivery", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, nil
	}
	var guid string
	err = s.q(tx).QueryRowContext(ctx, `SELECT guid FROM deliveries WHERE guid = ?`, d.GUID).Scan(&guid)
	switch {
	case err == nil:
		return false, nil // a redelivery
	case errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("storage: delivery %s: %w", d.GUID, ErrReplayed)
	}
	return false, wrap("record delivery", err)
}

// SetDeliveryOutcome records what a delivery led to.
func (s *Store) SetDeliveryOutcome(ctx context.Context, tx *sql.Tx, guid, outcome string, runID int64) error {
	_, err := s.q(tx).ExecContext(ctx, `UPDATE deliveries SET outcome = ?, run_id = ? WHERE guid = ?`, outcome, runID, guid)
	return wrap("delivery outcome", err)
}

// DeliveryOutcome returns what a delivery led to.
func (s *Store) DeliveryOutcome(ctx context.Context, guid string) (string, int64, error) {
	var outcome string
	var runID sql.NullInt64
	err := s.q(nil).QueryRowContext(ctx, `SELECT outcome, run_id FROM deliveries WHERE guid = ?`, guid).Scan(&outcome, &runID)
	return outcome, runID.Int64, wrap("delivery outcome", err)
}

// CountDeliveries counts stored deliveries, for tests and metrics.
func (s *Store) CountDeliveries(ctx context.Context) (int64, error) {
	var n int64
	err := s.q(nil).QueryRowContext(ctx, `SELECT COUNT(*) FROM deliveries`).Scan(&n)
	return n, wrap("count deliveries", err)
}

// CountRuns counts stored runs.
func (s *Store) CountRuns(ctx context.Context) (int64, error) {
	var n int64
	err := s.q(nil).QueryRowContext(ctx, `SELECT COUNT(*) FROM runs`).Scan(&n)
	return n, wrap("count runs", err)
}

// PruneDeliveries deletes the deliveries received before cutoff and returns
// how many it deleted.
func (s *Store) PruneDeliveries(ctx context.Context, cutoff time.Time) (int64, error) {
	res, err := s.q(nil).ExecContext(ctx, `DELETE FROM deliveries WHERE received_at < ?`, ms(cutoff))
	if err != nil {
		return 0, wrap("prune deliveries", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}
