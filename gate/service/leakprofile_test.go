package service_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate/attribution"
	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/gatetest"
	"github.com/memgate/memgate/internal/testlock"
)

// buildBlockedForever builds testdata/blocked-forever with the reader, in
// the sandbox, as a gate does; command, when set, is its build.command.
func buildBlockedForever(t *testing.T, command string) (service.Built, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("runs a build")
	}
	cont := gatetest.Containment(t)
	testlock.Gate(t)
	work := gatetest.WorkDir(t)
	src := filepath.Join(work, "src")
	scratch := filepath.Join(work, "scratch")
	for _, d := range []string{src, scratch, filepath.Join(scratch, "inject")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"main.go", "go.mod"} {
		b, err := os.ReadFile(filepath.Join("testdata", "blocked-forever", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(src, f), b, 0o644)
	}
	sb := &service.BuildSandbox{Containment: cont, Identity: cont.NewIdentities().Build, Scratch: scratch}
	built, err := service.Build(context.Background(), service.BuildSpec{Dir: src, Package: ".", Command: command,
		Timeout: 5 * time.Minute, Output: filepath.Join(scratch, "out", "service"), Inject: true, LeakProfile: true,
		WorkDir: filepath.Join(scratch, "inject"), ToolEnv: service.ToolchainEnv(os.Getenv), Sandbox: sb})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, built.Output)
	}
	if !built.Injected {
		t.Fatalf("the reader is not in the build: %s", built.Note)
	}
	return built, src
}

// runWithReader starts the binary with the reader on a free port; the
// process is killed when the test ends.
func runWithReader(t *testing.T, binary string) *probe.Reader {
	t.Helper()
	port, err := service.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(binary)
	cmd.Env = []string{service.ReaderAddrEnv + "=" + addr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	rd := probe.NewReader(addr, nil)
	for i := 0; ; i++ {
		if err = rd.Detect(context.Background()); err == nil {
			return rd
		}
		if i == 50 {
			t.Fatalf("the reader never answered: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A build with the experiment serves the runtime's proof through the
// reader, naming the function whose goroutines can never run again.
func TestLeakProfileBuildNamesTheBlockedFunction(t *testing.T) {
	built, _ := buildBlockedForever(t, "")
	if !built.LeakProfile || built.LeakNote != "" {
		t.Fatalf("built without the experiment: %q\n%s", built.LeakNote, built.Output)
	}
	rd := runWithReader(t, built.Binary)
	var proven int64
	for i := 0; i < 20 && proven < 7; i++ { // the goroutines may not all be parked yet
		data, err := rd.Profile(context.Background(), "goroutineleak", false)
		if err != nil {
			t.Fatal(err)
		}
		p, err := attribution.ProvenLeaks(data, 5)
		if err != nil {
			t.Fatal(err)
		}
		if proven = p.Total; proven == 7 && (len(p.Stacks) != 1 || p.Stacks[0].Top != "main.awaitReply") {
			t.Fatalf("proven leaks %+v, want 7 in main.awaitReply", p)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if proven != 7 {
		t.Fatalf("%d goroutines proven leaked, want 7", proven)
	}
}

// Where the build with the experiment fails (here a build.command that
// refuses it, as a toolchain before Go 1.26 does), the service is built
// without it and works, and the build says why there is no proof.
func TestLeakProfileBuildFailureBuildsWithout(t *testing.T) {
	command := `case "$GOEXPERIMENT" in *goroutineleakprofile*) echo "go: unknown GOEXPERIMENT goroutineleakprofile" >&2; exit 2;; esac
go build -o {{output}} .`
	built, _ := buildBlockedForever(t, command)
	if built.LeakProfile || !strings.Contains(built.LeakNote, "built without GOEXPERIMENT=goroutineleakprofile: the build with it failed: go: unknown GOEXPERIMENT") {
		t.Fatalf("leak profile %v, note %q", built.LeakProfile, built.LeakNote)
	}
	rd := runWithReader(t, built.Binary)
	if _, err := rd.Read(context.Background(), true); err != nil {
		t.Fatalf("the reader of a build without the experiment: %v", err)
	}
	if _, err := rd.Profile(context.Background(), "goroutineleak", false); err == nil || !strings.Contains(err.Error(), "404") {
		t.Fatalf("a build without the experiment served a goroutineleak profile: %v", err)
	}
}

// A service that does not compile is built once: this toolchain takes the
// experiment, so the experiment is not why, and the error is the
// service's own, not reported as the experiment's.
func TestBrokenServiceIsNotBuiltAgainWithoutTheExperiment(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a build")
	}
	src := t.TempDir()
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module broken\n\ngo 1.21\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() { undefinedThing() }\n"), 0o644)
	built, err := service.Build(context.Background(), service.BuildSpec{Dir: src, Package: ".", Timeout: 2 * time.Minute,
		Output: filepath.Join(t.TempDir(), "service"), LeakProfile: true, ToolEnv: service.ToolchainEnv(os.Getenv)})
	if !errors.Is(err, service.ErrBuild) || !strings.Contains(built.Output, "undefined: undefinedThing") ||
		!strings.Contains(err.Error(), "exit status 1: ./main.go:3:15: undefined: undefinedThing") {
		t.Fatalf("build: %v\n%s", err, built.Output)
	}
	if built.LeakNote != "" {
		t.Fatalf("a compile error was taken for the experiment's and built again: %q", built.LeakNote)
	}
}

// A module with a go line before 1.14 and a committed vendor/ (common in
// real repositories: ssl_exporter's leak fix has go 1.13) builds from
// vendor/, without the network: the go command does so by itself only
// from go 1.14 on, so memgate asks for it. build.flags that choose a mode
// are the repository's.
func TestOldGoLineWithVendorBuildsFromVendor(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a build")
	}
	src := t.TempDir()
	files := map[string]string{
		"go.mod":                        "module example.com/old\n\ngo 1.13\n\nrequire example.com/dep v1.0.0\n",
		"main.go":                       "package main\n\nimport \"example.com/dep\"\n\nfunc main() { dep.Hello() }\n",
		"vendor/modules.txt":            "# example.com/dep v1.0.0\n## explicit\nexample.com/dep\n",
		"vendor/example.com/dep/dep.go": "package dep\n\nfunc Hello() {}\n",
	}
	for name, body := range files {
		os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755)
		os.WriteFile(filepath.Join(src, name), []byte(body), 0o644)
	}
	env := append(service.ToolchainEnv(os.Getenv), "GOPROXY=off", "GOFLAGS=", "GOMODCACHE="+t.TempDir())
	built, err := service.Build(context.Background(), service.BuildSpec{Dir: src, Package: ".", Timeout: 2 * time.Minute,
		Output: filepath.Join(t.TempDir(), "service"), ToolEnv: env})
	if err != nil {
		t.Fatalf("build: %v\n%s", err, built.Output)
	}
	// The repository's own choice stands (and here fails: no module cache).
	_, err = service.Build(context.Background(), service.BuildSpec{Dir: src, Package: ".", Timeout: 2 * time.Minute, Flags: []string{"-mod=mod"},
		Output: filepath.Join(t.TempDir(), "service"), ToolEnv: env})
	if err == nil {
		t.Fatal("build.flags -mod=mod was overridden by -mod=vendor")
	}
}
