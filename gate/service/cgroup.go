package service

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A control group of the service's own gives what rlimits and a watchdog
// cannot: a memory cap the kernel enforces, a process cap that counts this
// gate's tasks only (RLIMIT_NPROC counts every process of the user on the
// machine), and a membership no process of the service can leave, so that
// everything it started is found and killed at the end however it hid.
//
// cgroup v2 is used where its memory or pids controller can be had, v1's
// memory and pids hierarchies otherwise (hybrid hosts), then a v2 group
// without controllers; without any (no root, no delegation) the RSS
// watchdog, prlimit and the environment mark remain.

// groupControllers are the controllers a service's group uses.
var groupControllers = []string{"memory", "pids"}

// cgroupHost is where this process may make control groups.
type cgroupHost struct {
	// v2 is the unified-hierarchy directory new groups go under; v2Controllers
	// the controllers enabled for them there.
	v2            string
	v2Controllers map[string]bool
	// v1 maps a v1 controller ("memory", "pids") to our own group's
	// directory in its hierarchy.
	v1 map[string]string
	// note says why there is none, for the report.
	note string
}

func (h *cgroupHost) usable() bool { return h.v2 != "" || len(h.v1) > 0 }

var (
	hostOnce   sync.Once
	hostGroups cgroupHost
)

// cgroups discovers, once, where this process can make control groups.
func cgroups() *cgroupHost {
	hostOnce.Do(func() {
		hostGroups = discoverCgroups("/proc/self/mountinfo", "/proc/self/cgroup")
		if hostGroups.usable() {
			sweepStaleGroups(&hostGroups)
		}
	})
	return &hostGroups
}

// cgroupMount is one cgroup filesystem mount.
type cgroupMount struct {
	dir, root string
	v2        bool
	options   map[string]bool
}

func discoverCgroups(mountinfo, selfCgroup string) cgroupHost {
	v2, v1, note := candidateCgroups(mountinfo, selfCgroup)
	switch {
	case v2 != nil && (v2.v2Controllers["memory"] || v2.v2Controllers["pids"]):
		return *v2
	case v1 != nil:
		// A hybrid host (v1 controllers, an empty v2 tree beside them):
		// v1 can cap memory and tasks.
		return *v1
	case v2 != nil:
		return *v2
	}
	return cgroupHost{note: note}
}

// candidateCgroups finds both kinds of host this process could use.
func candidateCgroups(mountinfo, selfCgroup string) (v2, v1 *cgroupHost, note string) {
	if os.Geteuid() != 0 {
		return nil, nil, "no control group (needs root)"
	}
	mounts, err := readCgroupMounts(mountinfo)
	if err != nil {
		return nil, nil, "no control group: " + err.Error()
	}
	paths, err := readSelfCgroup(selfCgroup)
	if err != nil {
		return nil, nil, "no control group: " + err.Error()
	}
	note = "no control group (none writable here)"
	for _, m := range mounts {
		own, ok := paths[""]
		if !m.v2 || !ok || v2 != nil {
			continue
		}
		h, err := prepareV2(m.under(own))
		if err != nil {
			note = "no control group: " + err.Error()
			continue
		}
		v2 = &h
	}
	h := cgroupHost{v1: map[string]string{}}
	for _, m := range mounts {
		if m.v2 {
			continue
		}
		for _, c := range groupControllers {
			own, ok := paths[c]
			if !m.options[c] || !ok {
				continue
			}
			if dir := m.under(own); writable(dir) {
				h.v1[c] = dir
			}
		}
	}
	if len(h.v1) > 0 {
		v1 = &h
	}
	return v2, v1, note
}

// under is the directory of a group path (as /proc/self/cgroup gives it)
// in this mount, which may show only a subtree of the hierarchy.
func (m cgroupMount) under(path string) string {
	rel := path
	if m.root != "/" {
		rel = strings.TrimPrefix(path, m.root)
	}
	return filepath.Join(m.dir, rel)
}

func readCgroupMounts(mountinfo string) ([]cgroupMount, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []cgroupMount
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		a, b := strings.Fields(pre), strings.Fields(post)
		if len(a) < 5 || len(b) < 3 || (b[0] != "cgroup" && b[0] != "cgroup2") {
			continue
		}
		m := cgroupMount{dir: unescapeMount(a[4]), root: unescapeMount(a[3]), v2: b[0] == "cgroup2", options: map[string]bool{}}
		for _, o := range strings.Split(b[2], ",") {
			m.options[o] = true
		}
		out = append(out, m)
	}
	return out, sc.Err()
}

