package main

import (
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// buildMemgate builds the binary once per test.
func buildMemgate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "memgate")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build memgate: %v\n%s", err, out)
	}
	return bin
}

type proc struct {
	cmd *exec.Cmd
	log string
}

// startProc starts memgate in a process group of its own, killed with
// everything it started when the test ends; its log is shown on failure.
func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	logf, _ := os.CreateTemp(t.TempDir(), "memgate-*.log")
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logf.Name()}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(p.log)
			t.Logf("memgate log:\n%s", tail(string(b), 4000))
		}
	})
	return p
}

// waitServiceOf waits until the process runs a gate's service and returns
// the service's pid.
func waitServiceOf(t *testing.T, pid int) int {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
		for _, f := range tasks {
			b, _ := os.ReadFile(f)
			for _, c := range strings.Fields(string(b)) {
				cmd, _ := os.ReadFile("/proc/" + c + "/cmdline")
				if strings.Contains(string(cmd), "memgate-run-") {
					var cpid int
					fmt.Sscan(c, &cpid)
					return cpid
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("memgate never started a service")
	return 0
}

func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !strings.Contains(string(b), ") Z ")
}

func faultEnv(t *testing.T, db, github, key, addr string) []string {
	return append(os.Environ(), "MEMGATE_DATABASE_URL=sqlite:"+db, "MEMGATE_WEBHOOK_SECRET="+testSecret,
		"MEMGATE_GITHUB_API_URL="+github+"/", "MEMGATE_GITHUB_APP_ID=7", "MEMGATE_GITHUB_APP_KEY_FILE="+key,
		"MEMGATE_ALLOW_LOCAL_REPOS=true", "MEMGATE_LEASE=3s", "MEMGATE_ADDR="+addr, "MEMGATE_WORKDIR="+t.TempDir())
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// SIGKILL memgate in the middle of a gate: its service dies with it, and
// when memgate starts again the gate is rescued, run and its check
// completed.
func TestKilledMidGateIsRescuedAfterRestart(t *testing.T) {
	skipShort(t)
	bin := buildMemgate(t)
	repo := newTestRepo(t)
	head := repo.pr(t, "pr", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	db, key, addr := filepath.Join(t.TempDir(), "m.db"), appKey(t), freeAddr(t)
	env := faultEnv(t, db, gh.srv.URL, key, addr)

	p := startProc(t, bin, env, "serve")
	waitHTTP(t, "http://"+addr+"/readyz")
	body := prPayload(t, "opened", repo, 4, head)
	d := deliver(t, "http://"+addr, "pull_request", "kill-1", body, sign(body, testSecret))
	service := waitServiceOf(t, p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGKILL)
	p.cmd.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for alive(service) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if alive(service) {
		t.Fatalf("the service %d outlived memgate", service)
	}

	startProc(t, bin, env, "serve")
	waitHTTP(t, "http://"+addr+"/readyz")
	if r := waitRun(t, "http://"+addr, d.RunID); r.Status != "completed" {
		t.Fatalf("after restart: %+v", r)
	}
	if c := waitCheck(t, gh, head); c.Conclusion == "" {
		t.Fatalf("check %+v", c)
	}
	conn, _ := sql.Open("sqlite", db)
	defer conn.Close()
	var rescues int
	conn.QueryRow(`SELECT rescues FROM runs WHERE id = ?`, d.RunID).Scan(&rescues)
	if rescues != 1 {
		t.Errorf("rescues %d, want 1", rescues)
	}
}

// SIGTERM: memgate stops taking work but lets the running gate finish.
func TestTerminatedServerFinishesItsGate(t *testing.T) {
	skipShort(t)
	bin := buildMemgate(t)
	repo := newTestRepo(t)
	head := repo.pr(t, "pr", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	db, key, addr := filepath.Join(t.TempDir(), "m.db"), appKey(t), freeAddr(t)
	p := startProc(t, bin, faultEnv(t, db, gh.srv.URL, key, addr), "serve")
	waitHTTP(t, "http://"+addr+"/readyz")
	body := prPayload(t, "opened", repo, 4, head)
	d := deliver(t, "http://"+addr, "pull_request", "term-1", body, sign(body, testSecret))
	waitServiceOf(t, p.cmd.Process.Pid)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("memgate exited with %v after SIGTERM", err)
	}
	conn, _ := sql.Open("sqlite", db)
	defer conn.Close()
	var status, verdict string
	conn.QueryRow(`SELECT status, verdict FROM runs WHERE id = ?`, d.RunID).Scan(&status, &verdict)
	if status != "completed" || verdict != "pass" {
		t.Fatalf("after SIGTERM the gate is %s/%s, want completed/pass", status, verdict)
	}
	if c := waitCheck(t, gh, head); c.Conclusion != "success" {
		t.Fatalf("check %+v", c)
	}
}
