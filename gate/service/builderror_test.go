package service

import (
	"strings"
	"testing"
)

// The build's output is the repository's: the line a reason quotes is the
// compiler's first, printable and clipped, whatever the build printed.
func TestFirstBuildErrorIsPrintableAndClipped(t *testing.T) {
	for _, tc := range []struct{ out, want string }{
		{"memgate: dependencies not prebuilt\n# example.com/x\n./main.go:3:15: undefined: x\n./main.go:4:1: more\n", "./main.go:3:15: undefined: x"},
		{"\x1b[2J\x1b]0;pwned\x07fake: error\n", "?[2J?]0;pwned?fake: error"},
		{strings.Repeat("é", 300), strings.Repeat("é", 100) + "…"},
		{"memgate: only notes\n\n", ""},
	} {
		if got := firstBuildError(tc.out); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.out, got, tc.want)
		}
	}
}
