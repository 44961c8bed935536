package service

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testuser"
)

// Without a control group (an unprivileged memgate: the container image,
// memgate check), a service's memory is capped by a watchdog that sums the
// resident memory of the sandbox's processes. What the service writes into
// its tmpfs mounts (/tmp, its home, /dev/shm) is memory too, the worker's,
// but no process's resident memory: a service could hold far more than
// run.memory_limit there and never be killed.
func TestHostileTmpfsCountsAgainstTheMemoryLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 200 MiB for a few seconds")
	}
	testuser.BothWays(t, func(t *testing.T) { holdInTmpfs(t, mountScripts) })
}

// A tmpfs the code mounts itself, in a user namespace of its own nested
// in the sandbox's: its size is half the machine's memory, and it is in no
// mount the watchdog can look at.
func TestHostileNestedTmpfsIsRefused(t *testing.T) {
	if testing.Short() {
		t.Skip("holds 200 MiB for a few seconds")
	}
	if _, err := os.Stat("/usr/bin/unshare"); err != nil {
		t.Skip("needs unshare(1)")
	}
	testuser.BothWays(t, func(t *testing.T) { holdInTmpfs(t, nestedScript) })
}

// 3 x 64 MiB in tmpfs, with a 96 MiB memory limit; the shell's own
// resident memory is a few MiB.
const mountScripts = `head -c 67108864 /dev/zero > /tmp/a; head -c 67108864 /dev/zero > /home/sandbox/b; head -c 16000000 /dev/zero > /dev/shm/c;
head -c 67108864 /dev/zero > /tmp/d 2>/dev/null; echo HELD; exec sleep 30`

const nestedScript = `mkdir /tmp/m && exec unshare -Urm sh -c 'mount -t tmpfs none /tmp/m && head -c 209715200 /dev/zero > /tmp/m/a && echo HELD && exec sleep 30'`

func holdInTmpfs(t *testing.T, script string) {
	spec := RunSpec{Binary: "/bin/sh", Args: []string{"-c", script}, Dir: "/", Env: []string{"PATH=/usr/bin:/bin"},
		Limits: Limits{MemoryBytes: 96 << 20, Processes: 64, FileSizeBytes: 256 << 20,
			Sandbox: testServiceSandbox(t, 79)}}
	p, err := start(spec, &cgroupHost{note: "no control group (test)"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	deadline := time.After(8 * time.Second)
	for !strings.Contains(p.Output().String(), "HELD") {
		select {
		case <-p.Done():
			t.Logf("stopped before holding it all: %v: %s", p.ExitError(), p.Output().String())
			return
		case <-deadline:
			t.Fatalf("the fixture never held its memory: %s", p.Output().String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	select {
	case <-p.Done():
		t.Logf("killed: %v", p.ExitError())
	case <-time.After(3 * time.Second):
		t.Fatalf("a service held ~200 MiB of the worker's memory in its tmpfs mounts, over its 96 MiB limit, and was not killed (%s)", p.Isolation())
	}
}
