package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	sqlite3 "modernc.org/sqlite/lib"
)

// The classes of storage errors that callers act on. Errors are classified
// by their types and codes (the drivers' own), never by their text.
var (
	// ErrNotFound is returned for a run or profile that does not exist.
	ErrNotFound = errors.New("not found")
	// ErrUnavailable means the database could not be reached or did not
	// answer in time (connection refused or lost, timeouts, SQLite locked
	// past its busy timeout, Postgres shutting down or out of
	// connections): trying again later can succeed.
	ErrUnavailable = errors.New("database unavailable")
	// ErrDuplicate means a row with the same unique key already exists:
	// another writer got there first.
	ErrDuplicate = errors.New("already exists")
	// ErrReplayed is returned for a webhook delivery whose body was already
	// accepted under another delivery id.
	ErrReplayed = errors.New("body already accepted under another delivery id")
)

// wrap names the operation that failed and classifies the error.
func wrap(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("storage: %s: %w", what, classify(err))
}

// classify marks an error from a driver as ErrUnavailable or ErrDuplicate
// when it is one, keeping the driver's error in the chain.
func classify(err error) error {
	switch {
	case err == nil, errors.Is(err, ErrUnavailable), errors.Is(err, ErrDuplicate):
		return err
	case unavailable(err):
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	case duplicate(err):
		return fmt.Errorf("%w: %w", ErrDuplicate, err)
	}
	return err
}

// sqliteError is what modernc.org/sqlite's errors offer.
type sqliteError interface{ Code() int }

func unavailable(err error) bool {
	var netErr net.Error
	var connectErr *pgconn.ConnectError
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, driver.ErrBadConn), errors.Is(err, sql.ErrConnDone),
		errors.Is(err, io.ErrUnexpectedEOF), errors.As(err, &netErr), errors.As(err, &connectErr), pgconn.Timeout(err):
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && len(pgErr.Code) == 5 {
		switch pgErr.Code[:2] {
		case "08", "53": // connection exception; insufficient resources (too many connections)
			return true
		}
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", // shutting down, cannot connect now
			"57014", "55P03", "40001", "40P01": // statement timeout, lock not available, serialization, deadlock
			return true
		}
	}
	var liteErr sqliteError
	if errors.As(err, &liteErr) {
		switch liteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN,
			sqlite3.SQLITE_FULL, sqlite3.SQLITE_READONLY, sqlite3.SQLITE_NOMEM:
			return true
		}
	}
	return false
}

func duplicate(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Code == "23505" // unique_violation
	}
	var liteErr sqliteError
	if errors.As(err, &liteErr) {
		c := liteErr.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}
