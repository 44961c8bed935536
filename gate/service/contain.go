package service

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/memgate/memgate/gate/sandbox"
)

// Limits contain a service: strangers' code runs here.
type Limits struct {
	// MemoryBytes caps the resident memory of the service and everything
	// it started; over it the whole group is killed. 0 means no cap.
	MemoryBytes uint64
	// Processes caps the service's tasks: its control group's pids.max,
	// else RLIMIT_NPROC inside its sandbox.
	Processes uint64
	// FileSizeBytes caps any one file the service writes (RLIMIT_FSIZE)
	// and its private /tmp.
	FileSizeBytes uint64
	// Sandbox runs the service in a sandbox of its own (gate/sandbox);
	// nil runs it uncontained, as memgate's own user.
	Sandbox *ServiceSandbox
	// DependencyMemoryBytes caps the dependencies' memory, counted apart
	// from the service's; DependencyProcesses is their share of the tasks.
	DependencyMemoryBytes uint64
	DependencyProcesses   uint64
}

// tokenEnv marks every process of one service, so that processes that
// left its process group (setsid daemons) are found and killed at the end
// when it runs uncontained.
const tokenEnv = "MEMGATE_GATE_TOKEN"

func newToken() string {
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// rlimitProcesses is the RLIMIT_NPROC to set: none when the service's
// control group caps its tasks itself.
func (l Limits) rlimitProcesses(g *serviceGroup) uint64 {
	if g != nil && g.pids > 0 {
		return 0
	}
	if l.Processes == 0 {
		return 0
	}
	return l.Processes + l.DependencyProcesses
}

// isolation describes, for the report, how the service is contained here.
func (l Limits) isolation(g *serviceGroup, groupNote string, deps int) string {
	var parts []string
	if l.Sandbox != nil {
		parts = append(parts, l.Sandbox.describe())
	} else {
		parts = append(parts, "UNCONTAINED: runs as memgate's own user and sees what it sees")
	}
	if g != nil {
		parts = append(parts, g.describe())
	}
	var lim []string
	if nproc := l.rlimitProcesses(g); nproc > 0 && l.Sandbox != nil {
		lim = append(lim, fmt.Sprintf("at most %d processes", nproc))
	}
	if l.FileSizeBytes > 0 && l.Sandbox != nil {
		lim = append(lim, fmt.Sprintf("%d MiB per file", l.FileSizeBytes>>20))
	}
	if len(lim) > 0 {
		parts = append(parts, strings.Join(lim, " and "))
	}
	if deps > 0 {
		parts = append(parts, fmt.Sprintf("%d dependencies in the same sandbox, started first, their memory counted apart: the service killed above %d MiB, the dependencies above %d MiB (watchdog)",
			deps, l.MemoryBytes>>20, l.DependencyMemoryBytes>>20))
	} else if l.MemoryBytes > 0 && (g == nil || g.memory == 0) {
		parts = append(parts, fmt.Sprintf("killed above %d MiB resident (watchdog)", l.MemoryBytes>>20))
	}
	if g == nil && groupNote != "" {
		parts = append(parts, groupNote)
	}
	return strings.Join(parts, ", ")
}

// procInfo is what /proc says of a process.
type procInfo struct {
	pid, ppid, pgid int
	rssPages        int64
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
	ppid, _ := strconv.Atoi(f[1])
	pgid, _ := strconv.Atoi(f[2])
	rss, _ := strconv.ParseInt(f[21], 10, 64)
	return procInfo{pid: pid, ppid: ppid, pgid: pgid, rssPages: rss}, true
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

// namespaceRSS is the resident memory of every process in the pid
// namespace whose first process is pid: a sandbox, whatever process
// groups its processes made.
func namespaceRSS(pid int) uint64 {
	ns, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "ns", "pid"))
	if err != nil {
		return 0
	}
	var pages int64
	for _, other := range allPIDs() {
		if l, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(other), "ns", "pid")); err == nil && l == ns {
			if p, ok := readProc(other); ok {
				pages += p.rssPages
			}
		}
	}
	return uint64(pages) * uint64(os.Getpagesize())
}

