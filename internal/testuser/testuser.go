// Package testuser runs a test again as an unprivileged user, for suites
// that must hold both as root (CI) and as an ordinary user.
package testuser

import (
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Name is the account tests create and run as.
const Name = "memgate-test"

// AsUserEnv marks the test binary's run as the unprivileged user.
const AsUserEnv = "MEMGATE_TEST_AS_USER"

// Inside reports whether this test binary is the unprivileged re-run.
func Inside() bool { return os.Getenv(AsUserEnv) == "1" }

// Ensure makes the unprivileged account (once) and returns its ids. It
// needs root; without root the test is already unprivileged.
func Ensure(t testing.TB) (uid, gid int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to create the unprivileged user (this run is already unprivileged)")
	}
	u, err := user.Lookup(Name)
	if err != nil {
		if out, err := exec.Command("useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", Name).CombinedOutput(); err != nil {
			t.Fatalf("useradd %s: %v: %s", Name, err, out)
		}
		if u, err = user.Lookup(Name); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// Rerun runs the named test of this test binary again as the unprivileged
// user, with env (and nothing else of this process's environment), and
// returns its combined output; a failure there fails here.
func Rerun(t *testing.T, test string, env ...string) string {
	t.Helper()
	uid, gid := Ensure(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := Executable(t, self)
	dir := filepath.Dir(bin)
	wd, _ := os.Getwd()
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(uid), "--regid="+strconv.Itoa(gid), "--clear-groups", "--",
		bin, "-test.run", "^"+test+"$", "-test.v", "-test.count=1")
	cmd.Dir = wd
	cmd.Env = append([]string{AsUserEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + os.TempDir()}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("as %s: %v\n%s", Name, err, out)
	}
	return string(out)
}

// Executable copies the program at path into a directory of its own the
// unprivileged user can reach (test binaries and t.TempDir are private),
// removed after the test, and returns the copy's path.
func Executable(t testing.TB, path string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "memgate-testuser-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, filepath.Base(path))
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// BothWays runs check as this test's caller (subtest "as-caller") and as
// the unprivileged user (subtest "unprivileged": the test binary runs
// again as that user, or, already unprivileged, check runs once more as
// the caller). The named test must be the one calling BothWays.
func BothWays(t *testing.T, check func(t *testing.T)) {
	t.Helper()
	name := t.Name()
	t.Run("as-caller", func(t *testing.T) {
		if Inside() {
			t.Skip("the unprivileged run is below")
		}
		check(t)
	})
	t.Run("unprivileged", func(t *testing.T) {
		if Inside() || os.Geteuid() != 0 {
			check(t)
			return
		}
		out := Rerun(t, name+"/unprivileged")
		if !strings.Contains(out, "--- PASS: "+name+"/unprivileged") {
			t.Fatalf("the unprivileged run did not pass:\n%s", out)
		}
		t.Logf("as %s:\n%s", Name, out)
	})
}
