// Command realworld gates real open-source Go services at real leak-fix
// commits, as a new user would: each pair is a repository, the commit
// before a leak fix and the fix itself, and the files a user adds to adopt
// memgate (testdata/NAME/overlay: a .memgate.yml written from the README, and
// where the service needs one, a stub of its upstream declared as a
// dependency). It runs `memgate check` on both commits and prints a
// Markdown table: the verdicts, whether they are right (the leaking commit
// must fail, the fix must pass), and whether the headline names the
// culprit the fix changed.
//
// The repositories come from -source, a directory of bare or normal git
// repositories laid out as OWNER+NAME/repo (the layout of the project's
// fetch tool), or are cloned from GitHub with -clone when the machine has
// the network. It is a benchmark, not a test: CI has no GitHub. Each gate
// holds the machine-wide gate lock.
//
//	go run ./bench/realworld -source /work/.mirror -runs 3 > bench/out/realworld.md
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testlock"
)

// pair is one leak fix in a real repository. testdata/NAME/pair.json holds it.
type pair struct {
	Name    string `json:"-"`
	Repo    string `json:"repo"`    // owner/name on GitHub
	Leaking string `json:"leaking"` // the commit before the fix
	Fixed   string `json:"fixed"`   // the fix
	Culprit string `json:"culprit"` // the function the fix changed, as a headline must name it
	Kind    string `json:"kind"`    // what kind of service and leak, for the table
	// ImportPath is where a GOPATH-era repository is checked out under
	// GOPATH/src (what `memgate serve` knows from the repository's name).
	ImportPath string `json:"import_path,omitempty"`
}

func main() {
	source := flag.String("source", "", "directory of repositories as OWNER+NAME/repo")
	clone := flag.Bool("clone", false, "clone from https://github.com instead (needs the network)")
	runs := flag.Int("runs", 1, "runs per commit")
	only := flag.String("only", "", "run only pairs whose name contains this")
	out := flag.String("out", "bench/out/realworld", "where checkouts and JSON reports go")
	memgate := flag.String("memgate", "", "memgate binary (default: build ./cmd/memgate)")
	flag.Parse()
	log.SetFlags(0)
	if *source == "" && !*clone {
		log.Fatal("give -source DIR or -clone")
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	bin := *memgate
	if bin == "" {
		bin = filepath.Join(*out, "memgate")
		if b, err := exec.Command("go", "build", "-o", bin, "./cmd/memgate").CombinedOutput(); err != nil {
			log.Fatalf("build memgate: %v\n%s", err, b)
		}
	}
	pairs, err := readPairs("bench/realworld/testdata", *only)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("Real-world run of %s, %d run(s) per commit at each pair's .memgate.yml.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), *runs)
	fmt.Println("| pair | kind | commit | expected | verdicts | culprit named | headline (last run) |")
	fmt.Println("|---|---|---|---|---|---|---|")
	for _, p := range pairs {
		repo, err := repository(p, *source, *clone, *out)
		if err != nil {
			log.Printf("%s: %v", p.Name, err)
			continue
		}
		for _, side := range []struct {
			name, commit string
			expect       gate.Verdict
		}{{"leaking", p.Leaking, gate.Fail}, {"fixed", p.Fixed, gate.Pass}} {
			var verdicts []string
			named, last := 0, ""
			for i := 0; i < *runs; i++ {
				r, err := gateCommit(bin, p, repo, side.commit, filepath.Join(*out, fmt.Sprintf("%s-%s-%d", p.Name, side.name, i)))
				if err != nil {
					r = &gate.Report{Verdict: gate.Error, Reason: err.Error()}
				}
				log.Printf("%s %.7s run %d: %s: %s", p.Name, side.commit, i, r.Verdict, r.Reason)
				verdicts = append(verdicts, string(r.Verdict))
				if side.expect == gate.Fail && p.Culprit != "" && strings.Contains(r.Reason, p.Culprit) {
					named++
				}
				last = r.Reason
			}
			namedCell := "-"
			if side.expect == gate.Fail {
				namedCell = fmt.Sprintf("%d of %d", named, *runs)
			}
			fmt.Printf("| %s | %s | %.7s | %s | %s | %s | %s |\n", p.Name, p.Kind, side.commit, side.expect,
				strings.Join(verdicts, ", "), namedCell, cell(last))
		}
	}
}

func readPairs(dir, only string) ([]pair, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []pair
	for _, e := range entries {
		if !e.IsDir() || !strings.Contains(e.Name(), only) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name(), "pair.json"))
		if err != nil {
			return nil, err
		}
		var p pair
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		p.Name = e.Name()
		out = append(out, p)
	}
	return out, nil
}

// repository is a local git repository holding the pair's commits.
func repository(p pair, source string, clone bool, out string) (string, error) {
	if !clone {
		dir := filepath.Join(source, strings.Replace(p.Repo, "/", "+", 1), "repo")
		if _, err := os.Stat(dir); err != nil {
			return "", fmt.Errorf("no repository for %s under %s (fetch it first): %w", p.Repo, source, err)
		}
		return dir, nil
	}
	dir := filepath.Join(out, "clones", strings.Replace(p.Repo, "/", "+", 1))
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	b, err := exec.Command("git", "clone", "--bare", "https://github.com/"+p.Repo, dir).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("clone %s: %v: %s", p.Repo, err, b)
	}
	return dir, nil
}

// gateCommit checks the commit out with the pair's overlay on top and
// gates it with `memgate check`, holding the gate lock.
func gateCommit(bin string, p pair, repo, commit, work string) (*gate.Report, error) {
	os.RemoveAll(work)
	dir := filepath.Join(work, "src")
	if p.ImportPath != "" {
		// GOPATH-era: the checkout sits where `go get` would have put it.
		dir = filepath.Join(work, "gopath", "src", filepath.FromSlash(p.ImportPath))
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	archive := exec.Command("git", "-C", repo, "archive", "--format=tar", commit)
	untar := exec.Command("tar", "-x", "-C", dir)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return nil, err
	}
	untar.Stdin = pipe
	var stderr bytes.Buffer
	archive.Stderr = &stderr
	if err := untar.Start(); err != nil {
		return nil, err
	}
	if err := archive.Run(); err != nil {
		return nil, fmt.Errorf("git archive %s: %v: %s", commit, err, stderr.String())
	}
	if err := untar.Wait(); err != nil {
		return nil, fmt.Errorf("untar %s: %w", commit, err)
	}
	if err := copyOverlay(filepath.Join("bench/realworld/testdata", p.Name, "overlay"), dir); err != nil {
		return nil, err
	}
	release, err := testlock.Acquire()
	if err != nil {
		return nil, err
	}
	defer release()
	jsonPath := filepath.Join(work, "report.json")
	cmd := exec.Command(bin, "check", "--json", jsonPath, dir)
	cmd.Stderr = os.Stderr
	_ = cmd.Run() // the exit status is the verdict; the report says it
	data, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("no report: %w", err)
	}
	var r gate.Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func copyOverlay(from, to string) error {
	return filepath.WalkDir(from, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, path)
		target := filepath.Join(to, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", "\\|")
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}