// unescapeMount undoes mountinfo's octal escapes of spaces and the like.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// readSelfCgroup maps each v1 controller, and "" for v2, to our group path.
func readSelfCgroup(path string) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			out[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			out[c] = parts[2]
		}
	}
	return out, nil
}

func writable(dir string) bool {
	return syscall.Access(dir, 2 /* W_OK */) == nil
}

// prepareV2 readies our own v2 group to hold the services' groups. v2
// lets a group hand controllers to its children only when it holds no
// processes itself (but for the root), so memgate first moves itself into
// a leaf of its own beside them.
func prepareV2(own string) (cgroupHost, error) {
	if !writable(own) {
		return cgroupHost{}, fmt.Errorf("%s is not writable", own)
	}
	available := readWords(filepath.Join(own, "cgroup.controllers"))
	enabled := readWords(filepath.Join(own, "cgroup.subtree_control"))
	var enable []string
	for _, c := range groupControllers {
		if available[c] && !enabled[c] {
			enable = append(enable, "+"+c)
		}
	}
	if len(enable) > 0 {
		control := filepath.Join(own, "cgroup.subtree_control")
		err := writeFile(control, strings.Join(enable, " "))
		if errors.Is(err, syscall.EBUSY) {
			self := filepath.Join(own, fmt.Sprintf("memgate-%d-self", os.Getpid()))
			if err := os.Mkdir(self, 0o755); err != nil && !os.IsExist(err) {
				return cgroupHost{}, err
			}
			if err := writeFile(filepath.Join(self, "cgroup.procs"), strconv.Itoa(os.Getpid())); err != nil {
				return cgroupHost{}, fmt.Errorf("move memgate into a leaf group: %w", err)
			}
			_ = writeFile(control, strings.Join(enable, " "))
		}
		// Should it still fail (other processes share our group), groups
		// still contain and kill, only without the limits: what is
		// enabled is read back below.
	}
	h := cgroupHost{v2: own, v2Controllers: map[string]bool{}}
	enabled = readWords(filepath.Join(own, "cgroup.subtree_control"))
	for _, c := range groupControllers {
		h.v2Controllers[c] = enabled[c]
	}
	return h, nil
}

func readWords(path string) map[string]bool {
	b, _ := os.ReadFile(path)
	out := map[string]bool{}
	for _, w := range strings.Fields(string(b)) {
		out[w] = true
	}
	return out
}

func writeFile(path, value string) error {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", value, path, err)
	}
	return nil
}

// groupName is a service group's name; it carries memgate's pid so that
// groups a killed memgate left behind are told from a live one's.
func groupName(token string) string { return fmt.Sprintf("memgate-%d-%s", os.Getpid(), token) }

// sweepStaleGroups empties and removes service groups whose memgate is
// gone (killed before it could clean up).
func sweepStaleGroups(h *cgroupHost) {
	var parents []string
	if h.v2 != "" {
		parents = append(parents, h.v2)
	}
	for _, d := range h.v1 {
		parents = append(parents, d)
	}
	for _, parent := range parents {
		entries, _ := os.ReadDir(parent)
		for _, e := range entries {
			var pid int
			if !e.IsDir() || !strings.HasPrefix(e.Name(), "memgate-") {
				continue
			}
			fmt.Sscanf(strings.TrimPrefix(e.Name(), "memgate-"), "%d-", &pid)
			if pid <= 0 || pid == os.Getpid() || syscall.Kill(pid, 0) == nil {
				continue
			}
			g := &serviceGroup{dirs: []string{filepath.Join(parent, e.Name())}}
			g.kill()
			g.remove()
		}
	}
}

// serviceGroup is one service's control group (one directory per v1
// hierarchy, or one v2 directory).
type serviceGroup struct {
	dirs      []string
	v2        bool
	memoryDir string // where the memory controller's files are, if capped
	memory    uint64
	pids      uint64
	fd        *os.File // v2: the group's directory, to start the service in it
}

