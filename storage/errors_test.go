package storage

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/memgate/memgate/storage/storagetest"
)

// A run stored twice under one key is a typed duplicate on either engine.
func TestUniqueViolationIsErrDuplicate(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		if _, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "abc")); err != nil {
			t.Fatal(err)
		}
		_, err := b.store.CreateRun(b.ctx, nil, newRun("acme/api", 1, "abc"))
		if !errors.Is(err, ErrDuplicate) || errors.Is(err, ErrUnavailable) {
			t.Fatalf("second insert of one key: %v, want ErrDuplicate", err)
		}
	})
}

// A body accepted under one delivery id is refused under another; the same
// id again is a redelivery; nothing of the replay is stored.
func TestReplayedBodyIsRefused(t *testing.T) {
	eachEngine(t, func(t *testing.T, b testBundle) {
		record := func(guid, body string) (bool, error) {
			var fresh bool
			err := b.store.Tx(b.ctx, func(tx *sql.Tx) error {
				var err error
				fresh, err = b.store.RecordDelivery(b.ctx, tx, Delivery{GUID: guid, Event: "pull_request", Outcome: "received", BodySHA256: body})
				return err
			})
			return fresh, err
		}
		if fresh, err := record("a", "h1"); !fresh || err != nil {
			t.Fatalf("first delivery: %v %v", fresh, err)
		}
		if fresh, err := record("a", "h1"); fresh || err != nil {
			t.Fatalf("redelivery: %v %v", fresh, err)
		}
		if _, err := record("b", "h1"); !errors.Is(err, ErrReplayed) {
			t.Fatalf("the same body under another id: %v, want ErrReplayed", err)
		}
		// Deliveries recorded without a body (before the column) never clash.
		for _, guid := range []string{"c", "d"} {
			if fresh, err := record(guid, ""); !fresh || err != nil {
				t.Fatalf("delivery %s without a body hash: %v %v", guid, fresh, err)
			}
		}
		if n, _ := b.store.CountDeliveries(b.ctx); n != 3 {
			t.Fatalf("%d deliveries stored, want 3 (the replay stores nothing)", n)
		}
	})
}

// A closed database, a Postgres whose host went away, and a SQLite file
// locked by another writer past the deadline are all ErrUnavailable.
func TestUnreachableDatabaseIsErrUnavailable(t *testing.T) {
	tx := func(st *Store, ctx context.Context) error {
		return st.Tx(ctx, func(tx *sql.Tx) error {
			_, err := st.RecordDelivery(ctx, tx, Delivery{GUID: "g", Event: "ping", Outcome: "received"})
			return err
		})
	}
	t.Run("closed", func(t *testing.T) {
		b := open(t, "sqlite:"+filepath.Join(t.TempDir(), "m.db"))
		b.store.Close()
		if err := tx(b.store, b.ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("closed database: %v", err)
		}
	})
	t.Run("sqlite-locked", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "m.db")
		b := open(t, "sqlite:"+path)
		other, err := sql.Open("sqlite", "file:"+path)
		if err != nil {
			t.Fatal(err)
		}
		defer other.Close()
		conn, err := other.Conn(b.ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := conn.ExecContext(b.ctx, "BEGIN IMMEDIATE"); err != nil {
			t.Fatal(err)
		}
		defer conn.ExecContext(b.ctx, "ROLLBACK")
		ctx, cancel := context.WithTimeout(b.ctx, 300*time.Millisecond)
		defer cancel()
		if err := tx(b.store, ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("locked database: %v", err)
		}
	})
	t.Run("postgres-unplugged", func(t *testing.T) {
		base := os.Getenv("MEMGATE_TEST_DATABASE_URL")
		if base == "" {
			t.Skip("MEMGATE_TEST_DATABASE_URL is not set")
		}
		url, unplug := storagetest.Unpluggable(t, storagetest.Database(t, base))
		b := open(t, url)
		if err := tx(b.store, b.ctx); err != nil {
			t.Fatalf("before unplugging: %v", err)
		}
		unplug()
		if err := tx(b.store, b.ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unplugged: %v", err)
		}
		// A query outside a transaction is classified too.
		if _, err := b.store.CountDeliveries(b.ctx); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("unplugged, count: %v", err)
		}
	})
}
