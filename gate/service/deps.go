package service

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/memgate/memgate/gate/sandbox"
)

// A tenant's dependency cache holds the compiled third-party packages of
// its repositories, so that a gate does not compile them again: without
// it, a gin service's build took 19 s per gate instead of 0.5 s.
//
// It is trusted because only a step memgate controls writes it: the go
// command compiling the packages of modules other than the main one (go
// list, then go build of that list), as the fetch user, without network,
// with memgate's toolchain settings and nothing of the repository's config
// (no build.flags, build.env or build.command: no -toolexec, no code of the
// repository's running). The compiler's outputs are keyed by their inputs'
// hashes, so a package a repository replaced with its own code has entries
// of its own and cannot stand in for the real one. The gate's own build
// sees the cache read-only, like the seed, which it starts from.

// TenantBuildCache is the tenant's dependency cache, made on first use
// from the seed (hard links: the standard library is not compiled again).
func (c *Caches) TenantBuildCache(tenant, seed string) (string, error) {
	parent := filepath.Join(c.dir, "deps")
	if err := c.ownedDir(parent); err != nil {
		return "", err
	}
	dir := filepath.Join(parent, "tenant-"+tenantKey(tenant)+"-"+filepath.Base(seed))
	return dir, makeOnce(dir, filepath.Join(parent, "seed.lock"), func() error {
		if err := linkTree(seed, dir, c.fetch); err != nil {
			return fmt.Errorf("caches: %w", err)
		}
		return nil
	})
}

// warmDependencies compiles the build's third-party packages into the
// tenant's dependency cache. It is best effort: where it cannot (a go.mod
// that needs updating, a package that does not compile) the gate's build
// compiles them itself and says why.
func (b *BuildSandbox) warmDependencies(ctx context.Context, spec BuildSpec, env []string, modCache, deps string, out *Tail) {
	// build.package is the repository's: a directory path, never a flag
	// ("-toolexec=…" would run its command in this trusted step).
	if !strings.HasPrefix(spec.Package, ".") {
		fmt.Fprintf(out, "memgate: dependencies not prebuilt: build.package %q is not a directory path\n", spec.Package)
		return
	}
	list, msgs := NewTail(1<<20), NewTail(16<<10)
	mode := vendorMode(spec)
	err := b.fetchStep(ctx, spec, env, modCache, deps, list, msgs, append(append([]string{"list"}, mode...),
		"-deps", "-f", "{{if and .Module (not .Module.Main) (not .Standard)}}{{.ImportPath}}{{end}}", "--", spec.Package)...)
	if err != nil {
		fmt.Fprintf(out, "memgate: dependencies not prebuilt (go list: %v): %s\n", err, LastLines(msgs.String(), 3))
		return
	}
	names := strings.Fields(list.String())
	if len(names) == 0 {
		return
	}
	msgs = NewTail(16 << 10)
	if err := b.fetchStep(ctx, spec, env, modCache, deps, msgs, msgs, append(append(append([]string{"build"}, mode...), "--"), names...)...); err != nil {
		fmt.Fprintf(out, "memgate: dependencies not prebuilt (go build: %v): %s\n", err, LastLines(msgs.String(), 3))
	}
}

// fetchStep runs the go command as the fetch user, without network, over
// the read-only source and module cache, writing the dependency cache.
func (b *BuildSandbox) fetchStep(ctx context.Context, spec BuildSpec, env []string, modCache, deps string, stdout, stderr *Tail, args ...string) error {
	root, err := b.newRoot("deps")
	if err != nil {
		return err
	}
	sp := sandbox.Spec{
		Path: "go", Args: args, Dir: spec.Dir, Root: root, Files: sandbox.SystemFiles(),
		Env:      append(append([]string(nil), env...), "GOPROXY=off"),
		TmpBytes: 1 << 30,
		Binds: append(sandbox.ToolchainBinds(b.Containment.GoRoot), sandbox.Bind{Source: spec.Dir},
			sandbox.Bind{Source: modCache}, sandbox.Bind{Source: deps, Target: goCacheInside, Writable: true}),
		Identity: b.Containment.Caches.fetch, MaxProcesses: 4096, Stdout: stdout, Stderr: stderr,
	}
	return runSandbox(ctx, sp, spec.Timeout)
}
