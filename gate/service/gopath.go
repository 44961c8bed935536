package service

import (
	"fmt"
	"go/build"
	"os"
	"path/filepath"
	"strings"
)

// A repository without go.mod (GOPATH-era, with or without vendor/) builds
// in GOPATH mode: GO111MODULE=off, with its source at
// $GOPATH/src/<import path>, where its imports of its own packages (and
// vendor/) resolve. Inside a sandbox that GOPATH is a directory of the
// sandbox's own (the checkout is mounted there); uncontained, a copy in the
// scratch directory.

// A repository can also be a GOPATH itself (a workspace): its packages
// under src/, imported by their paths below it ("tracker", not
// "github.com/you/tracker"), built by a Makefile with GOPATH=$PWD. Then
// the checkout is the GOPATH, and build.package points under src/.

// goPathInside is the build's GOPATH inside its sandbox.
const goPathInside = "/memgate/gopath"

// gopathMode: the repository has no go.mod, and either is a workspace or
// the build has an import path.
func gopathMode(spec BuildSpec) bool {
	return workspaceMode(spec) || spec.ImportPath != "" && !fileExists(filepath.Join(spec.Dir, "go.mod"))
}

// workspaceMode: the repository is a GOPATH workspace, by WorkspaceLayout.
func workspaceMode(spec BuildSpec) bool {
	return spec.Command == "" && WorkspaceLayout(spec.Dir, spec.Package, spec.ImportPath)
}

// WorkspaceLayout reports whether the repository at dir, built at pkg
// (build.package), is a GOPATH workspace: no go.mod, pkg under src/, and
// either no import path to build it by otherwise, or pkg imports a
// package of src/ by its path below src/ (which only a GOPATH of the
// checkout resolves). The files are read as the build reads them: headers
// only, no symlink followed.
func WorkspaceLayout(dir, pkg, importPath string) bool {
	if fileExists(filepath.Join(dir, "go.mod")) {
		return false
	}
	rel := filepath.ToSlash(filepath.Clean(pkg))
	if rel != "src" && !strings.HasPrefix(rel, "src/") {
		return false
	}
	if importPath == "" {
		return true
	}
	ctxt := build.Default
	ctxt.GOPATH, ctxt.OpenFile = "", openHeader
	p, err := ctxt.ImportDir(filepath.Join(dir, filepath.FromSlash(rel)), build.ImportComment)
	if err != nil {
		return false
	}
	for _, imp := range p.Imports {
		if !build.IsLocalImport(imp) && filepath.IsLocal(imp) {
			if fi, err := os.Lstat(filepath.Join(dir, "src", filepath.FromSlash(imp))); err == nil && fi.IsDir() {
				return true
			}
		}
	}
	return false
}

// GOPATHImportPath is the import path a GOPATH-mode build puts the
// repository at; "" for a module or a workspace.
func (spec BuildSpec) GOPATHImportPath() string {
	if !gopathMode(spec) || workspaceMode(spec) {
		return ""
	}
	return spec.ImportPath
}

// WorkspacePackages are the import paths of a workspace's own packages,
// the directories right under its src/ (at most 200); nil for any other
// build.
func (spec BuildSpec) WorkspacePackages() []string {
	if !workspaceMode(spec) {
		return nil
	}
	entries, _ := os.ReadDir(filepath.Join(spec.Dir, "src"))
	var out []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && len(out) < 200 {
			out = append(out, e.Name())
		}
	}
	return out
}

// goPath is the build's GOPATH, as the go command sees it.
func goPath(spec BuildSpec) string {
	if spec.Sandbox != nil {
		return goPathInside
	}
	return filepath.Join(spec.WorkDir, "gopath")
}

// buildDir is where the go command sees the source: the checkout itself,
// or its place in the GOPATH (a workspace is the GOPATH).
func buildDir(spec BuildSpec) string {
	switch {
	case !gopathMode(spec):
		return spec.Dir
	case workspaceMode(spec):
		return goPath(spec)
	}
	return filepath.Join(goPath(spec), "src", filepath.FromSlash(spec.ImportPath))
}

// gopathEnv is what GOPATH mode adds to the build's environment.
func gopathEnv(spec BuildSpec) []string {
	if !gopathMode(spec) {
		return nil
	}
	return []string{"GO111MODULE=off", "GOPATH=" + goPath(spec)}
}

// layOutGOPATH copies the checkout to its place in an uncontained build's
// GOPATH (a sandboxed build mounts it there instead).
func layOutGOPATH(spec BuildSpec) error {
	if !gopathMode(spec) || spec.Sandbox != nil {
		return nil
	}
	dst := buildDir(spec)
	if err := os.RemoveAll(filepath.Join(goPath(spec))); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return CopyTree(spec.Dir, dst)
}

// withEnv is env with each of kvs set, replacing an earlier value (a Go
// program reads the first of two).
func withEnv(env []string, kvs ...string) []string {
	out := make([]string, 0, len(env)+len(kvs))
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		replaced := false
		for _, n := range kvs {
			if nk, _, _ := strings.Cut(n, "="); nk == k {
				replaced = true
			}
		}
		if !replaced {
			out = append(out, kv)
		}
	}
	return append(out, kvs...)
}

// NotAModule is the error for a repository without go.mod, import path
// or command: memgate cannot tell how to build it.
func NotAModule(dir string) error {
	return fmt.Errorf("%w: %s is not a Go module (no go.mod); to build it in GOPATH mode, set build.import_path "+
		"in %s to the import path its code is imported by (e.g. github.com/you/service), or set build.command",
		ErrBuild, dir, ".memgate.yml")
}
