package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/internal/testlock"
)

// The service of the --base tests, in files a change can touch one at a
// time: main.go serves, store.go keeps (or leaks) what a request leaves,
// lock.go holds (or not) a lock on the request path.
const (
	pairMain = `package main

import (
	"net/http"
	_ "net/http/pprof"
	"os"
)

func main() {
	s := &store{}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		pause()
		s.remember(make([]byte, 1024))
		w.Write([]byte("{\"ok\":true}"))
	})
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}
`
	storeLeaks = `package main

import "sync"

type store struct {
	mu   sync.Mutex
	kept [][]byte
}

//go:noinline
func (s *store) remember(b []byte) {
	s.mu.Lock()
	s.kept = append(s.kept, b)
	s.mu.Unlock()
}
`
	storeForgets = `package main

type store struct{ last []byte }

//go:noinline
func (s *store) remember(b []byte) { s.last = b }
`
	noLock = `package main

func pause() {}
`
	// lockEvery3s is the incident: a lock held 300 ms every few seconds
	// (clearing a big map) that every request takes.
	lockEvery3s = `package main

import (
	"sync"
	"time"
)

var mu sync.Mutex

func init() {
	go func() {
		for {
			time.Sleep(3 * time.Second)
			mu.Lock()
			time.Sleep(300 * time.Millisecond)
			mu.Unlock()
		}
	}()
}

func pause() { mu.Lock(); mu.Unlock() }
`
)

// pairRepo commits base (on main) and then the change on top: the
// checkout is the head, main the base.
func pairRepo(t *testing.T, base, change map[string]string) string {
	t.Helper()
	files := map[string]string{"go.mod": "module example.com/pair\n\ngo 1.22\n", "main.go": pairMain}
	for k, v := range base {
		files[k] = v
	}
	dir := testgit.Init(t)
	testgit.Commit(t, dir, "base", files)
	testgit.Git(t, dir, "checkout", "-q", "-b", "change")
	testgit.Commit(t, dir, "change", change)
	return dir
}

// gitState is what a read-only use of a repository leaves as it was:
// every file under .git with its size and time, and the work tree's status.
func gitState(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(filepath.Join(dir, ".git"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if info, err := d.Info(); err == nil && !d.IsDir() {
			fmt.Fprintf(&b, "%s %s %d\n", p, info.ModTime(), info.Size())
		}
		return nil
	})
	// --no-optional-locks: the status itself must not refresh the index.
	return b.String() + testgit.Git(t, dir, "--no-optional-locks", "status", "--porcelain", "--ignored")
}

func checkBase(t *testing.T, dir string, extra ...string) (int, gate.Comparison, string) {
	t.Helper()
	var out, errb bytes.Buffer
	args := append([]string{dir, "--base", "main", "--warmup", "2s", "--duration", "8s", "--rate", "150", "--json", "-"}, extra...)
	code := runCheck(context.Background(), args, os.Getenv, &out, &errb)
	var c gate.Comparison
	if err := json.Unmarshal(out.Bytes(), &c); err != nil {
		t.Fatalf("exit %d; stdout is not a comparison: %v\n%s\n%s", code, err, out.String(), errb.String())
	}
	return code, c, errb.String()
}

