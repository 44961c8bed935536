// snoop is a hostile service: at build time (run by its own build.command)
// and at run time it looks for what memgate must keep from it — every
// ancestor's and every visible process's environment and command line,
// files named in SNOOP_READ, directories in SNOOP_LIST — tries to write
// SNOOP_WRITE (caches later gates trust), to reach SNOOP_DIAL (a port on
// the host), and leaves a daemon behind. It prints all it finds.
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if os.Getenv("SNOOP_CHILD") == "1" {
		time.Sleep(time.Hour)
		return
	}
	stage := "RUN"
	if len(os.Args) > 1 && os.Args[1] == "-build" {
		stage = "BUILD"
	}
	snoop(stage)
	if stage == "BUILD" {
		return
	}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) })
	http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil)
}

func say(stage, what string, args ...any) {
	fmt.Printf("%s %s\n", stage, strings.ReplaceAll(fmt.Sprintf(what, args...), "\x00", " "))
}

func snoop(stage string) {
	say(stage, "UID %d GID %d", os.Getuid(), os.Getgid())
	// Ancestors, then everything visible.
	for pid := os.Getpid(); pid > 0; pid = parent(pid) {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		cmd, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		say(stage, "ANCESTOR %d CMDLINE %s ENVIRON %s (%v)", pid, cmd, env, err)
	}
	procs, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range procs {
		env, err := os.ReadFile(p + "/environ")
		cmd, _ := os.ReadFile(p + "/cmdline")
		say(stage, "PROC %s CMDLINE %s ENVIRON %s (%v)", p, cmd, env, err)
	}
	for _, f := range list("SNOOP_READ") {
		b, err := os.ReadFile(f)
		say(stage, "READ %s: %q (%v)", f, b, err)
	}
	for _, d := range list("SNOOP_LIST") {
		entries, err := os.ReadDir(d)
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
			if b, err := os.ReadFile(filepath.Join(d, e.Name())); err == nil && len(b) < 4096 {
				say(stage, "READ %s: %q", filepath.Join(d, e.Name()), b)
			}
		}
		say(stage, "LIST %s: %v (%v)", d, names, err)
	}
	for _, f := range list("SNOOP_WRITE") {
		err := os.WriteFile(f, []byte("POISONED by snoop\n"), 0o644)
		say(stage, "WRITE %s: %v", f, err)
	}
	if addr := os.Getenv("SNOOP_DIAL"); addr != "" {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err == nil {
			c.Close()
			say(stage, "DIAL %s: REACHED", addr)
		} else {
			say(stage, "DIAL %s: %v", addr, err)
		}
	}
	// A daemon in a session of its own, with a marker in its command line.
	cmd := exec.Command("/proc/self/exe", "snoop-daemon-"+os.Getenv("SNOOP_MARK"))
	cmd.Env = []string{"SNOOP_CHILD=1"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err == nil {
		say(stage, "DAEMON started")
	}
	say(stage, "SNOOP DONE")
}

func list(key string) []string {
	if v := os.Getenv(key); v != "" {
		return strings.Split(v, ":")
	}
	return nil
}

func parent(pid int) int {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 2 {
		return 0
	}
	ppid, _ := strconv.Atoi(f[1])
	return ppid
}
