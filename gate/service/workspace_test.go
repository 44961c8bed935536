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
			spec := BuildSpec{Dir: root, Package: tc.pkg, ImportPath: tc.ip, WorkDir: "/w"}
			if tc.workspace {
				if buildDir(spec) != "/w/gopath" || spec.GOPATHImportPath() != "" || len(spec.WorkspacePackages()) != 1 || spec.WorkspacePackages()[0] != "tracker" {
					t.Errorf("build dir %q, import path %q, packages %v", buildDir(spec), spec.GOPATHImportPath(), spec.WorkspacePackages())
				}
			}
		})
	}
}
