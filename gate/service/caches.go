package service

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/memgate/memgate/gate/sandbox"
)

// Caches are the Go caches gates share, kept so that nothing a gate's code
// can write is trusted by a later gate:
//
//   - the module cache, written only by the go command's download step
//     (its own user when memgate is root), shown read-only to builds and not
//     at all to services; the go command checks what it holds against each
//     module's go.sum before using it;
//   - the standard library's build cache (the "seed"), built once per
//     toolchain from GOROOT alone, shown read-only; each gate's build writes
//     a cache layered over it (overlayfs), thrown away with the gate.
//
// Every directory here is made by memgate and checked with Lstat before use:
// a symlink in its place is refused, never followed.
type Caches struct {
	dir   string
	fetch sandbox.Identity
}

// OpenCaches prepares the caches under dir (created 0711 when missing).
func OpenCaches(dir string, c Containment) (*Caches, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(abs, 0o711); err != nil {
		return nil, fmt.Errorf("caches: %w", err)
	}
	// Ours, and a directory: not something another user of a shared temp
	// directory made in its place.
	if err := mustBeDir(abs, os.Geteuid()); err != nil {
		return nil, err
	}
	if c.Root {
		os.Chmod(abs, 0o711)
	}
	cs := &Caches{dir: abs, fetch: c.fetchIdentity()}
	for _, sub := range []string{"mod", "seed"} {
		if err := cs.ownedDir(filepath.Join(abs, sub)); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// ownedDir makes dir (or checks it) a directory owned by the fetch user.
func (c *Caches) ownedDir(dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("caches: %w", err)
	}
	uid := -1
	if c.fetch.Set() {
		uid = c.fetch.UID
	}
	if err := mustBeDir(dir, -1); err != nil {
		return err
	}
	if uid >= 0 {
		if err := os.Lchown(dir, c.fetch.UID, c.fetch.GID); err != nil {
			return fmt.Errorf("caches: %w", err)
		}
	}
	return nil
}

// mustBeDir refuses anything but a real directory (owned by uid, if >= 0).
func mustBeDir(dir string, uid int) error {
	st, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("caches: %w", err)
	}
	if st.Mode()&os.ModeSymlink != 0 || !st.IsDir() {
		return fmt.Errorf("caches: %s is not a directory (a symlink or a file in its place is not followed)", dir)
	}
	if uid >= 0 {
		if s, ok := st.Sys().(*syscall.Stat_t); ok && int(s.Uid) != uid {
			return fmt.Errorf("caches: %s is owned by uid %d, not %d", dir, s.Uid, uid)
		}
	}
	return nil
}

// ModCache is the module cache's root (the seed's builds see an empty one).
func (c *Caches) ModCache() string { return filepath.Join(c.dir, "mod") }

// TenantModCache is the module cache of one tenant (a repository owner in
// memgate serve; "" for memgate check), made on first use: a module one
// owner's gate downloaded — a private one, fetched with the worker's
// credentials — is not in reach of another owner's build.
func (c *Caches) TenantModCache(tenant string) (string, error) {
	dir := filepath.Join(c.ModCache(), "tenant-"+tenantKey(tenant))
	return dir, c.ownedDir(dir)
}

// tenantKey names a tenant's directory: readable, and nothing but
// [a-z0-9-] whatever the owner's name holds.
func tenantKey(tenant string) string {
	if tenant == "" {
		return "local"
	}
	h := sha256.Sum256([]byte(strings.ToLower(tenant)))
	var b strings.Builder
	for _, r := range strings.ToLower(tenant) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			b.WriteRune(r)
		}
		if b.Len() >= 40 {
			break
		}
	}
	return b.String() + "-" + hex.EncodeToString(h[:4])
}

