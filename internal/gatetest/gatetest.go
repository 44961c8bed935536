// Package gatetest holds what tests that run real gates share: the
// containment memgate would use on this machine.
package gatetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/memgate/memgate/gate/service"
)

var (
	once sync.Once
	cont service.Containment
)

// CacheDir is where test gates keep their Go caches: shared by every test
// package of this user, so the standard library is compiled once.
func CacheDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("memgate-test-cache-%d", os.Geteuid()))
}

// Containment is this machine's containment for gates, made once per test
// binary. A test that needs a sandbox and gets none fails: tests run where
// memgate is meant to contain code (CI is root; user namespaces are on).
func Containment(t testing.TB) service.Containment {
	t.Helper()
	once.Do(func() {
		cont = service.NewContainment(context.Background(), CacheDir(), service.ToolchainEnv(os.Getenv))
	})
	if !cont.Sandboxed {
		t.Fatalf("no sandbox on this machine: %s", cont.Why)
	}
	return cont
}

// WorkDir is a scratch parent a root memgate's sandbox users can walk
// through (t.TempDir is private to its owner), removed after the test.
func WorkDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "memgate-test-work-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o711)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}
