// Package testlock serialises tests that run real gates across test
// binaries: `go test ./...` runs packages in parallel, and two gates sharing
// a 2-core machine disturb each other's numbers.
package testlock

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Gate holds a machine-wide lock until the test ends.
func Gate(t testing.TB) {
	t.Helper()
	path := filepath.Join(os.TempDir(), "memgate-gate-tests.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatalf("test lock: %v", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		t.Fatalf("test lock: %v", err)
	}
	t.Cleanup(func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	})
}
