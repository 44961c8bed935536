package attribution

import (
	"path"
	"strings"

	"github.com/memgate/memgate/gate"
)

// Owner says which code on a stack is the repository's: the frames a
// reviewer can open and change. The zero Owner knows only that package
// main is the service's, and leaves files as the binary recorded them.
type Owner struct {
	// Packages are the import paths the repository's code lives under:
	// the module path of each go.mod in it, or a GOPATH-era repository's
	// import path, each with the directory that holds it.
	Packages []Root
	// Vendored are the modules under the repository's vendor directories.
	Vendored []Root
	// BuildDirs are the absolute paths the build saw the repository's root
	// at (the scratch copy it was built in, the checkout): a profile
	// records a file as such a path unless the build used -trimpath.
	BuildDirs []string
}

// Root is an import path and the directory, relative to the repository's
// root ("" for the root itself), its files are in.
type Root struct {
	ImportPath string
	Dir        string
}

// where is what an Owner makes of one frame.
type where int

const (
	foreign  where = iota // the standard library, the runtime, a dependency
	own                   // the repository's code
	vendored              // under the repository's vendor directory
)

// frame is one function of a profile's stack and the file and line the
// binary recorded for it.
type frame struct {
	fn   string
	file string
	line int
}

// place says whose a frame is, and its file relative to the repository's
// root when it is the repository's.
func (o Owner) place(f frame) (where, string) {
	file := path.Clean(strings.ReplaceAll(f.file, `\`, "/"))
	if f.file != "" {
		for _, dir := range o.BuildDirs {
			dir = strings.TrimSuffix(path.Clean(strings.ReplaceAll(dir, `\`, "/")), "/")
			if rel, ok := strings.CutPrefix(file, dir+"/"); ok && dir != "" && dir != "." {
				if isVendor(rel) {
					return vendored, rel
				}
				return own, rel
			}
		}
		// Built in a GOPATH the build dirs do not name: the repository's
		// import path under a src directory.
		for rest := file; ; {
			i := strings.Index(rest, "/src/")
			if i < 0 || !path.IsAbs(file) {
				break
			}
			rest = rest[i+len("/src/"):]
			if rel, ok := underRoot(o.Packages, rest); ok {
				if isVendor(rel) {
					return vendored, rel
				}
				return own, rel
			}
		}
		// Built with -trimpath: a file is its package's import path and
		// name. A dependency's carries a version ("example.com/m@v1.2.0/")
		// even when its path starts with the repository's module path.
		if rel, ok := underRoot(o.Vendored, file); ok {
			return vendored, rel
		}
		if rel, ok := underRoot(o.Packages, file); ok {
			return own, rel
		}
		// A file in the module cache is a dependency's, whatever its
		// package is called.
		if strings.Contains(file, "@") {
			return foreign, ""
		}
	}
	// No file to go by, or one recorded where the build dirs do not say
	// (a build.command that built elsewhere): the function's package path.
	pkg := packageOf(f.fn)
	if _, ok := underRoot(o.Vendored, pkg+"/"); ok {
		return vendored, ""
	}
	if _, ok := underRoot(o.Packages, pkg+"/"); ok || pkg == "main" {
		return own, ""
	}
	return foreign, ""
}

// underRoot finds the root file (an import-path-prefixed name) is under,
// and the repository-relative file it is.
func underRoot(roots []Root, file string) (string, bool) {
	best, rel := -1, ""
	for _, r := range roots {
		ip := strings.TrimSuffix(r.ImportPath, "/")
		rest, ok := strings.CutPrefix(file, ip+"/")
		if !ok || ip == "" || strings.Contains(rest, "@") {
			continue
		}
		// The longest import path wins: a nested module is its own.
		if len(ip) > best {
			best, rel = len(ip), path.Join(r.Dir, rest)
		}
	}
	return rel, best >= 0
}

func isVendor(rel string) bool {
	return strings.HasPrefix(rel, "vendor/") || strings.Contains(rel, "/vendor/")
}

// packageOf is a function's package path: "example.com/m/pkg" of
// "example.com/m/pkg.(*T).Method".
func packageOf(fn string) string {
	slash := strings.LastIndexByte(fn, '/')
	if dot := strings.IndexByte(fn[slash+1:], '.'); dot >= 0 {
		return fn[:slash+1+dot]
	}
	return fn
}

// culprit is the first frame of the repository's own code on a stack
// (leaf first), else the first of its vendored code; nil when there is
// neither.
func (o Owner) culprit(stack []frame) *gate.Frame {
	var firstVendored *gate.Frame
	for _, f := range stack {
		switch w, rel := o.place(f); w {
		case own:
			return &gate.Frame{Function: f.fn, File: fileOrRecorded(rel, f.file), Line: f.line}
		case vendored:
			if firstVendored == nil {
				firstVendored = &gate.Frame{Function: f.fn, File: fileOrRecorded(rel, f.file), Line: f.line, Vendored: true}
			}
		}
	}
	return firstVendored
}

func fileOrRecorded(rel, recorded string) string {
	if rel != "" {
		return rel
	}
	return recorded
}
