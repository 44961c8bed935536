package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/internal/testuser"
)

// scratch is a directory a root caller's sandbox user can walk through.
func scratch(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "memgate-sandbox-test-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o711)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func identity() Identity {
	if os.Geteuid() == 0 {
		return IdentityFor(0x6d670000+77, 0x6d670000+77)
	}
	return Identity{}
}

func run(t *testing.T, spec Spec) (string, error) {
	t.Helper()
	var out bytes.Buffer
	spec.Stdout, spec.Stderr = &out, &out
	spec.Root = filepath.Join(scratch(t), "root")
	os.Mkdir(spec.Root, 0o755)
	spec.Files = SystemFiles()
	spec.Identity = identity()
	c, err := Command(spec)
	if err != nil {
		t.Fatal(err)
	}
	err = c.Run()
	return out.String(), err
}

// What a hostile program looks for, planted where it would look: a key
// file memgate can read, memgate's home, its environment and command
// line, other workspaces, the host's network.
func TestSandboxShowsNothingOfMemgate(t *testing.T) {
	testuser.BothWays(t, checkSandboxHides)
}

func checkSandboxHides(t *testing.T) {
	const secret = "memgate-secret-7f3a9c"
	home, _ := os.UserHomeDir()
	keyDir := scratch(t)
	key := filepath.Join(keyDir, "github_app_key.pem")
	os.WriteFile(key, []byte(secret), 0o600)
	other := scratch(t)
	os.WriteFile(filepath.Join(other, "workspace-file"), []byte(secret), 0o644)
	script := `id; grep -h Cap /proc/self/status; cat ` + key + ` ` + filepath.Join(other, "workspace-file") + ` 2>&1;
ls -a ` + home + ` 2>&1; for p in /proc/[0-9]*; do echo "$p $(tr '\0' ' ' < $p/cmdline 2>&1) $(tr '\0' ' ' < $p/environ 2>&1)"; done;
cat /proc/1/environ 2>&1; ls /run /var /root 2>&1; cat /etc/passwd; ls /sys/class/net 2>&1; cat /proc/net/dev 2>&1 | tail -n +3; echo DONE`
	out, err := run(t, Spec{Path: "/bin/sh", Args: []string{"-c", script}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/"})
	t.Logf("%s", out)
	if err != nil || !strings.Contains(out, "DONE") {
		t.Fatalf("the probe did not run: %v", err)
	}
	if strings.Contains(out, secret) {
		t.Fatalf("the sandbox read a secret")
	}
	for _, want := range []string{"uid=1000(sandbox)", "CapEff:\t0000000000000000", "CapBnd:\t0000000000000000", "CapAmb:\t0000000000000000"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q", want)
		}
	}
	for _, leak := range []string{"memgate.test", "test.bin", "-test.run", "MEMGATE_TEST_AS_USER", "eth0", "ens"} {
		if strings.Contains(out, leak) {
			t.Errorf("the sandbox saw %q", leak)
		}
	}
}

func TestOutsideUIDRootIsRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only a root caller could map root")
	}
	_, err := Command(Spec{Path: "/bin/true", Root: scratch(t)})
	if err == nil || !strings.Contains(err.Error(), "refusing to map") {
		t.Fatalf("err %v", err)
	}
}

// A bind whose source became a symlink (a sandbox could have made it in a
// directory it writes) is refused, not followed.
func TestBindRefusesSymlinks(t *testing.T) {
	d := scratch(t)
	out := filepath.Join(d, "out")
	os.Mkdir(out, 0o755)
	link := filepath.Join(out, "link")
	os.Symlink("/etc", link)
	root := filepath.Join(d, "root")
	os.Mkdir(root, 0o755)
	var buf bytes.Buffer
	c, err := Command(Spec{Path: "/bin/ls", Args: []string{"/x"}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/",
		Root: root, Identity: identity(), Stdout: &buf, Stderr: &buf,
		Binds: []Bind{{Source: out, Target: "/x"}}})
	if err != nil {
		t.Fatal(err)
	}
	// Swap the bound directory for a symlink after memgate resolved it.
	os.Rename(out, out+".real")
	os.Symlink("/etc", out)
	err = c.Run()
	if err == nil || !strings.Contains(buf.String(), "memgate sandbox") {
		t.Fatalf("a bind followed a swapped-in symlink: err %v, output %s", err, buf.String())
	}
}
