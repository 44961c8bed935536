package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// load.duration accepts up to 2 h, the server's job timeout is 30 min by
// default: a gate that cannot end in its job's time is a config error naming
// the key, not a gate stopped half-way on every attempt.
func TestConfigThatCannotFitTheJobTimeoutNamesTheKey(t *testing.T) {
	long := []byte("load:\n  warmup: 10s\n  duration: 2h\n")
	if _, err := Parse(long); err != nil {
		t.Fatalf("without a budget a 2h window is valid: %v", err)
	}
	_, err := ParseWithin(long, 30*time.Minute)
	var ke *KeyError
	if !errors.As(err, &ke) || strings.Join(ke.Path, ".") != "load.duration" || ke.Line != 3 {
		t.Fatalf("err %v (%#v), want a KeyError for load.duration on line 3", err, ke)
	}
	for _, want := range []string{"4h8m5s", "more than the 30m0s", "shorten load.duration"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	// The defaults' worst case: 5m build + 30s readiness + 10s + 40s + 10s
	// + a second burst of 40s and its 10s cooldown + 5s + the 2m margin.
	if got := Default().WorstCase(); got != 9*time.Minute+25*time.Second {
		t.Errorf("default worst case %s", got)
	}
	if _, err := ParseWithin(nil, 9*time.Minute+25*time.Second); err != nil {
		t.Errorf("defaults in exactly their worst case: %v", err)
	}
	// A tight job timeout: the build timeout is the longest phase.
	if _, err := ParseWithin(nil, 5*time.Minute); err == nil || !strings.Contains(err.Error(), "build.timeout: the gate could take") {
		t.Errorf("defaults in 5m: %v", err)
	}
	if _, err := ParseWithin([]byte("build:\n  timeout: 1m\nload:\n  duration: 25s\n"), 5*time.Minute); err != nil {
		t.Errorf("a short gate in 5m: %v", err)
	}
}

// Dependencies start one after another, each waited for up to its
// timeout, and one built from the repository builds first: all of it
// counts towards the gate's worst case (found by an attacker's review: a
// config with eight dependencies of 10 h each fitted half a job).
func TestDependenciesCountTowardsTheJobBudget(t *testing.T) {
	var b strings.Builder
	b.WriteString("dependencies:\n")
	for i := range 4 {
		fmt.Fprintf(&b, "  d%d: {package: ./stub, timeout: 2m}\n", i)
	}
	_, err := ParseFor([]byte(b.String()), Policy{JobTimeout: 45 * time.Minute, Pair: true})
	if err == nil || !strings.Contains(err.Error(), "the gate could take 37m25s (build.timeout 5m0s + dependencies.d0's build (build.timeout) 5m0s + dependencies.d0.timeout 2m0s") ||
		!strings.Contains(err.Error(), "shorten build.timeout") {
		t.Fatalf("got %v", err)
	}
	if _, err := Parse([]byte("dependencies:\n  db: {kind: redis, timeout: 10h}\n")); err == nil || !strings.Contains(err.Error(), "line 2: dependencies.db.timeout: at most 10m0s") {
		t.Fatalf("a 10 h dependency timeout: %v", err)
	}
	// One Redis: its 60 s default wait, and nothing to build.
	cfg, err := Parse([]byte("dependencies:\n  db: {kind: redis}\n"))
	if err != nil || cfg.WorstCase() != Default().WorstCase()+time.Minute {
		t.Fatalf("worst case %s, %v", cfg.WorstCase(), err)
	}
}
