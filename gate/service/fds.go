package service

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// OpenFiles is a count of a process's open file descriptors.
type OpenFiles struct {
	FDs     int
	Sockets int
	Limit   uint64 // RLIMIT_NOFILE (soft); 0 when unknown
}

// ErrNoFDs means the service's descriptors cannot be counted from outside.
var ErrNoFDs = errors.New("open file descriptors cannot be counted")

// OpenFiles counts the service's descriptors in /proc/<pid>/fd, from
// outside the service: it needs neither its pprof nor its cooperation. A
// sandboxed service is the child of the sandbox's init, not the process
// memgate started; it runs as memgate's own user (unprivileged) or a user
// of its own (root, which may read any process's).
func (p *Process) OpenFiles() (OpenFiles, error) {
	pid, err := p.servicePid()
	if err != nil {
		return OpenFiles{}, err
	}
	return countFDs(pid)
}

// servicePid is the pid, in memgate's pid namespace, of the service's own
// process: for a sandbox, its init's first child.
func (p *Process) servicePid() (int, error) {
	pid := p.cmd.Process.Pid
	if !p.sandboxed {
		return pid, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.innerPid != 0 {
		return p.innerPid, nil
	}
	child, err := firstChild(pid)
	if err != nil {
		return 0, err
	}
	p.innerPid = child
	return child, nil
}

// firstChild is the oldest child of pid, from the children lists of its
// threads (the sandbox's init forks the service from a thread of its own).
func firstChild(pid int) (int, error) {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	if err != nil || len(tasks) == 0 {
		return 0, fmt.Errorf("%w: no children list for the sandbox's init %d", ErrNoFDs, pid)
	}
	best, bestStart := 0, uint64(0)
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			c, err := strconv.Atoi(f)
			if err != nil {
				continue
			}
			start, err := startTime(c)
			if err != nil {
				continue
			}
			if best == 0 || start < bestStart {
				best, bestStart = c, start
			}
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("%w: the sandbox's init %d has no child", ErrNoFDs, pid)
	}
	return best, nil
}

// startTime is field 22 of /proc/<pid>/stat, after the parenthesised name
// (which may hold spaces and parentheses: the service chooses it).
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc/%d/stat: no name", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	return strconv.ParseUint(f[19], 10, 64) // field 22, the 20th after the name
}

func countFDs(pid int) (OpenFiles, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	d, err := os.Open(dir)
	if err != nil {
		return OpenFiles{}, fmt.Errorf("%w: %v", ErrNoFDs, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return OpenFiles{}, fmt.Errorf("%w: %v", ErrNoFDs, err)
	}
	n := OpenFiles{FDs: len(names)}
	for _, name := range names {
		if link, err := os.Readlink(dir + "/" + name); err == nil && strings.HasPrefix(link, "socket:") {
			n.Sockets++
		}
	}
	n.Limit, _ = fdLimit(pid)
	return n, nil
}

// fdLimit reads the soft "Max open files" of /proc/<pid>/limits.
func fdLimit(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/limits", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Max open files"); ok {
			f := strings.Fields(rest)
			if len(f) == 0 || f[0] == "unlimited" {
				return 0, nil
			}
			return strconv.ParseUint(f[0], 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/limits: no Max open files", pid)
}
