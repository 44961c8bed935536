package service

import (
	"fmt"
	"go/build"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"strconv"
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

// workspaceMode: the repository is a GOPATH workspace (BuildSpec.Workspace,
// by WorkspaceLayout) and memgate runs the go command.
func workspaceMode(spec BuildSpec) bool {
	return spec.Workspace && spec.Command == "" && !fileExists(filepath.Join(spec.Dir, "go.mod"))
}

// maxWorkspaceFiles bounds the Go files WorkspaceLayout reads the imports
// of: the directory is the repository's, which is hostile.
const maxWorkspaceFiles = 200

// WorkspaceLayout reports whether the repository at dir, built at pkg
// (build.package), is a GOPATH workspace: no go.mod, pkg under src/, and
// either no import path to build it by otherwise, or pkg imports a
// package of src/ by its path below src/ (which only a GOPATH of the
// checkout resolves). Everything is read inside dir (os.Root: no symlink
// leads out of it), headers only, at most maxWorkspaceFiles files.
func WorkspaceLayout(dir, pkg, importPath string) bool {
	rel := filepath.ToSlash(filepath.Clean(pkg))
	if rel != "src" && !strings.HasPrefix(rel, "src/") {
		return false
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer root.Close()
	if _, err := root.Lstat("go.mod"); err == nil {
		return false
	}
	if importPath == "" {
		return true
	}
	for _, imp := range importsOf(root, rel) {
		if build.IsLocalImport(imp) || !filepath.IsLocal(imp) {
			continue
		}
		if fi, err := root.Stat(filepath.Join("src", filepath.FromSlash(imp))); err == nil && fi.IsDir() {
			return true
		}
	}
	return false
}

// importsOf lists the imports of the Go files (tests left out) in the
// directory rel of root, from their headers.
func importsOf(root *os.Root, rel string) []string {
	d, err := root.Open(filepath.FromSlash(rel))
	if err != nil {
		return nil
	}
	entries, _ := d.ReadDir(maxWorkspaceFiles * 4)
	d.Close()
	var out []string
	read := 0
	for _, e := range entries {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") || read >= maxWorkspaceFiles {
			continue
		}
		read++
		f, err := root.Open(filepath.Join(filepath.FromSlash(rel), name))
		if err != nil {
			continue
		}
		src, _ := io.ReadAll(io.LimitReader(f, 1<<20))
		f.Close()
		file, err := parser.ParseFile(token.NewFileSet(), name, src, parser.ImportsOnly)
		if err != nil {
			continue
		}
		for _, is := range file.Imports {
			if p, err := strconv.Unquote(is.Path.Value); err == nil {
				out = append(out, p)
			}
		}
	}
	return out
}

// GOPATHImportPath is the import path a GOPATH-mode build puts the
// repository at; "" for a module or a workspace.
func (spec BuildSpec) GOPATHImportPath() string {
	if !gopathMode(spec) || workspaceMode(spec) {
		return ""
	}
	return spec.ImportPath
}

// SourceRoot is where the build sees the repository's root: the profiles'
// files are under it.
func (spec BuildSpec) SourceRoot() string { return buildDir(spec) }

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
