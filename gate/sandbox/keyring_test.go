package sandbox

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/memgate/memgate/internal/testuser"
)

// Keyrings are not namespaced: a process inherits its parent's session
// keyring and possesses it. A key memgate (or anything of its session: a
// service manager, a login) keeps there was readable by sandboxed code,
// and code could link keys into memgate's session keyring.
func TestSandboxDoesNotShareMemgatesSessionKeyring(t *testing.T) {
	testuser.BothWays(t, checkKeyring)
}

func checkKeyring(t *testing.T) {
	const secret = "memgate-keyring-secret-4e1d"
	id, err := unix.AddKey("user", "memgate-test-key", []byte(secret), unix.KEY_SPEC_SESSION_KEYRING)
	if err != nil {
		t.Skip("no session keyring here:", err)
	}
	defer unix.KeyctlInt(unix.KEYCTL_UNLINK, id, unix.KEY_SPEC_SESSION_KEYRING, 0, 0)
	// keyctl(KEYCTL_READ) of every key the sandbox can see, by syscall.
	script := `system("cat /proc/keys"); for my $l (split /\n/, qx(cat /proc/keys)) { my ($h) = split / /, $l; my $id = hex($h);
my $buf = "\0" x 256; my $n = syscall(250, 11, $id, $buf, 256); print "key $h: ", substr($buf, 0, $n), "\n" if $n > 0 }
my $n = syscall(250, 0, -3, 0); print "session keyring: $n\n";
for my $k ($n, ` + "KEYID" + `) { my $buf = "\0" x 256; my $r = syscall(250, 11, $k, $buf, 256); print "read $k: $r $!: ", ($r > 0 ? substr($buf, 0, $r) : ""), "\n" }`
	sess, _ := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
	t.Logf("memgate's session keyring %d, key %d", sess, id)
	script = strings.ReplaceAll(script, "KEYID", fmt.Sprint(id))
	out, err := run(t, Spec{Path: "/usr/bin/perl", Args: []string{"-e", script}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/"})
	t.Logf("%v\n%s", err, out)
	if !strings.Contains(out, "session keyring:") {
		t.Fatalf("the probe did not run")
	}
	if strings.Contains(out, secret) {
		t.Fatalf("the sandbox read a key from memgate's session keyring")
	}
	// As memgate's own uid (unprivileged) the sandbox still sees the
	// descriptions of memgate's keys in /proc/keys: a key's owner may view
	// it, and the uid is the same. Its payload is the possessor's only.
	if strings.Contains(out, "memgate-test-key") && os.Geteuid() == 0 {
		t.Fatalf("the sandbox sees memgate's session keyring")
	}
}
