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
	if len(p.deps) > 0 {
		// The oldest child is a dependency's: the init names the service.
		child, err := p.mainPid()
		if err != nil {
			return 0, err
		}
		p.innerPid = child
		return child, nil
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

// fdLinks lists pid's open descriptors as paths of /proc/<pid>/fd, whose
// links say what each is open on.
func fdLinks(pid int) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	d, err := os.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoFDs, err)
	}
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoFDs, err)
	}
	for i, name := range names {
		names[i] = dir + "/" + name
	}
	return names, nil
}

func countFDs(pid int) (OpenFiles, error) {
	links, err := fdLinks(pid)
	if err != nil {
		return OpenFiles{}, err
	}
	n := OpenFiles{FDs: len(links)}
	for _, l := range links {
		if link, err := os.Readlink(l); err == nil && strings.HasPrefix(link, "socket:") {
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

// OpenFileTargets counts the service's open descriptors by what they are
// open on: a file's path (as the service sees it), "TCP connection to
// ADDR" for a connected socket (from the service's own network namespace's
// tables), "TCP listener" or "socket" otherwise, "pipe", or the kernel's
// name of an anonymous inode. The names come from a hostile process: the
// caller must treat them as text to quote, never as paths to open.
func (p *Process) OpenFileTargets() (map[string]int, error) {
	pid, err := p.servicePid()
	if err != nil {
		return nil, err
	}
	return fdTargets(pid)
}

// maxTargetNames bounds the distinct names kept: a service opening a new
// file per request must not make memgate's map grow with it.
const maxTargetNames = 10000

func fdTargets(pid int) (map[string]int, error) {
	links, err := fdLinks(pid)
	if err != nil {
		return nil, err
	}
	var sockets map[string]string // inode to description, read once when needed
	out := map[string]int{}
	for _, l := range links {
		link, err := os.Readlink(l)
		if err != nil {
			continue // closed meanwhile
		}
		what := link
		switch {
		case strings.HasPrefix(link, "socket:["):
			if sockets == nil {
				sockets = tcpSockets(pid)
			}
			what = "socket"
			if s, ok := sockets[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")]; ok {
				what = s
			}
		case strings.HasPrefix(link, "pipe:["):
			what = "pipe"
		}
		if _, ok := out[what]; !ok && len(out) >= maxTargetNames {
			what = "other"
		}
		out[what]++
	}
	return out, nil
}

// tcpSockets describes the TCP sockets of pid's network namespace by inode.
func tcpSockets(pid int) map[string]string {
	out := map[string]string{}
	eachTCPSocket(pid, func(inode, local, remote, state string) {
		switch state {
		case "0A":
			out[inode] = "TCP listener on " + hexAddr(local)
		case "01":
			out[inode] = "TCP connection to " + hexAddr(remote)
		case "08":
			// The client went away and the service never closed its end:
			// the mark of a handler that outlived its client.
			out[inode] = "TCP connection its client closed (CLOSE_WAIT) on " + hexAddr(local)
		default:
			out[inode] = "TCP socket (closing)"
		}
	})
	return out
}

// eachTCPSocket calls f with each TCP socket of pid's network namespace
// (/proc/<pid>/net/tcp and tcp6): its inode, local and remote addresses
// (hex, as the table has them) and state ("0A" listening, "01"
// established, "08" CLOSE_WAIT).
func eachTCPSocket(pid int, f func(inode, local, remote, state string)) {
	for _, table := range []string{"tcp", "tcp6"} {
		file, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, table))
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(file)
		sc.Scan() // the header
		for sc.Scan() {
			// sl local rem st tx:rx tr:when retrnsmt uid timeout inode
			fs := strings.Fields(sc.Text())
			if len(fs) >= 10 {
				f(fs[9], fs[1], fs[2], fs[3])
			}
		}
		file.Close()
	}
}

// hexAddr reads /proc/net/tcp's "0100007F:1F90" (IPv4, little-endian
// words) as 127.0.0.1:8080; IPv6 addresses are kept in their hex form
// but for the loopback.
func hexAddr(s string) string {
	host, port, ok := strings.Cut(s, ":")
	pn, err := strconv.ParseUint(port, 16, 16)
	if !ok || err != nil {
		return s
	}
	if len(host) == 8 {
		v, err := strconv.ParseUint(host, 16, 32)
		if err == nil {
			return fmt.Sprintf("%d.%d.%d.%d:%d", byte(v), byte(v>>8), byte(v>>16), byte(v>>24), pn)
		}
	}
	if host == "00000000000000000000000001000000" {
		return fmt.Sprintf("[::1]:%d", pn)
	}
	return fmt.Sprintf("%s:%d", host, pn)
}

// maxSockets bounds the sockets ClientSockets lists.
const maxSockets = 100000

// ClientSockets lists the service's outgoing TCP connections (established,
// from a port it does not listen on) by inode: the same inode before and
// after is the same connection, kept open (a pool's), where a count cannot
// tell one kept from one closed and replaced. The connections of its own
// clients (memgate's load and reads) are not among them.
func (p *Process) ClientSockets() (map[string]bool, error) {
	pid, err := p.servicePid()
	if err != nil {
		return nil, err
	}
	return clientSockets(pid)
}

func clientSockets(pid int) (map[string]bool, error) {
	links, err := fdLinks(pid)
	if err != nil {
		return nil, err
	}
	own := map[string]bool{}
	for _, l := range links {
		if link, err := os.Readlink(l); err == nil && strings.HasPrefix(link, "socket:[") {
			own[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] = true
		}
	}
	type conn struct{ local, state string }
	conns := map[string]conn{}
	listening := map[string]bool{} // local ports
	eachTCPSocket(pid, func(inode, local, _, state string) {
		if !own[inode] {
			return
		}
		_, port, _ := strings.Cut(local, ":")
		if state == "0A" {
			listening[port] = true
		}
		conns[inode] = conn{port, state}
	})
	out := map[string]bool{}
	for inode, c := range conns {
		if c.state == "01" && !listening[c.local] && len(out) < maxSockets {
			out[inode] = true
		}
	}
	return out, nil
}
