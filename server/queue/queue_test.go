package queue

import (
	"context"
	"database/sql"
	"github.com/memgate/memgate/storage/storagetest"
	"os"
	"path/filepath"
	"testing"

	"github.com/memgate/memgate/storage"
)

// The queue on both engines: migrations apply, a job commits with the
// caller's transaction, an equal job is a duplicate, and a rolled-back
// transaction leaves no job.
func TestEnqueueInTheCallersTransaction(t *testing.T) {
	for _, tc := range []struct{ name, url string }{
		{"sqlite", "sqlite:" + filepath.Join(t.TempDir(), "q.db")},
		{"postgres", os.Getenv("MEMGATE_TEST_DATABASE_URL")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.url == "" {
				t.Skip("MEMGATE_TEST_DATABASE_URL is not set: Postgres half skipped")
			}
			url := tc.url
			if tc.name == "postgres" {
				url = storagetest.Database(t, tc.url)
			}
			ctx := context.Background()
			st, err := storage.Open(ctx, url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			pg := st.Engine() == storage.Postgres
			if err := Migrate(ctx, st.DB(), pg); err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			cfg.Workers, cfg.Postgres = 0, pg
			q, err := New(st.DB(), nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			args := GateArgs{RunID: 1, Repository: "acme/api", PR: 3, HeadSHA: "abc", Attempt: 0}
			var first int64
			err = st.Tx(ctx, func(tx *sql.Tx) error {
				id, dup, err := q.EnqueueTx(ctx, tx, args)
				first = id
				if dup {
					t.Error("first job reported as a duplicate")
				}
				return err
			})
			if err != nil || first == 0 {
				t.Fatalf("enqueue: %v (id %d)", err, first)
			}
			st.Tx(ctx, func(tx *sql.Tx) error {
				args.RunID = 2 // a different run of the same head and attempt
				_, dup, err := q.EnqueueTx(ctx, tx, args)
				if err != nil || !dup {
					t.Errorf("same head and attempt: dup=%v err=%v", dup, err)
				}
				return err
			})
			st.Tx(ctx, func(tx *sql.Tx) error {
				q.EnqueueTx(ctx, tx, GateArgs{RunID: 3, Repository: "acme/api", PR: 3, HeadSHA: "def"})
				return sql.ErrTxDone // roll back
			})
			waiting, running, err := q.Depth(ctx, st.DB())
			if err != nil || waiting != 1 || running != 0 {
				t.Fatalf("depth: waiting %d running %d err %v", waiting, running, err)
			}
			if err := st.Tx(ctx, func(tx *sql.Tx) error { return q.CancelTx(ctx, tx, first) }); err != nil {
				t.Fatal(err)
			}
			if waiting, _, _ := q.Depth(ctx, st.DB()); waiting != 0 {
				t.Fatalf("a cancelled job still waits: %d", waiting)
			}
		})
	}
}
