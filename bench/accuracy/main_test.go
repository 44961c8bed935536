package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/memgate/memgate/gate"
)

func TestMarginReadsTheWorstRun(t *testing.T) {
	crit := func(name string, v, limit float64, cmp string, st gate.Status) gate.Criterion {
		return gate.Criterion{Name: name, Value: v, Limit: limit, Comparison: cmp, Status: st}
	}
	healthy := []*gate.Report{
		{Criteria: []gate.Criterion{crit("heap_growth", 8, 32, "<=", gate.StatusPass), crit("load_rate", 1, 0.9, ">=", gate.StatusPass)}},
		{Criteria: []gate.Criterion{crit("heap_growth", 24, 32, "<=", gate.StatusPass), crit("goroutine_settle", -3, 5, "<=", gate.StatusPass)}},
	}
	if got, want := margin(healthy, gate.Pass), "heap_growth at 75% of its limit"; got != want {
		t.Errorf("healthy margin %q, want %q", got, want)
	}
	leaking := []*gate.Report{
		{Criteria: []gate.Criterion{crit("heap_growth", 160, 32, "<=", gate.StatusFail), crit("heap_fluctuation", 0.1, 0.15, "<=", gate.StatusPass)}},
		{Criteria: []gate.Criterion{crit("heap_growth", 96, 32, "<=", gate.StatusFail), crit("goroutine_settle", 20, 5, "<=", gate.StatusFail)}},
	}
	// The weakest run is the second: its strongest failing criterion is
	// the settle count at 4x; passing criteria do not count.
	if got, want := margin(leaking, gate.Fail), "goroutine_settle 4.0x its limit"; got != want {
		t.Errorf("leaking margin %q, want %q", got, want)
	}
	if got := margin([]*gate.Report{{Verdict: gate.Error}}, gate.Fail); got != "-" {
		t.Errorf("no criteria: %q", got)
	}
}

// Every leaking fixture declares its culprit, every healthy one none, and
// a run names it only when it failed and its headline says the function.
func TestCulpritsAreDeclaredAndCounted(t *testing.T) {
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir("bench/accuracy")
	dirs, _ := filepath.Glob("examples/*")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "CULPRIT")); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	for _, f := range append(append([]fixture(nil), fixtures...), sweep...) {
		// big-heap leaks unless LEAK_BYTES=0 makes it healthy.
		if c := culpritOf(f.dir); (c == "") != (f.expect == gate.Pass) && f.env["LEAK_BYTES"] != "0" {
			t.Errorf("%s: culprit %q for a fixture expected to %s", f.name, c, f.expect)
		}
	}
	reports := []*gate.Report{
		{Verdict: gate.Fail, Reason: "heap +1.0 KiB/request (+4.0 MiB over 20 s), whole requests retained (…), held per request by main.currentUser (main.go:24)"},
		{Verdict: gate.Fail, Reason: "heap +1.0 KiB/request (+4.0 MiB over 20 s), held by net/textproto.readMIMEHeader"},
		{Verdict: gate.Pass, Reason: "no leak: main.currentUser"},
	}
	if got, want := namedCell(reports, "main.currentUser"), "1/3 (YNN)"; got != want {
		t.Errorf("named %q, want %q", got, want)
	}
}
