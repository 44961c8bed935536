package service_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/gatetest"
	"github.com/memgate/memgate/internal/testlock"
)

// When the injected reader does not compile, the build runs a second time
// in the same scratch directory. Its directories were the first build's:
// as root, memgate then walked the seed again into the build's cache tree,
// which the first build had filled with symlinks of its choosing, and made
// directories and hard links wherever they led, as root.
func TestHostileRetryBuildDoesNotFollowTheFirstBuildsSymlinks(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a build")
	}
	cont := gatetest.Containment(t)
	if !cont.Root {
		t.Skip("the build's cache is a tree memgate makes as root only")
	}
	testlock.Gate(t)
	work := gatetest.WorkDir(t)
	src := filepath.Join(work, "src")
	scratch := filepath.Join(work, "scratch")
	victim := filepath.Join(work, "victim")
	for _, d := range []string{src, scratch, filepath.Join(scratch, "inject"), victim} {
		os.Mkdir(d, 0o755)
	}
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\nfunc main() {}\n"), 0o644)
	// First build (with the reader's overlay): plant symlinks in the cache
	// tree and fail as if the reader did not compile. Second: succeed.
	command := `case "$GOFLAGS" in *-overlay*)
  for d in "$GOCACHE"/[0-9a-f][0-9a-f]; do rm -rf "$d" && ln -s ` + victim + ` "$d"; done
  echo "./zz_memgate_reader.go:1:1: undefined"; exit 1;;
esac
cp /bin/true {{output}}`
	sb := &service.BuildSandbox{Containment: cont, Identity: cont.NewIdentities().Build, Scratch: scratch}
	_, err := service.Build(context.Background(), service.BuildSpec{Dir: src, Package: ".", Command: command,
		Timeout: 2 * time.Minute, Output: filepath.Join(scratch, "out", "service"), Inject: true,
		WorkDir: filepath.Join(scratch, "inject"), ToolEnv: service.ToolchainEnv(os.Getenv), Sandbox: sb})
	entries, _ := os.ReadDir(victim)
	if len(entries) > 0 {
		t.Fatalf("memgate, as root, made %d entries in a directory the first build's symlinks led to (e.g. %s); build: %v", len(entries), entries[0].Name(), err)
	}
	if err != nil {
		t.Fatalf("the second build failed: %v", err)
	}
}
