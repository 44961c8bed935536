package gate

import (
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxSourcePath bounds a repository path memgate will link or annotate;
// longer ones are not a checkout's files.
const maxSourcePath = 1024

// SourceLine is a line of the repository: its path relative to the
// repository's root, slash-separated, and its line number.
type SourceLine struct {
	File     string
	Line     int
	Vendored bool // under vendor/: the repository's copy of a dependency
}

// Source is where a frame's code is in the repository, for a link or an
// annotation. ok is false when the frame is not one memgate may point a
// reviewer at: nil, without a line, or with a file that is not a plain
// path inside the repository. The file comes from a profile the service
// under test served, so it is checked, not believed: relative, clean (no
// "." or ".." elements, no doubled or trailing slash), slash-separated and
// printable. A frame that says it is vendored must be under vendor/; one
// under vendor/ is vendored whatever it says.
func (f *Frame) Source() (SourceLine, bool) {
	if f == nil || f.Line <= 0 || !cleanRelative(f.File) {
		return SourceLine{}, false
	}
	vendored := strings.HasPrefix(f.File, "vendor/")
	if f.Vendored && !vendored {
		return SourceLine{}, false
	}
	return SourceLine{File: f.File, Line: f.Line, Vendored: vendored}, true
}

// String is file:line.
func (s SourceLine) String() string { return s.File + ":" + strconv.Itoa(s.Line) }

func cleanRelative(p string) bool {
	if p == "" || len(p) > maxSourcePath || !utf8.ValidString(p) || path.IsAbs(p) || path.Clean(p) != p {
		return false
	}
	if p == "." || p == ".." || strings.HasPrefix(p, "../") {
		return false
	}
	// A Windows volume ("C:...") is a path outside any checkout.
	if len(p) >= 2 && p[1] == ':' {
		return false
	}
	for _, r := range p {
		if r == '\\' || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || r == utf8.RuneError {
			return false
		}
	}
	return true
}
