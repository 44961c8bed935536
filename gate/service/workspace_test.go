package service

import (
	"os"
	"path/filepath"
	"testing"
)

// A repository that is a GOPATH itself is told from a GOPATH-era
// repository that merely has a src/ directory by what its package imports.
func TestWorkspaceLayout(t *testing.T) {
	write := func(t *testing.T, root string, files map[string]string) {
		t.Helper()
		for name, body := range files {
			p := filepath.Join(root, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	workspace := map[string]string{
		"src/main.go":            "package main\n\nimport (\n\t\"fmt\"\n\t\"tracker\"\n)\n\nfunc main() { fmt.Println(tracker.X) }\n",
		"src/tracker/tracker.go": "package tracker\n\nconst X = 1\n",
	}
	// A GOPATH-era repository github.com/acme/svc with a package at src/:
	// it imports its own code by the full path.
	legacy := map[string]string{
		"src/main.go":      "package main\n\nimport \"github.com/acme/svc/src/lib\"\n\nfunc main() { lib.Run() }\n",
		"src/lib/lib.go":   "package lib\n\nfunc Run() {}\n",
		"src/tracker/x.go": "package tracker\n",
	}
	withMod := map[string]string{"go.mod": "module example.com/m\n", "src/main.go": "package main\n\nimport \"tracker\"\n\nfunc main() {}\n", "src/tracker/t.go": "package tracker\n"}
	for _, tc := range []struct {
		name      string
		files     map[string]string
		pkg, ip   string
		workspace bool
	}{
		{"workspace, no import path (memgate check)", workspace, "./src", "", true},
		{"workspace, the import path serve infers", workspace, "./src", "github.com/acme/tracker", true},
		{"workspace, package below src", workspace, "./src/tracker", "", true},
		{"package at the root", workspace, ".", "", false},
		{"a GOPATH-era repository's src/ package", legacy, "./src", "github.com/acme/svc", false},
		{"a module", withMod, "./src", "", false},
		{"a path that climbs out of src", workspace, "./src/../..", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tc.files)
			if got := WorkspaceLayout(root, tc.pkg, tc.ip); got != tc.workspace {
				t.Fatalf("WorkspaceLayout(%q, %q) = %v, want %v", tc.pkg, tc.ip, got, tc.workspace)
			}
			spec := BuildSpec{Dir: root, Package: tc.pkg, ImportPath: tc.ip, WorkDir: "/w", Workspace: tc.workspace}
			if tc.workspace && (spec.SourceRoot() != "/w/gopath" || spec.GOPATHImportPath() != "" || !gopathMode(spec)) {
				t.Errorf("source root %q, import path %q", spec.SourceRoot(), spec.GOPATHImportPath())
			}
		})
	}
}

// What a repository's package imports is read inside the repository: a
// symlink out of it (to another checkout, the Go installation) is not
// followed, so whether a file elsewhere imports something never shows in
// the build mode chosen (found by an attacker's review).
func TestWorkspaceLayoutStaysInTheRepository(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "x.go"), []byte("package main\n\nimport \"tracker\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "src", "tracker"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "src", "app")); err != nil {
		t.Fatal(err)
	}
	if WorkspaceLayout(root, "./src/app", "github.com/acme/app") {
		t.Fatal("read the imports of a directory outside the repository through a symlink")
	}
	// The same file inside the repository decides it.
	if err := os.Remove(filepath.Join(root, "src", "app")); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(filepath.Join(root, "src", "app"), os.DirFS(outside)); err != nil {
		t.Fatal(err)
	}
	if !WorkspaceLayout(root, "./src/app", "github.com/acme/app") {
		t.Fatal("a workspace's own package not recognised")
	}
}
