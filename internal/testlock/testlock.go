// Package testlock serialises tests and benchmarks that run real gates
// across processes: `go test ./...` runs packages in parallel, and two gates
// sharing a 2-core machine disturb each other's numbers.
package testlock

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// Acquire blocks until this process holds the machine-wide gate lock; the
// returned func releases it.
func Acquire() (release func(), err error) {
	path := filepath.Join(os.TempDir(), "memgate-gate-tests.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("gate lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("gate lock: %w", err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// Gate holds the lock until the test ends.
func Gate(t testing.TB) {
	t.Helper()
	release, err := Acquire()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
}
