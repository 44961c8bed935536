package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// testContainment prepares caches in a directory of the test's own.
func testContainment(t *testing.T) (Containment, string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "memgate-caches-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return containmentIn(t, dir), dir
}

// containmentIn prepares caches in dir.
func containmentIn(t *testing.T, dir string) Containment {
	t.Helper()
	c := NewContainment(context.Background(), dir, ToolchainEnv(os.Getenv))
	if !c.Sandboxed {
		t.Fatalf("no sandbox: %s", c.Why)
	}
	return c
}

// The standard library's cache is built once, in a sandbox, and holds the
// compiled packages; the second gate finds it.
func TestSeedIsBuiltOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the standard library")
	}
	// The cache directory the gate tests share (internal/gatetest's): the
	// standard library is compiled once per test run, by whoever is first.
	c := containmentIn(t, filepath.Join(os.TempDir(), fmt.Sprintf("memgate-test-cache-%d", os.Geteuid())))
	env := c.sandboxEnv(ToolchainEnv(os.Getenv), goCacheInside)
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
	if n < 100 {
		t.Fatalf("the seed %s holds %d files", seed, n)
	}
	start = time.Now()
	if again, err := c.Caches.Seed(context.Background(), c, env); err != nil || again != seed {
		t.Fatalf("second seed: %s %v", again, err)
	}
	t.Logf("seed of %d files built in %s, found again in %s", n, first, time.Since(start))
}

// A sandbox's user owns what is inside the caches; if a cache directory is
// swapped for a symlink (to, say, a root-owned directory of binaries), the
// next memgate refuses it and changes nothing where it points.
func TestCacheDirectorySwappedForASymlinkIsRefused(t *testing.T) {
	for _, sub := range []string{"mod", "seed"} {
		t.Run(sub, func(t *testing.T) {
			c, dir := testContainment(t)
			victim := t.TempDir()
			before, _ := os.Lstat(victim)
			os.Rename(filepath.Join(dir, sub), filepath.Join(dir, sub+".old"))
			if err := os.Symlink(victim, filepath.Join(dir, sub)); err != nil {
				t.Fatal(err)
			}
			if _, err := OpenCaches(dir, c); err == nil {
				t.Fatalf("caches with %s a symlink were opened", sub)
			}
			after, _ := os.Lstat(victim)
			if after.Sys().(*syscall.Stat_t).Uid != before.Sys().(*syscall.Stat_t).Uid || after.Mode() != before.Mode() {
				t.Fatalf("the symlink's target changed: %v -> %v", before.Mode(), after.Mode())
			}
		})
	}
}

// Each owner's modules are in a cache of its own, named so that no owner's
// name can reach outside the module cache or another owner's.
func TestTenantModCachesAreApart(t *testing.T) {
	c, _ := testContainment(t)
	a, err := c.Caches.TenantModCache("acme")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := c.Caches.TenantModCache("other")
	evil, _ := c.Caches.TenantModCache("../../etc")
	local, _ := c.Caches.TenantModCache("")
	for _, d := range []string{a, b, evil, local} {
		if filepath.Dir(d) != c.Caches.ModCache() {
			t.Errorf("%s is not directly under %s", d, c.Caches.ModCache())
		}
	}
	if a == b || a == local || b == evil {
		t.Errorf("tenants share a cache: %s %s %s %s", a, b, evil, local)
	}
}
