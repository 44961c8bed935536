// Package golden compares test output with files under testdata/golden,
// and rewrites them when a test package's -update flag says so. Tests only.
package golden

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Check fails t when got differs from testdata/golden/name, saying at which
// line; with update it writes got there instead.
func Check(t testing.TB, name string, got []byte, update bool) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if string(want) == string(got) {
		return
	}
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(gl) && i < len(wl); i++ {
		if gl[i] != wl[i] {
			t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s\n(run the test with -update if the change is intended)", name, i+1, gl[i], wl[i])
		}
	}
	t.Fatalf("%s differs in length: %d lines, want %d (run the test with -update if the change is intended)", name, len(gl), len(wl))
}
