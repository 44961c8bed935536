package attribution

import (
	"os"
	"strings"
	"testing"
)

// testdata/goroutineleak.pb.gz is a real profile: a Go 1.26 program built
// with GOEXPERIMENT=goroutineleakprofile whose main.leak started ten
// goroutines sending on a channel nobody else held.
func TestProvenLeaksNamesWhereTheyWait(t *testing.T) {
	data, err := os.ReadFile("testdata/goroutineleak.pb.gz")
	if err != nil {
		t.Fatal(err)
	}
	got, err := ProvenLeaks(data, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Read || got.Total != 10 || len(got.Stacks) != 1 {
		t.Fatalf("proven leaks %+v, want 10 in one stack", got)
	}
	s := got.Stacks[0]
	if s.Top != "main.leak.func1" || s.Count != 10 || !strings.Contains(strings.Join(s.Stack, " "), "runtime.chansend") {
		t.Fatalf("stack %+v", s)
	}
}

func TestProvenLeaksRefusesOtherProfiles(t *testing.T) {
	if _, err := ProvenLeaks(goroutineProfile(t), 5); err == nil || !strings.Contains(err.Error(), "not a goroutineleak profile") {
		t.Fatalf("a goroutine profile taken for a leak profile: %v", err)
	}
	if _, err := ProvenLeaks([]byte("unknown profile\n"), 5); err == nil {
		t.Fatal("a 404 page parsed as a profile")
	}
}
