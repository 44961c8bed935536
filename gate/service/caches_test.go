package service

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func testContainment(t *testing.T) (Containment, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "memgate-caches-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c := NewContainment(context.Background(), dir, ToolchainEnv(os.Getenv))
	if !c.Sandboxed {
		t.Fatalf("no sandbox: %s", c.Why)
	}
	return c, dir
}

// The standard library's cache is built once, in a sandbox, and holds the
// compiled packages; the second gate finds it.
func TestSeedIsBuiltOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the standard library")
	}
	c, _ := testContainment(t)
	env := c.sandboxEnv(ToolchainEnv(os.Getenv), "/memgate/gocache")
	start := time.Now()
	seed, err := c.Caches.Seed(context.Background(), c, env)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	n := 0
	filepath.WalkDir(seed, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			n++
		}
		return nil
	})
	filepath.WalkDir(seed, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && n > 0 {
			st, _ := os.Stat(p)
			t.Logf("%s %v", p, st.Mode())
			n = -n
		}
		return nil
	})
	if n < 0 {
		n = -n
	}
	if n < 100 {
		t.Fatalf("the seed %s holds %d files", seed, n)
	}
	start = time.Now()
	if again, err := c.Caches.Seed(context.Background(), c, env); err != nil || again != seed {
		t.Fatalf("second seed: %s %v", again, err)
	}
	t.Logf("seed of %d files built in %s, found again in %s", n, first, time.Since(start))
}
