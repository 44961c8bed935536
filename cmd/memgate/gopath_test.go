package main

import (
	"os"
	"path/filepath"
	"testing"
)

// A GOPATH-era checkout where `go get` put it gets its import path from
// its place; a module, or a directory under no src, gets none.
func TestGOPATHImportPathFromThePlace(t *testing.T) {
	root := t.TempDir()
	legacy := filepath.Join(root, "go", "src", "github.com", "acme", "legacy")
	module := filepath.Join(root, "go", "src", "github.com", "acme", "mod")
	plain := filepath.Join(root, "work", "svc")
	for _, d := range []string{legacy, module, plain} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(module, "go.mod"), []byte("module github.com/acme/mod\n"), 0o644)
	for dir, want := range map[string]string{legacy: "github.com/acme/legacy", module: "", plain: ""} {
		if got := gopathImportPath(dir); got != want {
			t.Errorf("%s: import path %q, want %q", dir, got, want)
		}
	}
}
