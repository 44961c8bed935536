package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeTree makes a repository of files in a directory the sandbox's users
// can read.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	src, err := os.MkdirTemp("", "memgate-reader-src-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(src) })
	os.Chmod(src, 0o755)
	for name, body := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return src
}

// buildWithReader builds spec (Dir set) as a gate does: in the build
// sandbox, with the reader, in a scratch directory of its own; unsandboxed
// when sandboxed is false.
func buildWithReader(t *testing.T, spec BuildSpec, sandboxed bool) (Built, error) {
	t.Helper()
	work, err := os.MkdirTemp("", "memgate-reader-work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveScratch(work) })
	os.Chmod(work, 0o711)
	spec.Inject, spec.Timeout, spec.ToolEnv = true, 5*time.Minute, ToolchainEnv(os.Getenv)
	if spec.Package == "" {
		spec.Package = "."
	}
	spec.Output, spec.WorkDir = filepath.Join(work, "service"), work
	if sandboxed {
		c := containmentIn(t, filepath.Join(os.TempDir(), fmt.Sprintf("memgate-test-cache-%d", os.Geteuid())))
		spec.Sandbox = &BuildSandbox{Containment: c, Identity: c.NewIdentities().Build, Scratch: work, Tenant: "reader-test"}
		spec.Output, spec.WorkDir = filepath.Join(work, "out", "service"), filepath.Join(work, "inject")
		if err := os.Mkdir(spec.WorkDir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return Build(context.Background(), spec)
}

func wantReader(t *testing.T, b Built, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("build: %v\n%s", err, b.Output)
	}
	if !b.Injected || b.Note != "" || !hasReader(b.Binary) {
		t.Fatalf("the reader is not in the binary (injected %v): %s\n%s", b.Injected, b.Note, b.Output)
	}
}

const plainMain = "package main\n\nimport \"net/http\"\n\nfunc main() { http.ListenAndServe(\"127.0.0.1:0\", nil) }\n"

// The reader is compiled at the service's language version (its go line;
// go 1.16 without one), and the toolchain accepts every go line down to
// 1.0: a reader using anything newer than Go 1.0's language was dropped
// from old services, which then had no numbers at all.
func TestReaderCompilesAtEveryGoLine(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in sandboxes")
	}
	for _, line := range []string{"", "go 1.0", "go 1.13", "go 1.16", "go 1.21"} {
		name := line
		if name == "" {
			name = "no go line"
		}
		t.Run(name, func(t *testing.T) {
			src := writeTree(t, map[string]string{"go.mod": "module example.com/old\n\n" + line + "\n", "main.go": plainMain})
			b, err := buildWithReader(t, BuildSpec{Dir: src}, true)
			wantReader(t, b, err)
		})
	}
}

// A build.command gets the reader through GOFLAGS in every main package:
// the service's, a second binary's and a go run generator's (inert there),
// never a library's directory, even one holding a //go:build ignore main.
func TestCustomBuildGetsTheReader(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in sandboxes")
	}
	files := map[string]string{
		"go.mod":             "module example.com/svc\n\ngo 1.16\n",
		"cmd/server/main.go": "package main\n\nimport (\n\t\"net/http\"\n\n\t\"example.com/svc/store\"\n)\n\nfunc main() { store.Keep(nil); http.ListenAndServe(\"127.0.0.1:0\", nil) }\n",
		"cmd/tool/main.go":   "package main\n\nfunc main() {}\n",
		"gen/main.go":        "package main\n\nimport \"os\"\n\nfunc main() { os.WriteFile(\"generated.txt\", []byte(\"ok\"), 0o644) }\n",
		"store/store.go":     "package store\n\nvar kept [][]byte\n\nfunc Keep(b []byte) { kept = append(kept, b) }\n",
		"store/gen.go":       "//go:build ignore\n// +build ignore\n\npackage main\n\nfunc main() {}\n",
		"Makefile":           "service:\n\tgo run ./gen\n\tgo build -o $(OUT) ./cmd/server\n\tgo build -o /tmp/tool ./cmd/tool\n",
	}
	for _, tc := range []struct {
		name, command string
		env           map[string]string
		sandboxed     bool
		missing       bool // the reader cannot reach the binary
	}{
		{name: "makefile", command: "make OUT={{output}}", sandboxed: true},
		{name: "makefile uncontained", command: "make OUT={{output}}"},
		{name: "config GOFLAGS kept", command: "go build -o {{output}} ./cmd/server", env: map[string]string{"GOFLAGS": "-mod=mod"}, sandboxed: true},
		{name: "command drops GOFLAGS", command: "GOFLAGS= go build -o {{output}} ./cmd/server", sandboxed: true, missing: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := buildWithReader(t, BuildSpec{Dir: writeTree(t, files), Command: tc.command, Env: tc.env}, tc.sandboxed)
			if !tc.missing {
				wantReader(t, b, err)
				return
			}
			if err != nil {
				t.Fatalf("build: %v\n%s", err, b.Output)
			}
			if b.Injected || !strings.Contains(b.Note, "keep $GOFLAGS") {
				t.Fatalf("a binary without the reader: injected %v, note %q", b.Injected, b.Note)
			}
		})
	}
}

