package service

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/memgate/memgate/gate/sandbox"
)

// As root, a build's Go cache is a tree of hard links to the shared seed's
// files, which the build's user may read but not change: that holds only
// as long as the seed's files are not writable by others. Their mode comes
// from the umask the fetch user's sandbox runs with, which was memgate's
// own: under a umask of 0 (a CI job's container, a service manager's
// UMask=0000) every file the go command wrote was 0666, and a build wrote
// through its hard link into the cache every later gate trusts.
func TestHostileBuildCannotWriteTheSeedUnderUmask0(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the hard-link tree is a root memgate's")
	}
	old := syscall.Umask(0)
	defer syscall.Umask(old)

	dir, err := os.MkdirTemp("", "memgate-umask-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o711)
	fetch := sandbox.IdentityFor(0x6d670000+81, 0x6d670000+81)
	build := sandbox.IdentityFor(0x6d670000+82, 0x6d670000+82)
	seed := filepath.Join(dir, "seed")
	if err := prepareOwned(seed, fetch); err != nil {
		t.Fatal(err)
	}
	runIn := func(id sandbox.Identity, script string, binds ...sandbox.Bind) string {
		root, _ := os.MkdirTemp(dir, "root-")
		os.Chmod(root, 0o755)
		var out bytes.Buffer
		c, err := sandbox.Command(sandbox.Spec{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin"},
			Dir: "/", Root: root, Files: sandbox.SystemFiles(), Identity: id, Binds: binds, Stdout: &out, Stderr: &out})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Run(); err != nil {
			t.Fatalf("sandbox: %v: %s", err, out.String())
		}
		return out.String()
	}
	// The go command writes its cache files with mode 0666, as this does.
	// g stands for a seed made before the sandbox fixed its umask.
	runIn(fetch, "echo compiled > "+seed+"/f; echo compiled > "+seed+"/g; chmod 666 "+seed+"/g", sandbox.Bind{Source: seed, Writable: true})
	cache := filepath.Join(dir, "gocache")
	if err := linkTree(seed, cache, build); err != nil {
		t.Fatal(err)
	}
	out := runIn(build, "for f in f g; do echo POISON > /memgate/gocache/$f 2>&1; done; echo tried", sandbox.Bind{Source: cache, Target: "/memgate/gocache", Writable: true})
	for _, f := range []string{"f", "g"} {
		got, _ := os.ReadFile(filepath.Join(seed, f))
		if strings.Contains(string(got), "POISON") {
			st, _ := os.Stat(filepath.Join(seed, f))
			t.Errorf("a build wrote the shared seed's %s through its hard link (seed file mode %v): %s", f, st.Mode(), out)
		}
	}
}
