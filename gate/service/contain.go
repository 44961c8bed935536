package service

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Limits contain a service: strangers' code runs here.
type Limits struct {
	// MemoryBytes caps the resident memory of the service and everything
	// it started; over it the whole group is killed. 0 means no cap.
	MemoryBytes uint64
	// Processes caps the processes of the service's user (RLIMIT_NPROC):
	// a fork bomb stops there. It binds only a user other than root,
	// which is why a root memgate runs services as nobody.
	Processes uint64
	// FileSizeBytes caps any one file the service writes (RLIMIT_FSIZE).
	FileSizeBytes uint64
	// AsNobody runs the service as the unprivileged user nobody; memgate
	// sets it when it runs as root.
	AsNobody bool
	// IsolateNetwork gives the service a network namespace of its own with
	// only loopback (see CanIsolateNetwork); memgate reaches it from inside.
	IsolateNetwork bool
}

// tokenEnv marks every process of one service, so that processes that
// left its process group (setsid daemons) are found and killed at the end.
const tokenEnv = "MEMGATE_GATE_TOKEN"

func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// wrap builds the command line that applies the limits, each tool setting
// its part and exec-ing the next in the same process: first, as root, sh
// joins the v1 control groups and brings up loopback in a new network;
// then setpriv drops to nobody (keeping the parent-death signal, which a
// change of user would clear); then prlimit sets the rlimits; then the
// service. With a pids control group the process cap is the group's.
func (l Limits) wrap(binary string, args []string, g *serviceGroup) (string, []string) {
	cmd := append([]string{binary}, args...)
	nproc := l.rlimitProcesses(g)
	if prlimit, err := exec.LookPath("prlimit"); err == nil && (nproc > 0 || l.FileSizeBytes > 0) {
		pre := []string{prlimit}
		if nproc > 0 {
			pre = append(pre, fmt.Sprintf("--nproc=%d", nproc))
		}
		if l.FileSizeBytes > 0 {
			pre = append(pre, fmt.Sprintf("--fsize=%d", l.FileSizeBytes))
		}
		cmd = append(append(pre, "--"), cmd...)
	}
	if script := l.rootScript(g); script != "" {
		if l.AsNobody {
			cmd = append([]string{"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--pdeathsig=KILL", "--"}, cmd...)
		}
		cmd = append([]string{"sh", "-c", script + `exec "$@"`, "memgate-contain"}, cmd...)
	}
	path := cmd[0]
	if p, err := exec.LookPath(path); err == nil {
		path = p
	}
	return path, cmd[1:]
}

// rlimitProcesses is the RLIMIT_NPROC to set: none when the service's
// control group caps its tasks itself.
func (l Limits) rlimitProcesses(g *serviceGroup) uint64 {
	if g != nil && g.pids > 0 {
		return 0
	}
	return l.Processes
}

// rootScript is what must run as root in the service's first process
// before the service: "" when nothing must.
func (l Limits) rootScript(g *serviceGroup) string {
	var b strings.Builder
	if g != nil {
		for _, f := range g.joinFiles() {
			fmt.Fprintf(&b, `echo $$ > %s || { echo "memgate: cannot join the service's control group" >&2; exit 97; }; `, shellQuote(f))
		}
	}
	if l.IsolateNetwork {
		b.WriteString(`ip link set lo up || { echo "memgate: cannot bring up loopback in the service's network" >&2; exit 97; }; `)
	}
	return b.String()
}

// isolation describes, for the report, how the service is contained here.
func (l Limits) isolation(g *serviceGroup, groupNote string) string {
	var parts []string
	if l.AsNobody {
		parts = append(parts, "runs as nobody")
	}
	if l.IsolateNetwork {
		parts = append(parts, "no network but its own loopback")
	}
	if g != nil {
		parts = append(parts, g.describe())
	}
	nproc := l.rlimitProcesses(g)
	if _, err := exec.LookPath("prlimit"); err == nil && (nproc > 0 || l.FileSizeBytes > 0) {
		var lim []string
		if nproc > 0 {
			lim = append(lim, fmt.Sprintf("at most %d processes of its user", nproc))
		}
		if l.FileSizeBytes > 0 {
			lim = append(lim, fmt.Sprintf("%d MiB per file", l.FileSizeBytes>>20))
		}
		parts = append(parts, strings.Join(lim, " and "))
	} else if nproc > 0 || l.FileSizeBytes > 0 {
		parts = append(parts, "no process or file-size limits (prlimit not found)")
	}
	if l.MemoryBytes > 0 && (g == nil || g.memory == 0) {
		parts = append(parts, fmt.Sprintf("killed above %d MiB resident (watchdog)", l.MemoryBytes>>20))
	}
	if g == nil && groupNote != "" {
		parts = append(parts, groupNote)
	}
	if len(parts) == 0 {
		return "not contained"
	}
	return strings.Join(parts, ", ")
}

// procInfo is what /proc says of a process.
type procInfo struct {
	pid, pgid int
	rssPages  int64
}

func readProc(pid int) (procInfo, bool) {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return procInfo{}, false
	}
	// The command name is in parentheses and may hold spaces.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procInfo{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 22 {
		return procInfo{}, false
	}
	pgid, _ := strconv.Atoi(f[2])
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	return procInfo{pid: pid, pgid: pgid, rssPages: rss}, true
}

func allPIDs() []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, pid)
		}
	}
	return out
}

// groupRSS is the resident memory of every process in a process group.
func groupRSS(pgid int) uint64 {
	var pages int64
	for _, pid := range allPIDs() {
		if p, ok := readProc(pid); ok && p.pgid == pgid {
			pages += p.rssPages
		}
	}
	return uint64(pages) * uint64(os.Getpagesize())
}

// killMarked kills every process whose environment carries the token:
// the service's escapees (setsid daemons, double forks).
func killMarked(token string) int {
	mark := []byte(tokenEnv + "=" + token)
	n := 0
	for _, pid := range allPIDs() {
		if pid == os.Getpid() {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "environ"))
		if err != nil || !bytes.Contains(env, mark) {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			n++
		}
	}
	return n
}

// watchMemory kills the group when its resident memory passes the limit.
func (p *Process) watchMemory(limit uint64) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			if rss := groupRSS(p.cmd.Process.Pid); rss > limit {
				p.mu.Lock()
				p.killedFor = fmt.Sprintf("killed by memgate: resident memory %d MiB passed the %d MiB limit (run.memory_limit)", rss>>20, limit>>20)
				p.mu.Unlock()
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				return
			}
		}
	}
}
