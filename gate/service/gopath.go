package service

import (
	"fmt"
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

// goPathInside is the build's GOPATH inside its sandbox.
const goPathInside = "/memgate/gopath"

// gopathMode: the build has an import path and the repository no go.mod.
func gopathMode(spec BuildSpec) bool {
	return spec.ImportPath != "" && !fileExists(filepath.Join(spec.Dir, "go.mod"))
}

// GOPATHImportPath is the import path a GOPATH-mode build puts the
// repository at; "" for a module.
func (spec BuildSpec) GOPATHImportPath() string {
	if !gopathMode(spec) {
		return ""
	}
	return spec.ImportPath
}

// goPath is the build's GOPATH, as the go command sees it.
func goPath(spec BuildSpec) string {
	if spec.Sandbox != nil {
		return goPathInside
	}
	return filepath.Join(spec.WorkDir, "gopath")
}

// buildDir is where the go command sees the source: the checkout itself,
// or its place in the GOPATH.
func buildDir(spec BuildSpec) string {
	if !gopathMode(spec) {
		return spec.Dir
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
