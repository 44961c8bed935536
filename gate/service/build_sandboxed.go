package service

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/memgate/memgate/gate/sandbox"
)

// BuildSandbox is how a gate's build runs contained: the module download
// with the network and write access to the shared module cache, as the
// fetch user, running only the go command; then the compile (go build or
// build.command: the repository's code) without network, as the gate's
// build user, seeing the module cache read-only, the standard library's
// cache under a layer of its own, and its source under a layer of its own
// (writes to the checkout land in Scratch, not in the checkout).
type BuildSandbox struct {
	Containment Containment
	Identity    sandbox.Identity // the gate's build user
	// Scratch is the gate's private directory (memgate's); layers, roots
	// and the output go under it.
	Scratch string
	// Tenant owns the repository (its module cache is its own).
	Tenant string
}

// SourceUpper is the build's writes to its checkout: the service sees the
// checkout with them on top.
func (b *BuildSandbox) SourceUpper() string { return filepath.Join(b.Scratch, "src-upper") }

func (b *BuildSandbox) build(ctx context.Context, spec BuildSpec, overlay string) (string, error) {
	caches := b.Containment.Caches
	env := b.Containment.sandboxEnv(spec.ToolEnv, goCacheInside)
	seed, err := b.Containment.Seed(ctx, spec.ToolEnv)
	if err != nil {
		return "", err
	}
	modCache, err := caches.TenantModCache(b.Tenant)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrContainment, err)
	}
	env = append(env, "GOMODCACHE="+modCache)
	out := NewTail(64 << 10)
	if needsDownload(spec) {
		if err := b.download(ctx, spec, env, modCache, out); err != nil {
			return out.String(), err
		}
	}
	// The build's cache starts from the tenant's dependency cache (the seed
	// plus the compiled dependencies) when memgate could prepare it: a
	// go build of a module, not a build.command, whose packages it cannot
	// tell.
	base := seed
	if spec.Command == "" && fileExists(filepath.Join(spec.Dir, "go.mod")) {
		deps, err := caches.TenantBuildCache(b.Tenant, seed)
		if err != nil {
			return out.String(), fmt.Errorf("%w: %v", ErrContainment, err)
		}
		b.warmDependencies(ctx, spec, env, modCache, deps, out)
		base = deps
	}
	dirs := map[string]string{}
	// Every attempt starts from fresh directories: when the reader does not
	// compile the build runs again, and what the first attempt left there
	// (symlinks in its cache tree, say) is not to be walked as root.
	for _, d := range []string{"src-upper", "src-work", "gocache-upper", "gocache-work", "out", "gocache"} {
		if err := os.RemoveAll(filepath.Join(b.Scratch, d)); err != nil {
			return "", fmt.Errorf("%w: clear the previous attempt: %v", ErrContainment, err)
		}
	}
	for _, d := range []string{"src-upper", "src-work", "gocache-upper", "gocache-work", "out"} {
		dirs[d] = filepath.Join(b.Scratch, d)
		if err := prepareOwned(dirs[d], b.Identity); err != nil {
			return "", fmt.Errorf("%w: %v", ErrContainment, err)
		}
	}
	if err := ownModFiles(spec.Dir, dirs["src-upper"], b.Identity); err != nil {
		return "", fmt.Errorf("%w: %v", ErrContainment, err)
	}
	root, err := b.newRoot("build")
	if err != nil {
		return "", err
	}
	name, args, extra := buildCommand(spec, overlay)
	full := withEnv(env, append([]string{"GOPROXY=off"}, extra...)...)
	binds := append(sandbox.ToolchainBinds(b.Containment.GoRoot),
		sandbox.Bind{Source: modCache},
		sandbox.Bind{Source: dirs["out"], Writable: true})
	if overlay != "" {
		binds = append(binds, sandbox.Bind{Source: filepath.Dir(overlay)})
	}
	// In GOPATH mode the checkout is seen at its place in the GOPATH; the
	// service sees the build's writes (src-upper) over it wherever it is.
	overlays := []sandbox.Overlay{{Target: buildDir(spec), Lowers: []string{spec.Dir}, Upper: dirs["src-upper"], Work: dirs["src-work"]}}
	if b.Identity.Set() {
		// As root the seed's files belong to the fetch user, whose
		// directories the build's user may not write through an overlay:
		// its cache is a tree of its own, of hard links to the seed's
		// files, which it can read but not change.
		cache := filepath.Join(b.Scratch, "gocache")
		if err := linkTree(base, cache, b.Identity); err != nil {
			return "", fmt.Errorf("%w: the build's cache: %v", ErrContainment, err)
		}
		binds = append(binds, sandbox.Bind{Source: cache, Target: goCacheInside, Writable: true})
	} else {
		overlays = append(overlays, sandbox.Overlay{Target: goCacheInside, Lowers: []string{base}, Upper: dirs["gocache-upper"], Work: dirs["gocache-work"]})
	}
	sp := sandbox.Spec{
		Path: name, Args: args, Env: full, Dir: buildDir(spec), Root: root, Files: sandbox.SystemFiles(),
		TmpBytes: 2 << 30, Binds: binds, Overlays: overlays,
		Identity: b.Identity, MaxProcesses: 4096, Stdout: out, Stderr: out,
	}
	err = runSandbox(ctx, sp, spec.Timeout)
	if err != nil && !errors.Is(err, ErrBuild) && !errors.Is(err, ErrContainment) && ctx.Err() == nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			err = fmt.Errorf("%w: %v", ErrBuild, err)
		}
	}
	return out.String(), err
}

