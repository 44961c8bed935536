package pipeline

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// A descriptor's target is the service's to name (a file it created): it is
// quoted printable and short, whatever the service chose.
func TestOpenFileTargetsAreClippedAndPrintable(t *testing.T) {
	hostile := "/tmp/\x1b[31mx\n## injected" + strings.Repeat("é", 300)
	got := openFileGrowth(map[string]int{}, map[string]int{hostile: 3, "pipe": 1}, 10)
	if len(got) != 2 || got[0].Delta != 3 {
		t.Fatalf("growth %+v", got)
	}
	name := got[0].Target
	if strings.ContainsAny(name, "\x1b\n") || len(name) > 200+len("…") || !utf8.ValidString(name) {
		t.Errorf("target not clipped to printable text: %q", name)
	}
}
