package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testlock"
	"github.com/memgate/memgate/internal/testuser"
)

// A pull request's code attacks the memgate that gates it, for real:
// memgate runs as a child process with secrets in its real environment
// (visible in /proc/<pid>/environ, unlike t.Setenv), a key file and a home
// it can read, a cache directory, and another gate's workspace beside it.
// The snoop fixture, in its build (build.command) and as the service, reads
// every ancestor's and every visible process's environment and command
// line, the key file, the home and the other workspace, writes into the
// module cache, dials a port on the host, and leaves a setsid daemon
// behind. Nothing of memgate may show in the report, nothing may be
// written, nothing reached, nothing survive. Run as root (CI) and as an
// unprivileged user made for the test.
func TestHostileCodeSeesNothingOfMemgate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real gates")
	}
	bin := buildMemgate(t)
	t.Run("as-root", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("this run is not root")
		}
		attackMemgate(t, bin, -1, -1)
	})
	t.Run("unprivileged", func(t *testing.T) {
		uid, gid := testuser.Ensure(t)
		attackMemgate(t, bin, uid, gid)
	})
}

func attackMemgate(t *testing.T, bin string, uid, gid int) {
	testlock.Gate(t)
	b := make([]byte, 8)
	rand.Read(b)
	secret := "SECRET" + hex.EncodeToString(b)
	mark := hex.EncodeToString(b[:4])

	// Everything memgate's user owns, in a tree that user can use.
	base, err := os.MkdirTemp("", "memgate-attack-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	home := filepath.Join(base, "home")
	keyFile := filepath.Join(base, "secrets", "github_app_key.pem")
	other := filepath.Join(base, "work", "memgate-ws-other")
	src := filepath.Join(base, "src")
	cache := filepath.Join(base, "cache")
	for _, d := range []string{home, filepath.Dir(keyFile), other, src, filepath.Join(base, "work")} {
		os.MkdirAll(d, 0o700)
	}
	os.Chmod(filepath.Join(base, "work"), 0o711)
	os.Chmod(src, 0o755)
	os.WriteFile(keyFile, []byte("-----BEGIN RSA PRIVATE KEY-----\n"+secret+"\n"), 0o600)
	os.WriteFile(filepath.Join(home, ".netrc"), []byte("machine github.com password "+secret), 0o600)
	os.WriteFile(filepath.Join(other, "main.go"), []byte("// "+secret), 0o600)
	for _, f := range []string{"main.go", "go.mod"} {
		data, err := os.ReadFile(filepath.Join("testdata", "snoop", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, f), data, 0o644)
	}
	modFile := filepath.Join(cache, "mod", "cache", "download", "poisoned.txt")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	reached := make(chan string, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
			reached <- "connection"
		}
	}()
	snoopEnv := fmt.Sprintf(`{SNOOP_READ: "%s:%s", SNOOP_LIST: "%s:%s:%s", SNOOP_WRITE: "%s", SNOOP_DIAL: "%s", SNOOP_MARK: "%s"}`,
		keyFile, filepath.Join(home, ".netrc"), home, other, filepath.Dir(keyFile), modFile, ln.Addr(), mark)
	cfg := "build:\n  command: go build -o {{output}} . && {{output}} -build\n  env: " + snoopEnv +
		"\nrun:\n  env: " + snoopEnv + "\nload:\n  rate: 50\n  warmup: 1s\n  duration: 5s\n  cooldown: 2s\n"
	os.WriteFile(filepath.Join(src, ".memgate.yml"), []byte(cfg), 0o644)

	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + os.TempDir(),
		"MEMGATE_CACHE_DIR=" + cache, "GOPROXY=" + os.Getenv("GOPROXY"),
		"MEMGATE_WEBHOOK_SECRET=" + secret, "MEMGATE_API_TOKEN=" + secret, "MEMGATE_GITHUB_TOKEN=" + secret,
		"MEMGATE_GITHUB_APP_KEY_FILE=" + keyFile, "DATABASE_URL=postgres://memgate:" + secret + "@db/memgate"}
	runBin := bin
	if uid >= 0 {
		// memgate's user owns its files, as a deployment's memgate user would.
		for _, p := range []string{base, home, filepath.Dir(keyFile), keyFile, filepath.Join(home, ".netrc"), filepath.Join(base, "work"), other, filepath.Join(other, "main.go")} {
			os.Chown(p, uid, gid)
		}
		runBin = testuser.Executable(t, bin)
	}
	cmd := exec.Command(runBin, "check", "--json", "-", src)
	cmd.Env = env
	cmd.Dir = base
	if uid >= 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, _ := cmd.Output()
	var rep gate.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("no report: %v\n%s\n%s", err, out, stderr.String())
	}
	all := rep.BuildOutput + "\n" + rep.ServiceOutput + "\n" + rep.Reason + "\n" + stderr.String()
	t.Logf("verdict %s: %s\nisolation: %s", rep.Verdict, rep.Reason, rep.Environment.Isolation)
	if !strings.Contains(rep.BuildOutput, "BUILD SNOOP DONE") || !strings.Contains(rep.ServiceOutput, "RUN SNOOP DONE") {
		t.Fatalf("the fixture did not run in both stages:\nbuild:\n%s\nservice:\n%s\n%s", rep.BuildOutput, rep.ServiceOutput, stderr.String())
	}
	if strings.Contains(all, secret) {
		t.Errorf("a secret of memgate's reached the pull request's code:\n%s", all)
	}
	for _, line := range strings.Split(rep.BuildOutput+"\n"+rep.ServiceOutput, "\n") {
		for _, what := range []string{" UID ", " ANCESTOR ", " READ ", " LIST ", " WRITE ", " DIAL "} {
			if strings.Contains(line, what) {
				t.Logf("fixture: %.240s", line)
			}
		}
		switch {
		case strings.Contains(line, "WRITE ") && strings.HasSuffix(line, ": <nil>"):
			t.Errorf("the fixture wrote what later gates trust: %s", line)
		case strings.Contains(line, "REACHED"):
			t.Errorf("the fixture reached the host's network: %s", line)
		case strings.Contains(line, "ANCESTOR") && strings.Contains(line, "memgate check"):
			t.Errorf("the fixture saw memgate's process: %.300s", line)
		case strings.Contains(line, " UID 0 "):
			t.Errorf("the fixture ran as root: %s", line)
		}
	}
	if _, err := os.Lstat(modFile); err == nil {
		t.Errorf("%s was written", modFile)
	}
	select {
	case <-reached:
		t.Errorf("the host's listener got a connection from the fixture")
	default:
	}
	if !strings.Contains(rep.Environment.Isolation, "sandboxed") || rep.Verdict == gate.Error {
		t.Errorf("verdict %s (%s), isolation %q", rep.Verdict, rep.Reason, rep.Environment.Isolation)
	}
	// The daemons of the build and of the service are gone with their
	// sandboxes.
	time.Sleep(300 * time.Millisecond)
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), "snoop-daemon-"+mark) {
			pid, _ := strconv.Atoi(strings.Split(p, "/")[2])
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("a daemon of the fixture survived the gate: %s", p)
		}
	}
	who := "root"
	if u, err := user.LookupId(strconv.Itoa(os.Geteuid())); err == nil && uid < 0 {
		who = u.Username
	} else if uid >= 0 {
		who = testuser.Name
	}
	t.Logf("as %s: %d lines of build output and %d of service output, none with a secret", who,
		strings.Count(rep.BuildOutput, "\n"), strings.Count(rep.ServiceOutput, "\n"))
}
