package pipeline

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/gatetest"
	"github.com/memgate/memgate/internal/testlock"
)

// Hostile services, each contained with a clear verdict and no surviving
// process. They run as nobody when the tests run as root, as memgate does.

// openDir makes a directory nobody can reach (t.TempDir is private).
func openDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "memgate-hostile-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func copyFixture(t *testing.T, dst string) {
	for _, f := range []string{"go.mod", "main.go"} {
		b, err := os.ReadFile(filepath.Join("testdata", "hostile", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f), b, 0o644)
	}
}

// survivors lists processes whose environment carries the marker.
func survivors(marker string) []int {
	var out []int
	procs, _ := filepath.Glob("/proc/[0-9]*/environ")
	for _, p := range procs {
		b, err := os.ReadFile(p)
		if err == nil && bytes.Contains(b, []byte(marker)) {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			if pid != os.Getpid() {
				out = append(out, pid)
			}
		}
	}
	return out
}

func hostile(t *testing.T, mode string, tune func(*config.Config)) (*gate.Report, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a real gate")
	}
	testlock.Gate(t)
	src, work := openDir(t), openDir(t)
	copyFixture(t, src)
	b := make([]byte, 8)
	rand.Read(b)
	marker := "HOSTILE_TEST=" + hex.EncodeToString(b)
	cfg := quick()
	cfg.Load.Warmup, cfg.Load.Duration, cfg.Load.Cooldown = time.Second, 5*time.Second, time.Second
	cfg.Run.Env = map[string]string{"MODE": mode, "HOSTILE_TEST": strings.TrimPrefix(marker, "HOSTILE_TEST=")}
	if tune != nil {
		tune(&cfg)
	}
	res := Run(context.Background(), Options{Dir: src, Config: cfg, WorkDir: work,
		ToolEnv: service.ToolchainEnv(os.Getenv), ServiceEnv: []string{"PATH=" + os.Getenv("PATH")},
		Containment: gatetest.Containment(t)})
	time.Sleep(200 * time.Millisecond)
	if left := survivors(marker); len(left) > 0 {
		t.Errorf("processes of the %s fixture survived the gate: %v", mode, left)
	}
	t.Logf("%s: verdict %s: %s (isolation: %s)", mode, res.Report.Verdict, res.Report.Reason, res.Report.Environment.Isolation)
	if res.Report.Verdict == gate.Error {
		t.Logf("%s: build output:\n%s", mode, res.Report.BuildOutput)
	}
	for _, line := range strings.Split(res.Report.ServiceOutput, "\n") {
		if strings.Contains(line, "stopped") || strings.Contains(line, "daemon pid") || strings.Contains(line, "ENVIRON") || strings.Contains(line, "ROUTE") {
			t.Logf("%s: service said: %.200s", mode, line)
		}
	}
	return res.Report, marker
}

func TestHostileForkBombIsBounded(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the process limit binds a service run as nobody, which needs root; as a normal user it would limit the user's own session")
	}
	r, _ := hostile(t, "forkbomb", func(c *config.Config) { c.Run.MaxProcesses = 64 })
	// The limit counts threads too: either the bomb hits it first and the
	// service goes on serving, or it starves the service's own runtime,
	// which then dies (under load, at the limit) and the gate ends with an
	// error verdict. Both are bounded; hostile() has checked that nothing
	// of it survived.
	bounded := strings.Contains(r.ServiceOutput, "fork bomb stopped") ||
		(r.Verdict == gate.Error && strings.Contains(r.Reason, "exited"))
	if !bounded {
		t.Errorf("no sign of the process limit: verdict %s (%s)\n%s", r.Verdict, r.Reason, r.ServiceOutput)
	}
}