// Seed returns the standard library's build cache for this toolchain and
// environment, building it once (a lock file keeps two gates from building
// it together). It is built from GOROOT alone, in a sandbox without
// network, so nothing of any repository is in it.
func (c *Caches) Seed(ctx context.Context, cont Containment, env []string) (string, error) {
	dir := filepath.Join(c.dir, "seed", seedKey(cont.GoRoot, env))
	return dir, makeOnce(dir, filepath.Join(c.dir, "seed.lock"), func() error {
		if err := c.ownedDir(dir); err != nil {
			return err
		}
		root, err := os.MkdirTemp(c.dir, "seed-root-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(root)
		os.Chmod(root, 0o755)
		tail := NewTail(16 << 10)
		sp := sandbox.Spec{
			Path: "go", Args: []string{"build", "std"}, Dir: "/tmp",
			Env:  seedEnv(env, c.ModCache(), dir),
			Root: root, Files: sandbox.SystemFiles(), TmpBytes: 1 << 30,
			Binds:    append(sandbox.ToolchainBinds(cont.GoRoot), sandbox.Bind{Source: dir, Writable: true}),
			Identity: c.fetch, Stdout: tail, Stderr: tail,
		}
		if err := runSandbox(ctx, sp, 10*time.Minute); err != nil {
			return fmt.Errorf("%w: building the standard library's cache: %v: %s", ErrContainment, err, LastLines(tail.String(), 10))
		}
		// A seed that holds nothing (the build wrote elsewhere) is no seed.
		if entries, err := os.ReadDir(dir); err != nil || len(entries) < 16 {
			return fmt.Errorf("%w: the standard library's cache came out empty", ErrContainment)
		}
		return nil
	})
}

// makeOnce makes dir with make unless its done marker says it is made; a
// lock file keeps two gates from making it together, and a dir left half
// made (no marker) is made again.
func makeOnce(dir, lockPath string, make func() error) error {
	done := dir + ".done"
	if _, err := os.Lstat(done); err == nil {
		return mustBeDir(dir, -1)
	}
	lock, err := os.OpenFile(lockPath, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("caches: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("caches: %w", err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Lstat(done); err == nil {
		return nil
	}
	os.RemoveAll(dir)
	if err := make(); err != nil {
		return err
	}
	return os.WriteFile(done, nil, 0o644)
}

// seedEnv is a build environment whose cache is the seed itself.
func seedEnv(env []string, modCache, cache string) []string {
	var out []string
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k != "GOCACHE" && k != "GOMODCACHE" {
			out = append(out, kv)
		}
	}
	return append(out, "GOCACHE="+cache, "GOMODCACHE="+modCache, "GOPROXY=off")
}

// seedKey names a seed by what its cache keys depend on.
func seedKey(goroot string, env []string) string {
	h := sha256.New()
	fmt.Fprintln(h, "seed v2", goroot)
	if v, err := os.ReadFile(filepath.Join(goroot, "VERSION")); err == nil {
		h.Write(v)
	}
	for _, kv := range env {
		for _, k := range []string{"CGO_ENABLED=", "CC=", "CXX=", "PATH=", "GOFLAGS=", "GOEXPERIMENT="} {
			if strings.HasPrefix(kv, k) {
				fmt.Fprintln(h, kv)
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// runSandbox runs a sandbox to its end, killed at ctx's end or after limit.
func runSandbox(ctx context.Context, sp sandbox.Spec, limit time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	c, err := sandbox.Command(sp)
	if err != nil {
		return err
	}
	c.WaitDelay = 5 * time.Second
	if err := c.Start(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { c.Process.Signal(syscall.SIGKILL) })
	defer stop()
	if err := c.Release(); err != nil {
		c.Process.Kill()
		c.Wait()
		return err
	}
	err = c.Wait()
	if ctx.Err() != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return fmt.Errorf("%w: timed out after %s", ErrBuild, limit)
		}
		return context.Cause(ctx)
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() == 125 {
		return fmt.Errorf("%w: the sandbox could not be set up", ErrContainment)
	}
	return err
}

// Seed is the standard library's cache for builds with toolEnv, built on
// first use (see Caches.Seed).
func (c Containment) Seed(ctx context.Context, toolEnv []string) (string, error) {
	return c.Caches.Seed(ctx, c, c.sandboxEnv(toolEnv, goCacheInside))
}

// goCacheInside is where a build sees its Go build cache.
const goCacheInside = "/memgate/gocache"
