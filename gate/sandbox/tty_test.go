package sandbox

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const ttyHelperEnv = "MEMGATE_SANDBOX_TTY_HELPER"

// A developer runs `memgate check` on a pull request from a terminal: the
// sandbox must not inherit that terminal. If it stays in memgate's session
// the terminal is its controlling terminal, and /dev/tty (bound from the
// host) opens it: the code can read what the developer types and, with
// TIOCSTI, push a command into the shell's input that runs as the
// developer once memgate exits.
func TestSandboxHasNoControllingTerminal(t *testing.T) {
	if os.Getenv(ttyHelperEnv) == "1" {
		ttyHelper(t)
		return
	}
	if _, err := os.Stat("/usr/bin/perl"); err != nil {
		t.Skip("needs perl for the TIOCSTI probe")
	}
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skip("no pty:", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	slave, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer slave.Close()
	// Drain the master (the terminal's screen) so nothing blocks.
	var screen bytes.Buffer
	go func() {
		b := make([]byte, 4096)
		for {
			k, err := master.Read(b)
			screen.Write(b[:k])
			if err != nil {
				return
			}
		}
	}()
	// The helper is "memgate check" in a terminal: a session whose
	// controlling terminal is the pty.
	var out bytes.Buffer
	cmd := exec.Command(os.Args[0], "-test.run=^TestSandboxHasNoControllingTerminal$", "-test.v")
	cmd.Env = append(os.Environ(), ttyHelperEnv+"=1")
	cmd.Stdin = slave
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	err = cmd.Run()
	t.Logf("helper: %v\n%s", err, out.String())
	if strings.Contains(out.String(), "SHELL-WOULD-RUN: echo INJECTED") {
		t.Fatalf("the sandboxed code typed a command into memgate's terminal (TIOCSTI): the developer's shell would run it")
	}
	if strings.Contains(out.String(), "TTY-OPENED") {
		t.Fatalf("the sandboxed code opened memgate's controlling terminal")
	}
	if err != nil || !strings.Contains(out.String(), "PROBE-DONE") {
		t.Fatalf("the probe did not run")
	}
}

func ttyHelper(t *testing.T) {
	script := `open(my $t, "+<", "/dev/tty") or do { print "no tty: $!\n"; print "PROBE-DONE\n"; exit 0 };
print "TTY-OPENED\n";
for my $c (split //, "echo INJECTED\n") { ioctl($t, 0x5412, $c) or print "TIOCSTI: $!\n" }
print "PROBE-DONE\n";`
	out, err := run(t, Spec{Path: "/usr/bin/perl", Args: []string{"-e", script}, Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/"})
	fmt.Print(out)
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	// What a shell reading this terminal would read next.
	unix.SetNonblock(0, true)
	time.Sleep(100 * time.Millisecond)
	b := make([]byte, 256)
	if k, _ := syscall.Read(0, b); k > 0 {
		fmt.Printf("SHELL-WOULD-RUN: %s\n", strings.TrimSpace(string(b[:k])))
	}
}