// sandboxMounts are the tmpfs mounts a sandbox is given to write (see
// gate/sandbox): their pages are memory no process's resident set shows.
var sandboxMounts = []string{"/tmp", "/home/sandbox", "/dev/shm"}

// sandboxTmpfs is what the sandbox whose first process is pid holds in its
// tmpfs mounts, seen through that process's root (memgate may look there:
// as root, or as the owner of the sandbox's user namespace).
func sandboxTmpfs(pid int) uint64 {
	var used uint64
	for _, m := range sandboxMounts {
		used += tmpfsUsed(pid, m)
	}
	return used
}

// tmpfsUsed is what one tmpfs mount of the sandbox holds.
func tmpfsUsed(pid int, mount string) uint64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Join("/proc", strconv.Itoa(pid), "root", mount), &st); err == nil && st.Type == tmpfsMagic {
		return (st.Blocks - st.Bfree) * uint64(st.Bsize)
	}
	return 0
}

const tmpfsMagic = 0x01021994

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

// watchMemory kills the group when its resident memory passes the limit;
// with dependencies, the service's share and theirs are held to limits
// of their own (see memoryUse).
func (p *Process) watchMemory(limit, depLimit uint64) {
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.done:
			return
		case <-t.C:
			if why := p.overMemory(limit, depLimit); why != "" {
				p.mu.Lock()
				p.killedFor = why
				p.mu.Unlock()
				syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				return
			}
		}
	}
}

// overMemory says why the sandbox is over its limits, or "".
func (p *Process) overMemory(limit, depLimit uint64) string {
	pid := p.cmd.Process.Pid
	if len(p.deps) > 0 {
		svc, deps := p.memoryUse()
		for _, d := range p.deps {
			d.mu.Lock()
			d.peakUsed = max(d.peakUsed, deps)
			d.mu.Unlock()
		}
		if limit > 0 && svc > limit {
			return fmt.Sprintf("killed by memgate: the service's memory (resident and in its tmpfs mounts, its dependencies' apart) %d MiB passed the %d MiB limit (run.memory_limit)", svc>>20, limit>>20)
		}
		if depLimit > 0 && deps > depLimit {
			return fmt.Sprintf("killed by memgate: the dependencies' memory (resident and in %s) %d MiB passed their %d MiB limit (dependencies.*.memory_limit)", sandbox.CompanionsDir, deps>>20, depLimit>>20)
		}
		return ""
	}
	rss := groupRSS(pid)
	what := "resident memory"
	if p.sandboxed {
		// What the sandbox wrote into its tmpfs mounts is the
		// worker's memory too, though no process's resident set.
		rss = namespaceRSS(pid) + sandboxTmpfs(pid)
		what = "memory (resident and in its tmpfs mounts)"
	}
	if rss > limit {
		return fmt.Sprintf("killed by memgate: %s %d MiB passed the %d MiB limit (run.memory_limit)", what, rss>>20, limit>>20)
	}
	return ""
}

// RemoveScratch removes a gate's scratch directory, once its sandboxes
// have ended. A build (as memgate's own uid, unprivileged) may have left
// directories their owner cannot empty (mode 0): those are made the
// owner's to search and write again, following no symlink, and removal
// tried once more.
func RemoveScratch(dir string) error {
	if err := os.RemoveAll(dir); err == nil {
		return nil
	}
	unlockTree(dir)
	return os.RemoveAll(dir)
}

// unlockTree gives every directory under dir (dir included) u+rwx,
// through an O_PATH descriptor opened without following a symlink.
func unlockTree(dir string) {
	fd, err := syscall.Open(dir, unix.O_PATH|syscall.O_NOFOLLOW|syscall.O_DIRECTORY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	var st syscall.Stat_t
	if syscall.Fstat(fd, &st) == nil && st.Mode&0o700 != 0o700 {
		os.Chmod("/proc/self/fd/"+strconv.Itoa(fd), os.FileMode(st.Mode&0o7777|0o700))
	}
	syscall.Close(fd)
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if e.IsDir() {
			unlockTree(filepath.Join(dir, e.Name()))
		}
	}
}
