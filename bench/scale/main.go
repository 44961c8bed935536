// Command scale measures gates per hour with 1, 2 and 3 worker processes
// sharing one Postgres queue, at memgate's default gate settings, on this
// machine. It builds memgate, makes a git repository with one pull request
// per gate (the healthy-json example), starts `memgate serve --workers 0`
// and the workers, delivers signed pull_request webhooks and times until
// every gate has completed. See docs/benchmarks.md.
//
//	MEMGATE_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test?sslmode=disable \
//	  go run ./bench/scale -gates 6 -workers 1,2,3
package main

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/memgate/memgate/internal/testlock"
)

func main() {
	gates := flag.Int("gates", 6, "gates per configuration")
	workerList := flag.String("workers", "1,2,3", "worker counts to measure")
	duration := flag.String("duration", "", "override load.duration (default: memgate's default)")
	flag.Parse()
	log.SetFlags(0)
	base := os.Getenv("MEMGATE_TEST_DATABASE_URL")
	if base == "" {
		log.Fatal("set MEMGATE_TEST_DATABASE_URL to a Postgres the benchmark may create databases on")
	}
	work, _ := os.MkdirTemp("", "memgate-scale-")
	defer os.RemoveAll(work)
	bin := filepath.Join(work, "memgate")
	run("", "go", "build", "-o", bin, "./cmd/memgate")

	fmt.Printf("| workers | gates | wall time | gates/hour | verdicts |\n|---|---|---|---|---|\n")
	for _, w := range strings.Split(*workerList, ",") {
		n, _ := strconv.Atoi(w)
		// Its gates overlap by design; nothing else's may.
		release, err := testlock.Acquire()
		if err != nil {
			log.Fatal(err)
		}
		elapsed, verdicts := measure(bin, work, base, n, *gates, *duration)
		release()
		fmt.Printf("| %d | %d | %.0f s | %.0f | %s |\n", n, *gates, elapsed.Seconds(), float64(*gates)/elapsed.Hours(), verdicts)
	}
}

func measure(bin, work, base string, workers, gates int, duration string) (time.Duration, string) {
	dir := filepath.Join(work, fmt.Sprintf("repo-%d", workers))
	os.MkdirAll(dir, 0o755)
	run(dir, "git", "init", "-q", "-b", "main")
	src, _ := os.ReadFile("examples/healthy-json/main.go")
	os.WriteFile(filepath.Join(dir, "main.go"), src, 0o644)
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/svc\n\ngo 1.22\n"), 0o644)
	if duration != "" {
		os.WriteFile(filepath.Join(dir, ".memgate.yml"), []byte("load:\n  duration: "+duration+"\n"), 0o644)
	}
	run(dir, "git", "add", "-A")
	run(dir, "git", "commit", "-q", "-m", "base")
	baseSHA := strings.TrimSpace(run(dir, "git", "rev-parse", "HEAD"))
	var heads []string
	for i := 0; i < gates; i++ {
		run(dir, "git", "checkout", "-q", "-B", fmt.Sprintf("pr-%d", i), baseSHA)
		os.WriteFile(filepath.Join(dir, "CHANGE"), []byte(strconv.Itoa(i)), 0o644)
		run(dir, "git", "add", "-A")
		run(dir, "git", "commit", "-q", "-m", "change")
		heads = append(heads, strings.TrimSpace(run(dir, "git", "rev-parse", "HEAD")))
	}

	db := createDB(base)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	env := append(os.Environ(), "MEMGATE_DATABASE_URL="+db, "MEMGATE_WEBHOOK_SECRET=bench", "MEMGATE_ALLOW_LOCAL_REPOS=true",
		"MEMGATE_ADDR="+addr, "MEMGATE_WORKDIR="+work)
	var procs []*exec.Cmd
	start := func(args ...string) {
		cmd := exec.Command(bin, args...)
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			log.Fatal(err)
		}
		procs = append(procs, cmd)
	}
	defer func() {
		for _, p := range procs {
			syscall.Kill(-p.Process.Pid, syscall.SIGTERM)
			p.Wait()
		}
	}()
	start("serve", "--workers", "0")
	waitReady("http://" + addr + "/readyz")
	for i := 0; i < workers; i++ {
		start("worker")
	}
	// Warm the Go build cache once so every configuration measures gates,
	// not a first compile.
	run("examples/healthy-json", "go", "build", "-o", os.DevNull, ".")

	payload, _ := os.ReadFile("server/testdata/github-payloads/pull_request.opened.json")
	t0 := time.Now()
	for i, head := range heads {
		var m map[string]any
		json.Unmarshal(payload, &m)
		m["repository"].(map[string]any)["clone_url"] = dir
		pr := m["pull_request"].(map[string]any)
		pr["number"] = i + 1
		pr["head"].(map[string]any)["sha"] = head
		pr["base"].(map[string]any)["sha"] = baseSHA
		body, _ := json.Marshal(m)
		mac := hmac.New(sha256.New, []byte("bench"))
		mac.Write(body)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook", bytes.NewReader(body))
		req.Header.Set("X-GitHub-Event", "pull_request")
		req.Header.Set("X-GitHub-Delivery", fmt.Sprintf("scale-%d-%d", workers, i))
		req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusAccepted {
			log.Fatalf("delivery %d: %v %v", i, err, resp)
		}
		resp.Body.Close()
	}
	conn, err := sql.Open("pgx", db)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	for {
		var done int
		conn.QueryRow(`SELECT COUNT(*) FROM runs WHERE status = 'completed'`).Scan(&done)
		if done == gates {
			break
		}
		if time.Since(t0) > time.Hour {
			log.Fatalf("%d of %d gates after an hour", done, gates)
		}
		time.Sleep(500 * time.Millisecond)
	}
	elapsed := time.Since(t0)
	rows, _ := conn.Query(`SELECT verdict, COUNT(*) FROM runs GROUP BY verdict ORDER BY verdict`)
	var parts []string
	for rows.Next() {
		var v string
		var n int
		rows.Scan(&v, &n)
		parts = append(parts, fmt.Sprintf("%d %s", n, v))
	}
	rows.Close()
	return elapsed, strings.Join(parts, ", ")
}

func createDB(base string) string {
	admin, err := sql.Open("pgx", base)
	if err != nil {
		log.Fatal(err)
	}
	defer admin.Close()
	b := make([]byte, 6)
	rand.Read(b)
	name := "memgate_scale_" + hex.EncodeToString(b)
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		log.Fatal(err)
	}
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

func waitReady(u string) {
	for i := 0; i < 300; i++ {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	log.Fatalf("%s never ready", u)
}

func run(dir string, name string, args ...string) string {
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=b", "GIT_AUTHOR_EMAIL=b@e", "GIT_COMMITTER_NAME=b", "GIT_COMMITTER_EMAIL=b@e")
	out, err := cmd.CombinedOutput()
	if err != nil {
		log.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
	return string(out)
}
