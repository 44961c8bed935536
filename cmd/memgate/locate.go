package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/google/pprof/profile"

	"github.com/memgate/memgate/gate/pipeline"
)

// srcLoc is a line of the repository.
type srcLoc struct {
	File string // relative to the repository root, slash-separated
	Line int64
}

// sourceLocations map the functions a report names to the lines of the
// repository where they allocate or wait, read from the run's profiles
// (the report itself names functions only).
type sourceLocations struct {
	heap      map[string]srcLoc
	goroutine map[string]srcLoc
}

// locateSources reads the end-of-window profiles. dir is the gated
// directory, root the repository root annotations are relative to. The
// profiles come from the service under test: a file name in them is only
// believed when the same file exists under dir, and only reported when it
// lies under root.
func locateSources(profiles map[string][]byte, dir, root string) sourceLocations {
	r := resolver{dir: dir, root: root, seen: map[string]string{}}
	if abs, err := filepath.Abs(dir); err == nil {
		r.dir = abs
	}
	if abs, err := filepath.Abs(root); err == nil {
		r.root = abs
	}
	return sourceLocations{
		heap:      r.lines(profiles[pipeline.HeapEnd], "inuse_space"),
		goroutine: r.lines(profiles[pipeline.GoroutineEnd], ""),
	}
}

type resolver struct {
	dir, root string
	seen      map[string]string // profile file name -> repository path ("" if none)
}

// lines maps each function to its line in the heaviest sample it appears
// in: where most of what the report counts was allocated or is waiting.
func (r resolver) lines(data []byte, sampleType string) map[string]srcLoc {
	out := map[string]srcLoc{}
	p, err := profile.ParseData(data)
	if err != nil || len(data) == 0 {
		return out
	}
	idx := 0
	for i, st := range p.SampleType {
		if st.Type == sampleType {
			idx = i
		}
	}
	best := map[string]int64{}
	for _, s := range p.Sample {
		if idx >= len(s.Value) {
			continue
		}
		v := s.Value[idx]
		for _, loc := range s.Location {
			for _, l := range loc.Line {
				if l.Function == nil {
					continue
				}
				name := l.Function.Name
				if prev, ok := best[name]; ok && prev >= v {
					continue
				}
				file := r.repoPath(l.Function.Filename)
				if file == "" || l.Line <= 0 {
					continue
				}
				best[name] = v
				out[name] = srcLoc{File: file, Line: l.Line}
			}
		}
	}
	return out
}

// repoPath finds the file a build saw at name (an absolute path inside the
// build's sandbox) under the gated directory, by the longest tail of its
// path that exists there as a regular file.
func (r resolver) repoPath(name string) string {
	if got, ok := r.seen[name]; ok {
		return got
	}
	r.seen[name] = ""
	parts := strings.Split(filepath.ToSlash(filepath.Clean(name)), "/")
	for i := range parts {
		tail := parts[i:]
		if len(tail) == 0 || tail[0] == "" || tail[0] == ".." {
			continue
		}
		cand := filepath.Join(append([]string{r.dir}, tail...)...)
		if !strings.HasPrefix(cand, r.dir+string(filepath.Separator)) {
			continue
		}
		st, err := os.Lstat(cand)
		if err != nil || !st.Mode().IsRegular() || !r.inside(cand) {
			continue
		}
		rel, err := filepath.Rel(r.root, cand)
		if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return ""
		}
		r.seen[name] = filepath.ToSlash(rel)
		return r.seen[name]
	}
	return ""
}

// inside reports whether path, symbolic links resolved, stays under the
// gated directory: a link in the repository must not lead an annotation
// to a file elsewhere.
func (r resolver) inside(path string) bool {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false
	}
	dir, err := filepath.EvalSymlinks(r.dir)
	if err != nil {
		return false
	}
	return strings.HasPrefix(real, dir+string(filepath.Separator))
}
