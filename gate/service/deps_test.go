package service

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A module's dependencies are compiled once per owner, by memgate's own
// step, not by every gate: the gates' builds (go build -v names what it
// compiles) compile only the main package. Another owner's gate compiles
// them in a cache of its own.
func TestDependenciesAreCompiledOncePerOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in sandboxes")
	}
	// The gate tests' shared caches (their seed is built once per run).
	c := containmentIn(t, filepath.Join(os.TempDir(), fmt.Sprintf("memgate-test-cache-%d", os.Geteuid())))
	src := writeTree(t, map[string]string{
		"go.mod":     "module example.com/svc\n\ngo 1.22\n\nrequire example.com/dep v0.0.0\n\nreplace example.com/dep => ./dep\n",
		"main.go":    "package main\n\nimport \"example.com/dep\"\n\nfunc main() { println(dep.Answer()) }\n",
		"dep/go.mod": "module example.com/dep\n\ngo 1.22\n",
		"dep/dep.go": "package dep\n\nfunc Answer() int { return 42 }\n",
	})
	build := func(tenant string) (string, time.Duration) {
		t.Helper()
		work, err := os.MkdirTemp("", "memgate-deps-work-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { RemoveScratch(work) })
		os.Chmod(work, 0o711)
		sb := &BuildSandbox{Containment: c, Identity: c.NewIdentities().Build, Scratch: work, Tenant: tenant}
		start := time.Now()
		out, err := sb.build(context.Background(), BuildSpec{Dir: src, Package: ".", Flags: []string{"-v"},
			Output: filepath.Join(work, "out", "svc"), Timeout: 5 * time.Minute, ToolEnv: ToolchainEnv(os.Getenv)}, "")
		if err != nil {
			t.Fatalf("build for %s: %v\n%s", tenant, err, out)
		}
		return out, time.Since(start)
	}
	first, took1 := build("acme")
	second, took2 := build("acme")
	other, took3 := build("other")
	t.Logf("acme: %s (compiled: %q); acme again: %s (%q); other: %s (%q)", took1, first, took2, second, took3, other)
	for name, out := range map[string]string{"acme's first": first, "acme's second": second, "other's": other} {
		if strings.Contains(out, "example.com/dep") {
			t.Errorf("%s gate compiled the dependency itself: %q", name, out)
		}
		if !strings.Contains(out, "example.com/svc") {
			t.Errorf("%s gate did not compile its main package (the -v output is not what the test reads): %q", name, out)
		}
	}
	acme, _ := c.Caches.TenantBuildCache("acme", mustSeed(t, c))
	theirs, _ := c.Caches.TenantBuildCache("other", mustSeed(t, c))
	if acme == theirs {
		t.Errorf("two owners share a dependency cache: %s", acme)
	}
}

func mustSeed(t *testing.T, c Containment) string {
	t.Helper()
	seed, err := c.Seed(context.Background(), ToolchainEnv(os.Getenv))
	if err != nil {
		t.Fatal(err)
	}
	return seed
}

// build.package is the repository's config: as a flag ("-toolexec=…") it
// would run the repository's command in the step that writes the owner's
// dependency cache. It is never passed as one.
func TestDependencyStepTakesNoFlagFromTheConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("builds in sandboxes")
	}
	c := containmentIn(t, filepath.Join(os.TempDir(), fmt.Sprintf("memgate-test-cache-%d", os.Geteuid())))
	src := writeTree(t, map[string]string{"go.mod": "module example.com/svc\n\ngo 1.22\n", "main.go": "package main\n\nfunc main() {}\n"})
	work, err := os.MkdirTemp("", "memgate-deps-work-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { RemoveScratch(work) })
	os.Chmod(work, 0o711)
	sb := &BuildSandbox{Containment: c, Identity: c.NewIdentities().Build, Scratch: work, Tenant: "flag-test"}
	out, _ := sb.build(context.Background(), BuildSpec{Dir: src, Package: "-toolexec=/bin/true",
		Output: filepath.Join(work, "out", "svc"), Timeout: 5 * time.Minute, ToolEnv: ToolchainEnv(os.Getenv)}, "")
	// (Whatever the repository's own build then does with it runs in that
	// build's sandbox, as the build's user.)
	if !strings.Contains(out, "dependencies not prebuilt: build.package") {
		t.Errorf("the dependency step took the package as given: %q", out)
	}
}
