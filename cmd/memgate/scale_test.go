package main

import (
	"database/sql"
	"fmt"
	"github.com/memgate/memgate/storage/storagetest"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
)

// Scale-out on Postgres, as separate processes: one server that runs no
// gates and three workers share a database. A dozen gates are queued; one
// worker is killed with SIGKILL in the middle of a gate, which another
// worker finishes after the lease; every gate completes once and every check
// run is completed.
func TestScaleOutOnPostgresSurvivesAKilledWorker(t *testing.T) {
	skipShort(t)
	base := os.Getenv("MEMGATE_TEST_DATABASE_URL")
	if base == "" {
		t.Skip("MEMGATE_TEST_DATABASE_URL is not set: the Postgres scale-out test is skipped")
	}
	dbURL := storagetest.Database(t, base)
	bin := buildMemgate(t)
	repo := newTestRepo(t)
	// Short gates: the test is about sharing the work, not the verdicts.
	git(t, repo.dir, "checkout", "-q", "main")
	os.WriteFile(filepath.Join(repo.dir, ".memgate.yml"), []byte("load:\n  warmup: 1s\n  duration: 5s\n  cooldown: 2s\n"), 0o644)
	git(t, repo.dir, "commit", "-q", "-am", "shorter gates")
	repo.base = git(t, repo.dir, "rev-parse", "HEAD")
	gh := newFakeGitHub(t)
	key := appKey(t)

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	env := append(os.Environ(), "MEMGATE_DATABASE_URL="+dbURL, "MEMGATE_WEBHOOK_SECRET="+testSecret,
		"MEMGATE_GITHUB_API_URL="+gh.srv.URL+"/", "MEMGATE_GITHUB_APP_ID=7", "MEMGATE_GITHUB_APP_KEY_FILE="+key,
		"MEMGATE_ALLOW_LOCAL_REPOS=true", "MEMGATE_LEASE=6s", "MEMGATE_ADDR="+addr, "MEMGATE_WORKDIR="+t.TempDir())
	startProc(t, bin, env, "serve", "--workers", "0")
	waitHTTP(t, "http://"+addr+"/readyz")
	workers := []*exec.Cmd{startProc(t, bin, env, "worker").cmd, startProc(t, bin, env, "worker").cmd, startProc(t, bin, env, "worker").cmd}

	const gates = 12
	var heads []string
	for i := 0; i < gates; i++ {
		head := repo.pr(t, fmt.Sprintf("pr-%d", i), map[string]string{"README.md": fmt.Sprintf("change %d\n", i)})
		heads = append(heads, head)
		body := prPayload(t, "opened", repo, 100+i, head)
		if d := deliver(t, "http://"+addr, "pull_request", fmt.Sprintf("scale-%d", i), body, sign(body, testSecret)); d.Outcome != "queued" {
			t.Fatalf("delivery %d: %+v", i, d)
		}
	}

	// Kill the first worker seen running a service (a child process).
	var killed int
	deadline := time.Now().Add(2 * time.Minute)
	for killed == 0 && time.Now().Before(deadline) {
		for _, w := range workers {
			if hasChild(w.Process.Pid) {
				time.Sleep(time.Second) // well inside its gate
				syscall.Kill(-w.Process.Pid, syscall.SIGKILL)
				killed = w.Process.Pid
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if killed == 0 {
		t.Fatal("no worker ever ran a gate")
	}

	db, err := sql.Open("pgx", dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	deadline = time.Now().Add(4 * time.Minute)
	for {
		var done, rescued int
		db.QueryRow(`SELECT COUNT(*) FILTER (WHERE status = 'completed'), COALESCE(SUM(rescues), 0) FROM runs`).Scan(&done, &rescued)
		if done == gates {
			if rescued < 1 {
				t.Errorf("no run was rescued after worker %d was killed", killed)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d gates completed, %d rescued", done, gates, rescued)
		}
		time.Sleep(500 * time.Millisecond)
	}
	var runs int
	db.QueryRow(`SELECT COUNT(*) FROM runs`).Scan(&runs)
	if runs != gates {
		t.Errorf("%d runs for %d deliveries", runs, gates)
	}
	// Every head's check run is completed exactly once.
	for _, head := range heads {
		c := waitCheck(t, gh, head)
		n := 0
		for _, st := range c.Statuses {
			if st == "completed" {
				n++
			}
		}
		if n != 1 {
			t.Errorf("check of %s completed %d times (%v)", head[:7], n, c.Statuses)
		}
	}
}

// hasChild reports whether a worker runs a gate's service (its children
// are git and go build too; the service runs from a memgate-run- directory).
func hasChild(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			cpid, _ := strconv.Atoi(c)
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cpid))
			if strings.Contains(string(cmd), "memgate-run-") && strings.Contains(string(cmd), "/service") {
				return true
			}
		}
	}
	return false
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