func TestHostileUnboundedAllocationIsKilled(t *testing.T) {
	r, _ := hostile(t, "alloc", func(c *config.Config) { c.Run.MemoryLimit = 256 << 20 })
	if r.Verdict != gate.Error || !strings.Contains(r.Reason, "passed the 256 MiB limit") {
		t.Fatalf("verdict %s: %s", r.Verdict, r.Reason)
	}
	// Where memgate has a memory controller the kernel enforces the cap.
	if strings.Contains(r.Environment.Isolation, "memory at 256 MiB") && !strings.Contains(r.Reason, "killed by the kernel") {
		t.Errorf("capped by a control group, but: %s", r.Reason)
	}
}

// A process that leaves the service's session and empties its environment
// carries neither the process group nor memgate's mark: only a control
// group still knows it.
func TestHostileHiddenDaemonIsKilled(t *testing.T) {
	r, _ := hostile(t, "hide", nil)
	if !strings.Contains(r.ServiceOutput, "hidden pid") {
		t.Fatalf("the fixture did not leave its hidden daemon: %s", r.ServiceOutput)
	}
	// Its pid is the sandbox's own; on the host, look for any process
	// whose program is the fixture's (it hid its session and environment,
	// not its binary).
	time.Sleep(200 * time.Millisecond)
	exes, _ := filepath.Glob("/proc/[0-9]*/exe")
	for _, e := range exes {
		if to, err := os.Readlink(e); err == nil && strings.Contains(to, "memgate-run-") {
			pid, _ := strconv.Atoi(strings.Split(e, "/")[2])
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("a process of the gate survived it: %s -> %s", e, to)
		}
	}
}

func TestHostileDaemonIsKilled(t *testing.T) {
	r, _ := hostile(t, "daemon", nil)
	if !strings.Contains(r.ServiceOutput, "daemon pid") {
		t.Fatalf("the fixture did not daemonise: %s", r.ServiceOutput)
	}
	if r.Verdict == gate.Error {
		t.Errorf("verdict %s: %s", r.Verdict, r.Reason)
	}
}

func TestHostileDiskFillerIsBounded(t *testing.T) {
	r, _ := hostile(t, "disk", func(c *config.Config) { c.Run.MaxFileSize = 64 << 20 })
	if !strings.Contains(r.ServiceOutput, "disk filler stopped after 64 MiB") && !strings.Contains(r.Reason, "exited") {
		t.Errorf("the file size limit did not stop the writer: %s / %s", r.Reason, r.ServiceOutput)
	}
	// Whatever happened, no file past the limit was left behind.
	files, _ := filepath.Glob(filepath.Join(os.TempDir(), "hostile-*"))
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.Size() > 64<<20 {
			t.Errorf("%s is %d MiB, over the 64 MiB limit", f, st.Size()>>20)
		}
		os.Remove(f)
	}
}

func TestHostileSnoopSeesNoSecrets(t *testing.T) {
	const secret = "ghs_hostile_test_secret"
	t.Setenv("MEMGATE_GITHUB_TOKEN", secret)
	// run.env may set PATH: once, the root wrapper's sh found setpriv and
	// ip through it. Tools of that name on the config's PATH must never
	// run (memgate needs no tool to contain a service now).
	tools := openDir(t)
	marker := filepath.Join(tools, "ran")
	for _, name := range []string{"sh", "setpriv", "ip", "prlimit", "unshare", "nsenter"} {
		os.WriteFile(filepath.Join(tools, name), []byte("#!/bin/sh\necho \"$0\" >> "+marker+"\nexec /usr/bin/"+name+" \"$@\"\n"), 0o755)
	}
	r, _ := hostile(t, "snoop", func(c *config.Config) { c.Run.Env["PATH"] = tools + ":/usr/bin:/bin" })
	if !strings.Contains(r.ServiceOutput, "ENV:") {
		t.Fatalf("the fixture did not run: %s", r.ServiceOutput)
	}
	if ran, err := os.ReadFile(marker); err == nil {
		t.Errorf("tools from run.env's PATH ran: %s", ran)
	}
	if strings.Contains(r.ServiceOutput, secret) {
		t.Fatalf("the service read memgate's secret:\n%s", r.ServiceOutput)
	}
	if !strings.Contains(r.Environment.Isolation, "sandboxed") {
		t.Errorf("isolation %q: the service must run sandboxed", r.Environment.Isolation)
	}
}

