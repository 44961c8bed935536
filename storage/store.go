// Package storage keeps gate runs, their samples and profiles, and webhook
// deliveries in SQL: SQLite by default (one file, WAL mode, one writer), or
// Postgres. Queries are plain SQL next to the code that runs them.
package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
	"github.com/pressly/goose/v3"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/memgate/memgate/migrations"
)

// Engine names a database engine.
type Engine string

// Supported engines.
const (
	SQLite   Engine = "sqlite"
	Postgres Engine = "postgres"
)

// Store is memgate's database.
type Store struct {
	db     *sql.DB
	engine Engine
	log    *slog.Logger
}

// Open opens the database a URL names: "sqlite:PATH" (or "sqlite::memory:")
// or "postgres://...".
func Open(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	switch {
	case strings.HasPrefix(url, "sqlite:"):
		return openSQLite(ctx, strings.TrimPrefix(url, "sqlite:"), log)
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return openPostgres(ctx, url, log)
	}
	return nil, fmt.Errorf("storage: database URL %q: want sqlite:PATH or postgres://...", redact(url))
}

func openSQLite(ctx context.Context, path string, log *slog.Logger) (*Store, error) {
	if path == "" {
		return nil, errors.New("storage: sqlite: empty path")
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=busy_timeout(10000)&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	// SQLite has one writer; River's SQLite driver asks for a single
	// connection so that its own operations never meet SQLITE_BUSY.
	db.SetMaxOpenConns(1)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	return &Store{db: db, engine: SQLite, log: log}, nil
}

func openPostgres(ctx context.Context, url string, log *slog.Logger) (*Store, error) {
	db, err := sql.Open("pgx", url)
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", redact(url), err)
	}
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(4)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("storage: open %s: %w", redact(url), err)
	}
	return &Store{db: db, engine: Postgres, log: log}, nil
}

// DB is the underlying pool, shared with the job queue so that a delivery
// and its job commit in one transaction.
func (s *Store) DB() *sql.DB { return s.db }

// Engine says which database this is.
func (s *Store) Engine() Engine { return s.engine }

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Migrate applies memgate's own migrations (not the queue's).
func (s *Store) Migrate(ctx context.Context) error {
	p, err := s.migrations()
	if err != nil {
		return err
	}
	results, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("storage: migrate: %w", err)
	}
	for _, r := range results {
		s.log.Info("migrated", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}

// migrations is the engine's migrations, ready to apply.
func (s *Store) migrations() (*goose.Provider, error) {
	files, dir, dialect := migrations.SQLite, "sqlite", goose.DialectSQLite3
	if s.engine == Postgres {
		files, dir, dialect = migrations.Postgres, "postgres", goose.DialectPostgres
	}
	sub, err := fs.Sub(files, dir)
	if err != nil {
		return nil, err
	}
	p, err := goose.NewProvider(dialect, s.db, sub)
	if err != nil {
		return nil, fmt.Errorf("storage: migrations: %w", err)
	}
	return p, nil
}

// Tx runs fn in a transaction, committed when fn returns nil.
func (s *Store) Tx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		// A transaction that cannot even begin found no connection to
		// begin it on (closed pool, refused, timed out) or, on SQLite, no
		// write lock within the busy timeout: the database is unavailable,
		// whatever the driver's error type.
		return fmt.Errorf("storage: begin: %w: %w", ErrUnavailable, err)
	}
	if err := fn(tx); err != nil {
		tx.Rollback()
		// fn's errors come from this store, which classified them, and
		// from others sharing the transaction (the job queue), which did
		// not.
		return classify(err)
	}
	if err := tx.Commit(); err != nil {
		return wrap("commit", err)
	}
	return nil
}

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// q returns the transaction when there is one, else the pool. Queries are
// written with ? placeholders; on Postgres they become $1, $2, ...
func (s *Store) q(tx *sql.Tx) querier {
	var q querier = s.db
	if tx != nil {
		q = tx
	}
	if s.engine == Postgres {
		return rebinding{q}
	}
	return q
}

type rebinding struct{ q querier }

func (r rebinding) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return r.q.ExecContext(ctx, rebind(query), args...)
}

func (r rebinding) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.q.QueryContext(ctx, rebind(query), args...)
}

func (r rebinding) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.q.QueryRowContext(ctx, rebind(query), args...)
}

// rebind turns ? placeholders into $1, $2, ... (memgate's queries have no
// ? inside string literals).
func rebind(query string) string {
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func redact(url string) string {
	if i := strings.Index(url, "@"); i >= 0 {
		if j := strings.Index(url, "://"); j >= 0 && j < i {
			return url[:j+3] + "***" + url[i:]
		}
	}
	return url
}
