package sandbox

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testuser"
)

// A companion runs before the program, in the same network and pid
// namespace, its output apart; the program starts only when told, and
// sees what the companion left in the companions' directory; a check
// command answers; everything ends with the program.
func TestCompanionsStartBeforeTheProgram(t *testing.T) {
	testuser.BothWays(t, checkCompanions)
}

func checkCompanions(t *testing.T) {
	var out, compOut bytes.Buffer
	root := filepath.Join(scratch(t), "root")
	os.Mkdir(root, 0o755)
	env := []string{"PATH=/usr/bin:/bin"}
	c, err := Command(Spec{
		Path: "/bin/sh", Args: []string{"-c", "cat /deps/a/marker; ps -e -o comm= | sort | tr '\\n' ' '; id -u; for f in 3 4 5; do [ -e /proc/self/fd/$f ] && echo LEAKED-FD-$f; done; true"}, Env: env, Dir: "/",
		Root: root, Files: SystemFiles(), Identity: identity(), Stdout: &out, Stderr: &out,
		Companions: []Companion{{
			Name: "a", Path: "sh", Args: []string{"-c", "echo companion-says-hi; exec sleep 60"}, Env: env, Dir: "/",
			Before: [][]string{{"mkdir", "/deps/a"}, {"sh", "-c", "echo from-before > /deps/a/marker"}},
			Check:  []string{"test", "-f", "/deps/a/marker"}, Output: &compOut,
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	defer c.Process.Kill()
	if err := c.Release(); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-c.Events():
		t.Fatalf("a companion started before StartCompanion: %+v", e)
	case <-time.After(300 * time.Millisecond):
	}
	if err := c.StartCompanion(0); err != nil {
		t.Fatal(err)
	}
	started := map[string]bool{}
	deadline := time.After(20 * time.Second)
	for !started["program"] {
		select {
		case e := <-c.Events():
			if e.Kind == "exited" {
				t.Fatalf("companion ended: %+v; output %q", e, compOut.String())
			}
			started[e.Step] = e.Kind == "started"
		case <-deadline:
			t.Fatal("companion never started")
		}
	}
	if err := c.Check(0); err != nil {
		t.Fatal(err)
	}
	for e := range c.Events() {
		if e.Kind == "checked" {
			if e.Status != 0 {
				t.Fatalf("check failed: %+v", e)
			}
			break
		}
	}
	if out.Len() != 0 {
		t.Fatalf("the program ran before StartMain: %q", out.String())
	}
	if err := c.StartMain(); err != nil {
		t.Fatal(err)
	}
	if err := c.Wait(); err != nil {
		t.Fatalf("program: %v: %s", err, out.String())
	}
	c.CloseControl()
	got := out.String()
	for _, w := range []string{"from-before", "sleep", "1000"} {
		if !strings.Contains(got, w) {
			t.Errorf("program said %q, want %q in it", got, w)
		}
	}
	if strings.Contains(got, "LEAKED-FD") {
		t.Errorf("the program inherited the first process's descriptors: %q", got)
	}
	if strings.Contains(got, "companion-says-hi") || !strings.Contains(compOut.String(), "companion-says-hi") {
		t.Errorf("outputs mixed: program %q, companion %q", got, compOut.String())
	}
}