// The service's network is its own: it cannot reach a port on the host's
// loopback, let alone anything else.
func TestHostileServiceHasNoNetwork(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
			reached <- struct{}{}
		}
	}()
	r, _ := hostile(t, "net", func(c *config.Config) { c.Run.Env["TARGET"] = ln.Addr().String() })
	if !strings.Contains(r.ServiceOutput, "NO ROUTE") || strings.Contains(r.ServiceOutput, "REACHED") {
		t.Fatalf("the service reached the host: %s", r.ServiceOutput)
	}
	select {
	case <-reached:
		t.Fatal("the host's listener got a connection from the service")
	default:
	}
	if !strings.Contains(r.Environment.Isolation, "no network but its own loopback") || r.Verdict == gate.Error {
		t.Errorf("verdict %s (%s), isolation %q", r.Verdict, r.Reason, r.Environment.Isolation)
	}
}

// A build (build.command: the repository's code) and a service try to
// change what later gates trust: every file of the Go build cache they
// can find, and the module cache. The next gate, of another module, builds
// from caches none of it reached and passes; the shared caches are
// byte-for-byte what they were.
func TestHostileCannotPoisonTheCaches(t *testing.T) {
	cont := gatetest.Containment(t)
	seed, err := cont.Seed(context.Background(), service.ToolchainEnv(os.Getenv))
	if err != nil {
		t.Fatal(err)
	}
	seedBefore := treeSum(t, seed)
	modBefore := treeSum(t, cont.Caches.ModCache())
	poison := `for f in $(find "$GOCACHE" "$GOMODCACHE" -type f 2>/dev/null | head -n 3000); do (echo POISON > "$f") 2>/dev/null && n=$((n+1)); done; ` +
		`echo "poisoned $n files of my own view"; touch "$GOMODCACHE/poison" 2>&1; mkdir "$GOMODCACHE/cache/evil" 2>&1; ` +
		`go build -o {{output}} . 2>&1 | tail -3; test -x {{output}} || go build -a -o {{output}} .`
	r, _ := hostile(t, "snoop", func(c *config.Config) { c.Build.Command = "sh -c '" + strings.ReplaceAll(poison, "'", `'\''`) + "'" })
	t.Logf("poisoner's build said:\n%s", r.BuildOutput)
	if !strings.Contains(r.BuildOutput, "poisoned") {
		t.Fatalf("the poisoner did not run: %s", r.Reason)
	}
	if after := treeSum(t, seed); after != seedBefore {
		t.Errorf("the standard library's shared cache changed")
	}
	if after := treeSum(t, cont.Caches.ModCache()); after != modBefore {
		t.Errorf("the module cache changed")
	}
	// The next gate, of another module, is not affected (hostile() holds
	// the gate lock already).
	res := Run(context.Background(), Options{Dir: examples("healthy-json"), Config: quick(), WorkDir: gatetest.WorkDir(t),
		ToolEnv: service.ToolchainEnv(os.Getenv), ServiceEnv: []string{"PATH=" + os.Getenv("PATH")}, Containment: cont})
	if res.Report.Verdict != gate.Pass {
		t.Fatalf("the gate after the poisoner: %s: %s\n%s", res.Report.Verdict, res.Report.Reason, res.Report.BuildOutput)
	}
}

// treeSum hashes every file's path, mode and content under dir.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, _ := d.Info()
		fmt.Fprintln(h, p, info.Mode())
		if d.Type().IsRegular() {
			if f, err := os.Open(p); err == nil {
				io.Copy(h, f)
				f.Close()
			}
		}
		return nil
	})
	return hex.EncodeToString(h.Sum(nil))
}
