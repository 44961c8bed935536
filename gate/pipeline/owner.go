package pipeline

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/mod/modfile"

	"github.com/memgate/memgate/gate/attribution"
)

// Bounds on what repositoryOwner reads of a repository, which is hostile:
// a tree of a million directories or a go.mod of a gigabyte costs it no
// more than these.
const (
	ownerMaxEntries = 50_000
	ownerMaxDepth   = 8
	ownerMaxFile    = 1 << 20
)

// errOwnerWalkDone ends the walk once it has seen ownerMaxEntries.
var errOwnerWalkDone = errors.New("enough entries")

// repositoryOwner says what code of the repository at root is its own, for
// attribution to name: the module path of every go.mod in it (or
// importPath, a GOPATH-era repository's), the modules its vendor
// directories hold, and the directories the build saw the root at.
// Symlinks are not followed, files are read only while regular and up to
// ownerMaxFile, and a file that cannot be read is left out: the worst a
// repository can do is have its own frames go unnamed.
func repositoryOwner(root, importPath string, buildDirs ...string) attribution.Owner {
	o := attribution.Owner{BuildDirs: buildDirs}
	if importPath != "" {
		o.Packages = append(o.Packages, attribution.Root{ImportPath: importPath})
	}
	seen := 0
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if seen++; seen > ownerMaxEntries {
			return errOwnerWalkDone
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" || name == "vendor" ||
				strings.Count(rel, "/") >= ownerMaxDepth) {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() != "go.mod" || !d.Type().IsRegular() {
			return nil
		}
		dir := pathDir(rel)
		data, ok := readRegular(p)
		if !ok {
			return nil
		}
		if mp := modfile.ModulePath(data); mp != "" {
			o.Packages = append(o.Packages, attribution.Root{ImportPath: mp, Dir: dir})
		}
		if txt, ok := readRegular(filepath.Join(filepath.Dir(p), "vendor", "modules.txt")); ok {
			for _, m := range vendoredModules(txt) {
				o.Vendored = append(o.Vendored, attribution.Root{ImportPath: m, Dir: joinSlash(dir, "vendor/"+m)})
			}
		}
		return nil
	})
	return o
}

// vendoredModules lists the modules a vendor/modules.txt holds: its
// "# path version" lines.
func vendoredModules(txt []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(txt))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "#" && !strings.ContainsAny(f[1], `\@`) {
			out = append(out, f[1])
		}
	}
	return out
}

// readRegular reads a regular file, not through a symlink, up to
// ownerMaxFile bytes.
func readRegular(p string) ([]byte, bool) {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
		return nil, false
	}
	data, err := io.ReadAll(io.LimitReader(f, ownerMaxFile+1))
	if err != nil || len(data) > ownerMaxFile {
		return nil, false
	}
	return data, true
}

func pathDir(rel string) string {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i]
	}
	return ""
}

func joinSlash(dir, p string) string {
	if dir == "" {
		return p
	}
	return dir + "/" + p
}
