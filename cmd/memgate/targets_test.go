package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/internal/testlock"
)

// A targets file is the checkout's, and so are its bodies: `memgate check`,
// as a child process, on a service directory whose targets file tries to
// make memgate read a secret of the machine and send it to the service.
// Each attempt stops before the build with exit 2 and a config error naming
// the file and line, and nothing of the secret reaches the report.
func TestCheckTargetsFileCannotReadOutsideTheDirectory(t *testing.T) {
	bin := buildMemgate(t)
	// A regression would run real gates; hold the lock as they would.
	testlock.Gate(t)
	outside := t.TempDir()
	const secret = "S3CRET-outside-the-checkout"
	secretFile := filepath.Join(outside, "secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o644)
	fifo := filepath.Join(outside, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		targets string            // load/targets.http; "" makes it a link to link
		link    string            // where load/targets.http points, when a link
		extra   map[string]string // more links in load/: name -> target
		want    string            // in the reason
	}{
		{name: "absolute body", targets: "POST http://127.0.0.1:{{port}}/\n@" + secretFile + "\n", want: "targets.http: line 2: body"},
		{name: "etc shadow", targets: "POST /\nContent-Type: text/plain\n@/etc/shadow\n", want: "targets.http: line 3: body"},
		{name: "dot dot body", targets: "POST /\n@../../" + filepath.Base(outside) + "/secret\n", want: "targets.http: line 2: body"},
		{name: "proc environ", targets: "GET /\n\nPOST /\n@/proc/self/environ\n", want: "targets.http: line 4: body"},
		{name: "dev zero", targets: "POST /\n@/dev/zero\n", want: "targets.http: line 2: body"},
		{name: "linked targets file", link: secretFile, want: "load/targets.http: a symbolic link"},
		{name: "linked body", targets: "POST /\n@body.json\n", extra: map[string]string{"body.json": secretFile}, want: "load/body.json: a symbolic link"},
		{name: "linked directory", targets: "POST /\n@out/secret\n", extra: map[string]string{"out": outside}, want: "load/out on the way is a symbolic link"},
		{name: "linked fifo", targets: "POST /\n@pipe\n", extra: map[string]string{"pipe": fifo}, want: "load/pipe: a symbolic link"},
		{name: "fifo body", targets: "POST /\n@pipe\n", extra: map[string]string{"pipe": "FIFO"}, want: "load/pipe: a named pipe: not a regular file"},
		{name: "device body", targets: "POST /\n@zero\n", extra: map[string]string{"zero": "DEVZERO"}, want: "load/zero: a device: not a regular file"},
		{name: "linked device", targets: "POST /\n@zero\n", extra: map[string]string{"zero": "/dev/zero"}, want: "load/zero: a symbolic link"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "go.mod"), []byte(testgit.GoMod), 0o644)
			os.WriteFile(filepath.Join(dir, "main.go"), []byte(testgit.EchoService), 0o644)
			os.WriteFile(filepath.Join(dir, ".memgate.yml"), []byte("load:\n  warmup: 1s\n  duration: 5s\n  targets_file: load/targets.http\n"), 0o644)
			os.Mkdir(filepath.Join(dir, "load"), 0o755)
			if tc.link != "" {
				os.Symlink(tc.link, filepath.Join(dir, "load", "targets.http"))
			} else {
				os.WriteFile(filepath.Join(dir, "load", "targets.http"), []byte(tc.targets), 0o644)
			}
			for name, target := range tc.extra {
				switch target {
				case "FIFO":
					syscall.Mkfifo(filepath.Join(dir, "load", name), 0o644)
					continue
				case "DEVZERO": // /dev/zero's own numbers, 1:5
					if err := syscall.Mknod(filepath.Join(dir, "load", name), syscall.S_IFCHR|0o644, 1<<8|5); err != nil {
						t.Skipf("cannot make a device here: %v", err)
					}
					continue
				}
				os.Symlink(target, filepath.Join(dir, "load", name))
			}
			cmd := exec.Command(bin, "check", "--json", "-", dir)
			cmd.Env = append(os.Environ(), "MEMGATE_GITHUB_TOKEN="+secret)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			start := time.Now()
			err := cmd.Run()
			code := cmd.ProcessState.ExitCode()
			if err != nil && code < 0 {
				t.Fatal(err)
			}
			var rep gate.Report
			if err := json.Unmarshal(stdout.Bytes(), &rep); err != nil {
				t.Fatalf("no JSON report: %v\n%s", err, stderr.String())
			}
			t.Logf("exit %d in %s: %s", code, time.Since(start).Round(time.Millisecond), rep.Reason)
			if code != 2 || rep.Verdict != gate.Error || !strings.Contains(rep.Reason, "load.targets_file") ||
				!strings.Contains(rep.Reason, tc.want) {
				t.Errorf("exit %d, verdict %s, reason %q; want exit 2, error, %q", code, rep.Verdict, rep.Reason, tc.want)
			}
			if rep.Timings.Build != 0 || rep.BuildOutput != "" {
				t.Errorf("the service was built: %s", rep.Timings.Build)
			}
			if all := stdout.String() + stderr.String(); strings.Contains(all, secret) || strings.Contains(all, "root:") {
				t.Errorf("the secret reached the output:\n%s", all)
			}
		})
	}
}

// DIR's own .memgate.yml is read through the same root: a link to a file
// outside (whose content a YAML error would quote) is refused.
func TestCheckRefusesALinkedConfig(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.yml"), []byte("S3CRET: [\n"), 0o644)
	os.Symlink(filepath.Join(outside, "secret.yml"), filepath.Join(dir, ".memgate.yml"))
	var out, errb bytes.Buffer
	code := runCheck(t.Context(), []string{"--json", "-", dir}, os.Getenv, &out, &errb)
	if code != 2 || !strings.Contains(errb.String(), ".memgate.yml: a symbolic link") || strings.Contains(out.String()+errb.String(), "S3CRET") {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
}

// The other side: a targets file and its body inside the directory are
// read and sent. A real gate of the echo service, whose output shows the
// body it got.
func TestCheckTargetsFileSendsItsBody(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real gate")
	}
	testlock.Gate(t)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte(testgit.GoMod), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(testgit.EchoService), 0o644)
	os.WriteFile(filepath.Join(dir, ".memgate.yml"), []byte("load:\n  targets_file: ./load/targets.http\n"), 0o644)
	os.MkdirAll(filepath.Join(dir, "load", "bodies"), 0o755)
	os.WriteFile(filepath.Join(dir, "load", "targets.http"), []byte("# one order\nPOST http://127.0.0.1:{{port}}/orders\nContent-Type: application/json\n@bodies/order.json\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "load", "bodies", "order.json"), []byte(`{"order":"from-the-checkout"}`), 0o644)
	var out, errb bytes.Buffer
	code := runCheck(t.Context(), []string{"--warmup", "1s", "--duration", "5s", "--json", "-", dir}, os.Getenv, &out, &errb)
	var rep gate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, no report: %v\n%s", code, err, errb.String())
	}
	t.Logf("exit %d: %s; service said %q", code, rep.Reason, rep.ServiceOutput)
	if rep.Verdict == gate.Error || !strings.Contains(rep.ServiceOutput, `BODY "{\"order\":\"from-the-checkout\"}"`) ||
		rep.Load.Requests == 0 || rep.Load.SuccessRatio < 0.95 {
		t.Fatalf("verdict %s (%s), %d requests, service output %q", rep.Verdict, rep.Reason, rep.Load.Requests, rep.ServiceOutput)
	}
}
