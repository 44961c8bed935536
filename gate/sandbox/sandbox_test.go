package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func rootDir(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func run(t *testing.T, spec Spec) (string, error) {
	t.Helper()
	var out bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &out
	if spec.Root == "" {
		spec.Root = rootDir(t)
	}
	if spec.Files == nil {
		spec.Files = SystemFiles()
	}
	c, err := Command(spec)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run()
	return out.String(), err
}

func TestSmoke(t *testing.T) {
	out, err := run(t, Spec{Path: "/bin/sh", Args: []string{"-c", "id; ls /; ls /proc | head -5; cat /proc/self/status | grep -i cap; ip link 2>&1 | head -3; echo $HOME; ls -la /tmp"}, Env: []string{"PATH=/usr/bin:/bin", "HOME=/home/sandbox"}, Dir: "/"})
	t.Logf("%s err=%v", out, err)
	if err != nil || !strings.Contains(out, "uid=1000") {
		t.Fatal("no")
	}
}
