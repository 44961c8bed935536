package storagetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"net/url"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver
)

// Database creates a fresh Postgres database for one test on the
// server that base names, drops it when the test ends, and returns its URL.
func Database(t testing.TB, base string) string {
	t.Helper()
	admin, err := sql.Open("pgx", base)
	if err != nil {
		t.Fatalf("test database: %v", err)
	}
	defer admin.Close()
	buf := make([]byte, 6)
	rand.Read(buf)
	name := "memgate_test_" + hex.EncodeToString(buf)
	if _, err := admin.ExecContext(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("test database: create %s on %s: %v", name, redacted(base), err)
	}
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("test database: %v", err)
	}
	u.Path = "/" + name
	t.Cleanup(func() {
		admin, err := sql.Open("pgx", base)
		if err != nil {
			return
		}
		defer admin.Close()
		admin.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
	})
	return u.String()
}

// redacted hides a database URL's password in messages.
func redacted(base string) string {
	if i := strings.Index(base, "@"); i >= 0 {
		if j := strings.Index(base, "://"); j >= 0 && j < i {
			return base[:j+3] + "***" + base[i:]
		}
	}
	return base
}