// TestCheckBase is memgate check --base on real repositories, each
// scenario a base commit and a change: a leak the change did not touch is
// the base's, never the change's; a leak the change adds fails; a leak the
// change removes passes; a lock the change puts on the request path fails
// on latency, confirmed on a fresh process.
func TestCheckBase(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real gates")
	}
	testlock.Gate(t)
	for _, tc := range []struct {
		name         string
		base, change map[string]string
		extra        []string
		code         int
		verdict      gate.Verdict
		outcome      gate.Outcome
		headline     string
		confirmed    int
	}{
		{"already leaks on main", map[string]string{"store.go": storeLeaks, "lock.go": noLock},
			map[string]string{"README.md": "a change that leaves the leak alone\n"}, nil,
			0, gate.Neutral, gate.OutcomeAlready, "already leaks on main: heap +", 0},
		{"the change leaks", map[string]string{"store.go": storeForgets, "lock.go": noLock},
			map[string]string{"store.go": storeLeaks}, []string{"--confirm", "0"},
			1, gate.Fail, gate.OutcomeIntroduced, "introduced by this change: heap +", 0},
		{"the change fixes the leak", map[string]string{"store.go": storeLeaks, "lock.go": noLock},
			map[string]string{"store.go": storeForgets}, nil,
			0, gate.Pass, gate.OutcomeFixed, "fixes the leak on main: heap +", 0},
		{"the change holds a lock 300 ms every 3 s", map[string]string{"store.go": storeForgets, "lock.go": noLock},
			map[string]string{"lock.go": lockEvery3s}, nil,
			1, gate.Fail, gate.OutcomeWorse, "worse than main: latency p99", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := pairRepo(t, tc.base, tc.change)
			before := gitState(t, dir)
			code, c, stderr := checkBase(t, dir, tc.extra...)
			t.Logf("%s: %s\n%s", c.Verdict, c.Headline, rowsText(c))
			if code != tc.code || c.Verdict != tc.verdict || c.Outcome != tc.outcome || !strings.HasPrefix(c.Headline, tc.headline) {
				t.Fatalf("exit %d %s/%s %q; want exit %d %s/%s %q\n%s", code, c.Verdict, c.Outcome, c.Headline,
					tc.code, tc.verdict, tc.outcome, tc.headline, stderr)
			}
			// A failure must be confirmed; a first run that failed on the
			// machine's noise (another process's burst of CPU slows a p99)
			// and did not repeat is a flake, and the verdict stands.
			switch {
			case tc.verdict == gate.Fail && (len(c.Confirmations) != tc.confirmed || c.Flake):
				t.Errorf("confirmations %d (flake %v), want %d", len(c.Confirmations), c.Flake, tc.confirmed)
			case tc.verdict != gate.Fail && len(c.Confirmations) != 0 && !c.Flake:
				t.Errorf("%d confirmations of a verdict that is not a failure", len(c.Confirmations))
			case c.Flake:
				t.Logf("a flake: the first run said %q", c.Head.Reason)
			}
			if c.Base.Ref != "main" || c.Base.SHA == c.Head.SHA || c.Head.SHA == "" || c.Base.Report == nil || c.Head.Report == nil {
				t.Errorf("runs: base %s %s, head %s", c.Base.Ref, c.Base.SHA, c.Head.SHA)
			}
			if after := gitState(t, dir); after != before {
				t.Errorf("the repository changed:\n%s\n---\n%s", before, after)
			}
			for _, want := range []string{"COMPARED", "BASE main " + c.Base.SHA[:7], "HEAD " + c.Head.SHA[:7], gate.CmpLatencyP99, "heap_growth"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("the side-by-side table lacks %q:\n%s", want, stderr)
				}
			}
		})
	}
}

func rowsText(c gate.Comparison) string {
	var b strings.Builder
	for _, r := range c.Rows {
		b.WriteString(r.Detail + "\n")
	}
	return b.String()
}

func TestCheckBaseRefused(t *testing.T) {
	dir := pairRepo(t, map[string]string{"store.go": storeForgets, "lock.go": noLock}, map[string]string{"README.md": "x\n"})
	notGit := t.TempDir()
	empty := filepath.Join(notGit, "empty.json")
	os.WriteFile(empty, []byte("{}"), 0o644)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{dir, "--base", "nosuchbranch"}, "--base nosuchbranch: not a commit"},
		{[]string{dir, "--base", "--upload-pack=touch /tmp/x"}, "not a commit"},
		{[]string{notGit, "--base", "main"}, "--base needs DIR in a git checkout"},
		{[]string{dir, "--confirm", "1"}, "--confirm and --base-report take --base"},
		{[]string{dir, "--base", "main", "--junit", "x.xml"}, "do not take --base"},
		{[]string{dir, "--base", "main", "--base-report", empty}, "not a memgate JSON report (no verdict)"},
		{[]string{dir, "--base", "main", "--base-report", filepath.Join(notGit, "missing.json")}, "--base-report: open"},
	} {
		var out, errb bytes.Buffer
		code := runCheck(context.Background(), tc.args, os.Getenv, &out, &errb)
		if code != 2 || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.args, code, errb.String(), tc.want)
		}
	}
}