// newServiceGroup makes a group with the limits the host's controllers allow.
func (h *cgroupHost) newServiceGroup(token string, memory, pids uint64) (*serviceGroup, error) {
	g := &serviceGroup{v2: h.v2 != ""}
	name := groupName(token)
	if g.v2 {
		dir := filepath.Join(h.v2, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return nil, fmt.Errorf("control group: %w", err)
		}
		g.dirs = []string{dir}
		if memory > 0 && h.v2Controllers["memory"] {
			if err := writeFile(filepath.Join(dir, "memory.max"), strconv.FormatUint(memory, 10)); err != nil {
				g.remove()
				return nil, err
			}
			// Swap would let the service grow past the cap unseen.
			_ = writeFile(filepath.Join(dir, "memory.swap.max"), "0")
			g.memoryDir, g.memory = dir, memory
		}
		if pids > 0 && h.v2Controllers["pids"] {
			if err := writeFile(filepath.Join(dir, "pids.max"), strconv.FormatUint(pids, 10)); err != nil {
				g.remove()
				return nil, err
			}
			g.pids = pids
		}
		fd, err := os.Open(dir)
		if err != nil {
			g.remove()
			return nil, fmt.Errorf("control group: %w", err)
		}
		g.fd = fd
		return g, nil
	}
	for _, c := range groupControllers {
		parent, ok := h.v1[c]
		if !ok {
			continue
		}
		dir := filepath.Join(parent, name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			g.remove()
			return nil, fmt.Errorf("control group: %w", err)
		}
		g.dirs = append(g.dirs, dir)
		var err error
		switch {
		case c == "memory" && memory > 0:
			err = writeFile(filepath.Join(dir, "memory.limit_in_bytes"), strconv.FormatUint(memory, 10))
			if err == nil {
				// With swap accounting, cap memory+swap at the same value.
				if _, serr := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); serr == nil {
					_ = writeFile(filepath.Join(dir, "memory.memsw.limit_in_bytes"), strconv.FormatUint(memory, 10))
				}
				g.memoryDir, g.memory = dir, memory
			}
		case c == "pids" && pids > 0:
			err = writeFile(filepath.Join(dir, "pids.max"), strconv.FormatUint(pids, 10))
			if err == nil {
				g.pids = pids
			}
		}
		if err != nil {
			g.remove()
			return nil, err
		}
	}
	return g, nil
}

// joinScript is shell that writes its own process into the v1 groups.
func (g *serviceGroup) joinScript() string {
	var b strings.Builder
	for _, d := range g.dirs {
		fmt.Fprintf(&b, `echo $$ > %s || { echo "memgate: cannot join the service's control group" >&2; exit 97; }; `, shellQuote(filepath.Join(d, "cgroup.procs")))
	}
	return b.String()
}

// join moves pid into the group's v1 hierarchies (v1 has no way to start a
// process inside a group; a v2 service is born in its group).
func (g *serviceGroup) join(pid int) error {
	if g.v2 {
		return nil
	}
	for _, d := range g.dirs {
		if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(pid)); err != nil {
			return fmt.Errorf("join the service's control group: %w", err)
		}
	}
	return nil
}

// members are the processes in the group now (each once: in v1 every
// hierarchy lists them).
func (g *serviceGroup) members() []int {
	var out []int
	seen := map[int]bool{}
	for _, d := range g.dirs {
		b, err := os.ReadFile(filepath.Join(d, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil && !seen[pid] {
				seen[pid] = true
				out = append(out, pid)
			}
		}
	}
	return out
}

// kill SIGKILLs every process in the group until it is empty; a fork bomb
// may add processes meanwhile, but no more than the pids cap.
func (g *serviceGroup) kill() {
	if g.v2 {
		// cgroup.kill (Linux 5.14) kills the whole group at once.
		_ = writeFile(filepath.Join(g.dirs[0], "cgroup.kill"), "1")
	}
	for i := 0; i < 100; i++ {
		pids := g.members()
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// oomKilled reports whether the kernel killed a process of the group for
// passing the memory cap.
func (g *serviceGroup) oomKilled() bool {
	if g.memoryDir == "" {
		return false
	}
	file := "memory.oom_control" // v1
	if g.v2 {
		file = "memory.events"
	}
	b, err := os.ReadFile(filepath.Join(g.memoryDir, file))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "oom_kill" && f[1] != "0" {
			return true
		}
	}
	return false
}

// remove deletes the group's directories; they must be empty of processes.
func (g *serviceGroup) remove() {
	if g.fd != nil {
		g.fd.Close()
	}
	for _, d := range g.dirs {
		for i := 0; i < 50; i++ {
			// A killed process leaves its group only once reaped.
			if err := syscall.Rmdir(d); err == nil || errors.Is(err, syscall.ENOENT) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

func (g *serviceGroup) describe() string {
	version := "v1"
	if g.v2 {
		version = "v2"
	}
	var caps []string
	if g.memory > 0 {
		caps = append(caps, fmt.Sprintf("memory at %d MiB", g.memory>>20))
	}
	if g.pids > 0 {
		caps = append(caps, fmt.Sprintf("%d tasks", g.pids))
	}
	if len(caps) == 0 {
		return fmt.Sprintf("in a control group of its own (cgroup %s)", version)
	}
	return fmt.Sprintf("in a control group of its own capping %s (cgroup %s)", strings.Join(caps, " and "), version)
}
