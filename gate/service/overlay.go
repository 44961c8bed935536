package service

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"go/build"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"unicode"
)

// A build.command builds whatever it likes, so memgate cannot tell which
// package is the service. It adds the reader to every main package of the
// repository (through GOFLAGS=-overlay=…, which every go build, go install
// and go run of the command takes): the reader does nothing unless
// MEMGATE_READER_ADDR is set, which only the service's environment has, so
// a second binary or a go run generator that gets it too is not changed.
// After the build memgate looks for the reader in the binary: a command
// that drops GOFLAGS, or builds somewhere else, gets a note saying what to
// do instead of a reader that never answers.

// Bounds on the repository's tree, which memgate walks as itself.
const (
	maxWalkDirs     = 20000
	maxMainPackages = 200
)

// readerMarker is a string only the reader puts in a binary.
const readerMarker = "/memgate/v1/metrics"

// mainPackageDirs lists the directories under root, relative and starting
// with ".", whose Go files make a main package for this platform (build
// constraints applied, tests, vendor/, testdata/ and _ or . directories
// left out, as the go command does for ./...). Nothing is followed: the
// tree is the repository's, and a symlink or a FIFO among its files is
// skipped, not opened.
func mainPackageDirs(root string) ([]string, error) {
	ctxt := build.Default
	ctxt.GOPATH = ""
	ctxt.OpenFile = openHeader
	var dirs []string
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		name := d.Name()
		if p != root && (name == "vendor" || name == "testdata" || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_")) {
			return filepath.SkipDir
		}
		if n++; n > maxWalkDirs {
			return fmt.Errorf("more than %d directories", maxWalkDirs)
		}
		pkg, err := ctxt.ImportDir(p, 0)
		if err != nil || pkg.Name != "main" || len(pkg.GoFiles)+len(pkg.CgoFiles) == 0 {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		if rel != "." {
			rel = "./" + filepath.ToSlash(rel)
		}
		if dirs = append(dirs, rel); len(dirs) > maxMainPackages {
			return fmt.Errorf("more than %d main packages", maxMainPackages)
		}
		return nil
	})
	return dirs, err
}

// openRegular opens a repository file only if it is a regular file, not
// following a symlink and not waiting on a FIFO (see openOutput).
func openRegular(path string) (io.ReadCloser, error) {
	f, err := openOutput(path)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// maxHeader bounds what is read of a Go file to learn its package: the
// go/build reader keeps the header (comments, package clause, imports).
const maxHeader = 1 << 20

// openHeader is openRegular, reading at most maxHeader bytes.
func openHeader(path string) (io.ReadCloser, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.LimitReader(f, maxHeader), f}, nil
}

// readerDirs are the directories, relative to the checkout, the reader is
// added to.
func readerDirs(spec BuildSpec) ([]string, error) {
	if spec.Command == "" {
		if spec.Package == "" || !strings.HasPrefix(spec.Package, ".") {
			return nil, fmt.Errorf("build.package %q is not a directory path", spec.Package)
		}
		return []string{spec.Package}, nil
	}
	dirs, err := mainPackageDirs(spec.Dir)
	if err != nil {
		return nil, fmt.Errorf("looking for the main packages build.command may build: %v", err)
	}
	if len(dirs) == 0 {
		return nil, errors.New("build.command: the repository has no Go main package to add it to")
	}
	return dirs, nil
}

// hasReader says whether the binary at path holds the reader.
func hasReader(path string) bool {
	f, err := openOutput(path)
	if err != nil {
		return false
	}
	defer f.Close()
	return containsBytes(bufio.NewReaderSize(f, 1<<20), []byte(readerMarker))
}

// containsBytes scans r for needle, keeping the bytes a match could span
// between two reads.
func containsBytes(r io.Reader, needle []byte) bool {
	buf := make([]byte, 1<<20)
	keep := 0
	for {
		n, err := r.Read(buf[keep:])
		if bytes.Contains(buf[:keep+n], needle) {
			return true
		}
		if err != nil {
			return false
		}
		if total := keep + n; total >= len(needle) {
			keep = copy(buf, buf[total-len(needle)+1:total])
		} else {
			keep = total
		}
	}
}

// readerMissing is the note for a build that was given the reader and did
// not put it in the binary.
func readerMissing(spec BuildSpec) string {
	if spec.Command == "" {
		return "reader not added: the binary does not hold it (does build.flags or build.env set -overlay?)"
	}
	return "reader not added: the binary build.command wrote does not hold it. memgate passes it to the command's " +
		"go builds in GOFLAGS (-overlay=…, for every main package of the repository); keep $GOFLAGS in the command " +
		`(e.g. GOFLAGS="$GOFLAGS -tags=prod" go build …), or import net/http/pprof in the service and set pprof.mode: service`
}

// explainBuildError adds to a failed build's error what the user can do,
// for the go command's messages that have a one-key fix.
func explainBuildError(err error, out string) error {
	switch {
	case strings.Contains(out, "updates to go.mod needed"):
		return fmt.Errorf("%w (go.mod is not tidy: run go mod tidy and commit, or set build.flags: [-mod=mod] in .memgate.yml)", err)
	case strings.Contains(out, "inconsistent vendoring"):
		return fmt.Errorf("%w (vendor/ does not match go.mod: run go mod vendor and commit)", err)
	case strings.Contains(out, "go.mod file not found") || strings.Contains(out, "cannot find main module"):
		return fmt.Errorf("%w (no go.mod: set build.import_path in .memgate.yml to build in GOPATH mode)", err)
	}
	if line := firstBuildError(out); line != "" {
		return fmt.Errorf("%w: %s", err, line)
	}
	return err
}

// firstBuildError is the build output's first line that is the compiler's
// or the go command's (not memgate's own notes, not a "# package" header),
// made printable and clipped: the reason a reviewer reads in the title
// ("build failed: exit status 1: ./main.go:3:15: undefined: x") instead of
// only in the build's output. The output is the repository's: no escape
// codes or newlines get through.
func firstBuildError(out string) string {
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "memgate:") || strings.HasPrefix(line, "# ") {
			continue
		}
		line = strings.Map(func(r rune) rune {
			if unicode.IsPrint(r) {
				return r
			}
			return '?'
		}, line)
		if len(line) > 200 {
			line = strings.ToValidUTF8(line[:200], "") + "…"
		}
		return line
	}
	return ""
}
