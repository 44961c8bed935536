package service

import (
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testuser"
)

// memgate counts a service's descriptors from outside, in /proc: for a
// sandboxed service (another pid namespace, its own user when memgate is
// root, memgate's own user in a user namespace when it is not) as for one
// run plainly.
func TestOpenFilesCountedFromOutside(t *testing.T) {
	t.Run("plain", func(t *testing.T) {
		if testuser.Inside() {
			t.Skip("the unprivileged run is the sandboxed one")
		}
		spec := func(script string) RunSpec {
			return RunSpec{Binary: "/bin/sh", Args: []string{"-c", script}, Dir: "/", Env: []string{"PATH=/usr/bin:/bin"}}
		}
		countsSeven(t, spec)
	})
	testuser.BothWays(t, func(t *testing.T) {
		sb := testServiceSandbox(t, 83)
		spec := func(script string) RunSpec {
			return RunSpec{Binary: "/bin/sh", Args: []string{"-c", script}, Dir: "/", Env: []string{"PATH=/usr/bin:/bin"},
				Limits: Limits{Processes: 64, FileSizeBytes: 1 << 20, Sandbox: sb}}
		}
		countsSeven(t, spec)
	})
}

// The same shell with seven descriptors more, kept by the sleep it
// becomes; what else a shell holds varies (dash keeps a copy of one).
const (
	base  = `echo READY; exec sleep 30`
	seven = `exec 3</dev/null 4</dev/null 5</dev/null 6</dev/null 7</dev/null 8</dev/null 9</dev/null; echo READY; exec sleep 30`
)

func countsSeven(t *testing.T, spec func(script string) RunSpec) {
	t.Helper()
	a, b := openFilesOf(t, spec(base)), openFilesOf(t, spec(seven))
	if b.FDs-a.FDs != 7 || a.Limit == 0 || b.Limit != a.Limit {
		t.Fatalf("counted %+v, then %+v with seven more: want 7 more and a limit", a, b)
	}
}

// openFilesOf counts a started process's descriptors once the sleep it
// execs is the process (READY is printed before the exec).
func openFilesOf(t *testing.T, spec RunSpec) OpenFiles {
	t.Helper()
	p, err := start(spec, &cgroupHost{note: "no control group (test)"})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(p.Output().String(), "READY") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	n, err := p.OpenFiles()
	if err != nil {
		t.Fatalf("%s: %v", p.Isolation(), err)
	}
	return n
}
