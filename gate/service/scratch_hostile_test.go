package service

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate/sandbox"
	"github.com/memgate/memgate/internal/testuser"
)

// As memgate's own uid (unprivileged), what a build writes in its scratch
// directories is memgate's, but a directory it made unwritable cannot be
// emptied by its owner: os.RemoveAll gave up, silently (the pipeline
// ignores the error), and every such gate left its scratch directory, as
// large as the build made it, on the worker's disk for good.
func TestHostileScratchIsRemoved(t *testing.T) {
	testuser.BothWays(t, checkScratchRemoved)
}

func checkScratchRemoved(t *testing.T) {
	work, err := os.MkdirTemp("", "memgate-scratch-test-")
	if err != nil {
		t.Fatal(err)
	}
	defer exec0(work)
	os.Chmod(work, 0o711)
	var id sandbox.Identity
	if os.Geteuid() == 0 {
		id = sandbox.IdentityFor(0x6d670000+83, 0x6d670000+83)
	}
	out := filepath.Join(work, "out")
	if err := prepareOwned(out, id); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(work, "root")
	os.Mkdir(root, 0o755)
	// Elsewhere on the host: must survive the removal.
	keep, _ := os.MkdirTemp("", "memgate-scratch-keep-")
	defer os.RemoveAll(keep)
	os.WriteFile(filepath.Join(keep, "f"), nil, 0o644)
	var buf bytes.Buffer
	c, err := sandbox.Command(sandbox.Spec{Path: "/bin/sh", Args: []string{"-c",
		"cd " + out + " && mkdir -p a/b c && head -c 1048576 /dev/zero > a/b/big && chmod 0 a/b a && chmod 500 c && ln -s " + keep + " link && echo DONE"},
		Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/", Root: root, Files: sandbox.SystemFiles(), Identity: id,
		Binds: []sandbox.Bind{{Source: out, Writable: true}}, Stdout: &buf, Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Run(); err != nil || !strings.Contains(buf.String(), "DONE") {
		t.Fatalf("sandbox: %v: %s", err, buf.String())
	}
	err = RemoveScratch(work)
	if _, statErr := os.Lstat(work); statErr == nil {
		t.Fatalf("the scratch directory is still there after the gate (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(keep, "f")); err != nil {
		t.Fatalf("removing the scratch directory followed a symlink out: %v", err)
	}
}

// exec0 cleans up after the test whatever the outcome.
func exec0(dir string) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	os.RemoveAll(dir)
}