// download fetches the modules the build needs, with the network, into the
// shared module cache. Only the go command runs here, with memgate's
// toolchain settings: nothing of build.env (GOFLAGS, GIT_* variables…),
// which is the repository's.
func (b *BuildSandbox) download(ctx context.Context, spec BuildSpec, env []string, modCache string, out *Tail) error {
	root, err := b.newRoot("download")
	if err != nil {
		return err
	}
	caches := b.Containment.Caches
	sp := sandbox.Spec{
		Path: "go", Args: []string{"mod", "download"}, Dir: spec.Dir, Root: root, Files: sandbox.SystemFiles(),
		Env:      append(append([]string(nil), env...), "GOCACHE=/tmp/gocache", "GOFLAGS=-mod=mod"),
		TmpBytes: 1 << 30, HostNetwork: true,
		Binds: append(sandbox.ToolchainBinds(b.Containment.GoRoot),
			sandbox.Bind{Source: spec.Dir}, sandbox.Bind{Source: modCache, Writable: true}),
		Identity: caches.fetch, MaxProcesses: 4096, Stdout: out, Stderr: out,
	}
	if err := runSandbox(ctx, sp, spec.Timeout); err != nil {
		if errors.Is(err, ErrContainment) {
			return err
		}
		return fmt.Errorf("%w: go mod download: %v", ErrBuild, err)
	}
	return nil
}

// newRoot makes an empty directory for a sandbox's tree.
func (b *BuildSandbox) newRoot(name string) (string, error) {
	dir := filepath.Join(b.Scratch, "root-"+name+"-"+fmt.Sprint(time.Now().UnixNano()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		return "", fmt.Errorf("%w: %v", ErrContainment, err)
	}
	return dir, nil
}

// needsDownload: a module build without vendored dependencies.
func needsDownload(spec BuildSpec) bool {
	if _, err := os.Stat(filepath.Join(spec.Dir, "go.mod")); err != nil {
		return false
	}
	return !hasVendor(spec)
}

func hasVendor(spec BuildSpec) bool {
	_, err := os.Stat(filepath.Join(spec.Dir, "vendor", "modules.txt"))
	return err == nil
}

// linkTree makes dst a copy of src's directories, owned by id, holding
// hard links to src's files (copies where src is on another filesystem).
// The files stay the fetch user's, read-only to id; src's own trim
// bookkeeping is left out.
func linkTree(src, dst string, id sandbox.Identity) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			if err := os.Mkdir(target, 0o755); err != nil && !os.IsExist(err) {
				return err
			}
			if !id.Set() {
				return nil
			}
			return os.Lchown(target, id.UID, id.GID)
		case !d.Type().IsRegular() || rel == "trim.txt":
			return nil
		}
		// A file others may write (a seed made under a umask of 0) would
		// let the build write the seed through its link: it gets a copy.
		if info, err := d.Info(); err != nil || info.Mode().Perm()&0o022 != 0 {
			return copyRegular(p, target, 0o444)
		}
		if err := os.Link(p, target); err == nil {
			return nil
		}
		return copyRegular(p, target, 0o444)
	})
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// ownModFiles gives the build's user its own go.mod and go.sum (copies in
// the source's upper layer, which hides the originals): build.flags
// -mod=mod makes the go command update them, and the checkout's files are
// memgate's, which the build's user may not write through the overlay.
func ownModFiles(src, upper string, id sandbox.Identity) error {
	if !fileExists(filepath.Join(src, "go.mod")) {
		return nil
	}
	for _, name := range []string{"go.mod", "go.sum"} {
		dst := filepath.Join(upper, name)
		in, err := openRegular(filepath.Join(src, name))
		switch {
		case err == nil:
			err = writeFrom(dst, in)
			in.Close()
		case name == "go.sum" && os.IsNotExist(err):
			err = writeFrom(dst, strings.NewReader(""))
		default:
			continue // not a regular file: the build sees it as it is
		}
		if err != nil {
			return fmt.Errorf("the build's %s: %w", name, err)
		}
		if id.Set() {
			if err := os.Lchown(dst, id.UID, id.GID); err != nil {
				return err
			}
		}
	}
	return nil
}

func writeFrom(dst string, r io.Reader) error {
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, io.LimitReader(r, 64<<20)); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