// A repository without go.mod builds in GOPATH mode at its import path:
// its own packages and vendor/ resolve there, and it gets the reader.
func TestGOPATHRepositoryBuildsAtItsImportPath(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in sandboxes")
	}
	files := map[string]string{
		"main.go":                             "package main\n\nimport (\n\t\"net/http\"\n\n\t\"github.com/acme/legacy/store\"\n\t\"github.com/vendored/kv\"\n)\n\nfunc main() { store.Keep(kv.Key()); http.ListenAndServe(\"127.0.0.1:0\", nil) }\n",
		"store/store.go":                      "package store\n\nvar kept []string\n\nfunc Keep(s string) { kept = append(kept, s) }\n",
		"vendor/github.com/vendored/kv/kv.go": "package kv\n\nfunc Key() string { return \"k\" }\n",
	}
	for _, sandboxed := range []bool{true, false} {
		t.Run(fmt.Sprintf("sandboxed %v", sandboxed), func(t *testing.T) {
			b, err := buildWithReader(t, BuildSpec{Dir: writeTree(t, files), ImportPath: "github.com/acme/legacy"}, sandboxed)
			wantReader(t, b, err)
			if !strings.Contains(b.Output, "GOPATH mode as github.com/acme/legacy") {
				t.Errorf("the build output does not say it was a GOPATH build: %q", b.Output)
			}
		})
	}
	t.Run("no import path", func(t *testing.T) {
		_, err := buildWithReader(t, BuildSpec{Dir: writeTree(t, files)}, true)
		if err == nil || !strings.Contains(err.Error(), "build.import_path") {
			t.Fatalf("a repository without go.mod or import path: %v", err)
		}
	})
}

// A go.mod that needs tidying names the build.flags that builds it anyway.
func TestUntidyGoModSaysWhichFlagFixesIt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in sandboxes")
	}
	// dep needs dep2, which go.mod does not list (go 1.17 and later
	// list every module the build needs).
	src := writeTree(t, map[string]string{
		"go.mod": "module example.com/svc\n\ngo 1.22\n\nrequire example.com/dep v0.0.0\n\n" +
			"replace example.com/dep => ./dep\n\nreplace example.com/dep2 => ./dep2\n",
		"main.go":      "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Answer()) }\n",
		"dep/go.mod":   "module example.com/dep\n\ngo 1.22\n\nrequire example.com/dep2 v0.0.0\n",
		"dep/dep.go":   "package dep\n\nimport \"example.com/dep2\"\n\nfunc Answer() int { return dep2.X }\n",
		"dep2/go.mod":  "module example.com/dep2\n\ngo 1.22\n",
		"dep2/dep2.go": "package dep2\n\nconst X = 1\n",
	})
	b, err := buildWithReader(t, BuildSpec{Dir: src}, true)
	if err == nil || !strings.Contains(err.Error(), "build.flags: [-mod=mod]") {
		t.Fatalf("untidy go.mod: %v\n%s", err, b.Output)
	}
	b, err = buildWithReader(t, BuildSpec{Dir: src, Flags: []string{"-mod=mod"}}, true)
	wantReader(t, b, err)
}

func TestContainsBytesAcrossReads(t *testing.T) {
	needle := []byte(readerMarker)
	for _, at := range []int{0, 1<<20 - 5, 1 << 20, 3<<20 - 1 - len(needle)} {
		hay := make([]byte, 3<<20)
		copy(hay[at:], needle)
		if !containsBytes(strings.NewReader(string(hay)), needle) {
			t.Errorf("marker at %d not found", at)
		}
	}
	if containsBytes(strings.NewReader(strings.Repeat("x", 3<<20)), needle) {
		t.Error("found a marker that is not there")
	}
}

// The main packages a build.command may build are found as the go command
// would (constraints applied; vendor/, testdata/, _ and . directories out),
// reading the repository's files as memgate without following a symlink
// or waiting on a FIFO.
func TestMainPackageDirs(t *testing.T) {
	src := writeTree(t, map[string]string{
		"main.go":               "package main\n\nfunc main() {}\n",
		"cmd/a/a.go":            "package main\n\nfunc main() {}\n",
		"lib/lib.go":            "package lib\n",
		"lib/gen.go":            "//go:build ignore\n\npackage main\n\nfunc main() {}\n",
		"other/x_windows.go":    "package main\n\nfunc main() {}\n",
		"vendor/v/cmd/main.go":  "package main\n\nfunc main() {}\n",
		"testdata/t/main.go":    "package main\n\nfunc main() {}\n",
		"_old/main.go":          "package main\n\nfunc main() {}\n",
		"onlytest/a_test.go":    "package main\n",
		"hostile/lib.go":        "package hostile\n",
		"hostile/fifo/x.txt":    "",
		"hostile/linked/doc.go": "package linked\n",
	})
	if err := syscall.Mkfifo(filepath.Join(src, "hostile", "fifo", "main.go"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(src, "main.go"), filepath.Join(src, "hostile", "linked", "main.go")); err != nil {
		t.Fatal(err)
	}
	done := make(chan []string, 1)
	go func() {
		dirs, err := mainPackageDirs(src)
		if err != nil {
			t.Error(err)
		}
		done <- dirs
	}()
	select {
	case dirs := <-done:
		if strings.Join(dirs, " ") != ". ./cmd/a" {
			t.Errorf("main packages %q, want . and ./cmd/a", dirs)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the walk waits on a FIFO")
	}
}
