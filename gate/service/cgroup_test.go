package service

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary doubles as a misbehaving service when this is set.
const helperEnv = "MEMGATE_SERVICE_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "alloc":
		var kept [][]byte
		for {
			b := make([]byte, 8<<20)
			for i := range b {
				b[i] = 1
			}
			kept = append(kept, b)
			time.Sleep(5 * time.Millisecond)
		}
	}
	os.Exit(m.Run())
}

func TestMountinfoAndOwnGroupAreRead(t *testing.T) {
	dir := t.TempDir()
	mountinfo := filepath.Join(dir, "mountinfo")
	os.WriteFile(mountinfo, []byte(strings.Join([]string{
		`22 1 0:21 / /proc rw,nosuid - proc proc rw`,
		`30 25 0:26 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory`,
		`31 25 0:27 /kubepods/pod1 /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids`,
		`32 25 0:28 / /sys/fs/cgroup/unified\040dir rw,relatime - cgroup2 cgroup2 rw,nsdelegate`,
	}, "\n")), 0o644)
	mounts, err := readCgroupMounts(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 3 {
		t.Fatalf("mounts %+v", mounts)
	}
	if !mounts[0].options["memory"] || mounts[0].v2 || mounts[0].under("/a/b") != "/sys/fs/cgroup/memory/a/b" {
		t.Errorf("memory mount %+v", mounts[0])
	}
	// A mount showing only a subtree: our path is relative to its root.
	if got := mounts[1].under("/kubepods/pod1/c1"); got != "/sys/fs/cgroup/pids/c1" {
		t.Errorf("pids mount maps to %s", got)
	}
	if !mounts[2].v2 || mounts[2].dir != "/sys/fs/cgroup/unified dir" {
		t.Errorf("v2 mount %+v", mounts[2])
	}

	self := filepath.Join(dir, "cgroup")
	os.WriteFile(self, []byte("4:memory:/process_api/x\n3:cpu,cpuacct:/\n0::/user.slice/s1\n"), 0o644)
	paths, err := readSelfCgroup(self)
	if err != nil {
		t.Fatal(err)
	}
	if paths["memory"] != "/process_api/x" || paths["cpuacct"] != "/" || paths[""] != "/user.slice/s1" {
		t.Errorf("paths %v", paths)
	}
}

// has reports whether groups made on h get the controller.
func (h *cgroupHost) has(controller string) bool {
	if h.v2 != "" {
		return h.v2Controllers[controller]
	}
	_, ok := h.v1[controller]
	return ok
}

// eachHost runs f with every kind of control group this machine offers
// (a hybrid host has both: v1 controllers and an empty v2 tree).
func eachHost(t *testing.T, f func(t *testing.T, h *cgroupHost)) {
	v2, v1, note := candidateCgroups("/proc/self/mountinfo", "/proc/self/cgroup")
	if v2 == nil && v1 == nil {
		t.Skip(note)
	}
	if v2 != nil {
		t.Run("v2", func(t *testing.T) { f(t, v2) })
	} else {
		t.Logf("no cgroup v2 here: %s", note)
	}
	if v1 != nil {
		t.Run("v1", func(t *testing.T) { f(t, v1) })
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie is dead, waiting for its parent.
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || !strings.HasPrefix(string(b[i+1:]), " Z")
}

// A process that leaves the service's session and wipes its environment
// escapes the process-group kill and the environment mark; its control
// group still holds it.
func TestControlGroupKillsAnEscapeeThatHidItsMark(t *testing.T) {
	eachHost(t, func(t *testing.T, h *cgroupHost) {
		if pid := runEscapee(t, h); alive(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("escapee %d outlived the service", pid)
		}
	})
	// The control: without a group the same escapee does get away, so
	// the test above can tell.
	t.Run("without", func(t *testing.T) {
		pid := runEscapee(t, &cgroupHost{})
		if !alive(pid) {
			t.Fatalf("escapee %d died without a control group: the test proves nothing", pid)
		}
		syscall.Kill(pid, syscall.SIGKILL)
	})
}

// runEscapee starts a service that leaves an escapee behind, stops it, and
// returns the escapee's pid once it is dead or 3 s have passed.
func runEscapee(t *testing.T, h *cgroupHost) int {
	p, err := start(RunSpec{
		Binary: "/bin/sh",
		Args:   []string{"-c", `setsid env -i /bin/sleep 300 & echo "escapee $!"; exec /bin/sleep 300`},
		Dir:    "/",
		Env:    []string{"PATH=/usr/bin:/bin"},
		Limits: Limits{MemoryBytes: 256 << 20, Processes: 64},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	pid := 0
	for deadline := time.Now().Add(5 * time.Second); pid == 0 && time.Now().Before(deadline); {
		sc := bufio.NewScanner(strings.NewReader(p.Output().String()))
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "escapee" {
				pid, _ = strconv.Atoi(f[1])
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if pid == 0 {
		p.Stop(time.Second)
		t.Fatalf("the escapee never started: %q", p.Output().String())
	}
	// Wait until it really is a new session with no mark.
	hidden := false
	for deadline := time.Now().Add(5 * time.Second); !hidden && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
		info, ok := readProc(pid)
		hidden = err == nil && !strings.Contains(string(env), tokenEnv) && ok && info.pgid != p.Pid()
	}
	if !hidden {
		p.Stop(time.Second)
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("escapee %d never left the group and its mark", pid)
	}
	var dirs []string
	if p.group != nil {
		dirs = p.group.dirs
		if !strings.Contains(p.Isolation(), "control group") {
			t.Errorf("isolation %q does not mention the control group", p.Isolation())
		}
	}
	p.Stop(time.Second)
	for deadline := time.Now().Add(3 * time.Second); alive(pid) && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("control group %s left behind (%v)", d, err)
		}
	}
	return pid
}

// Memory over the cap is the kernel's to stop, and the report says so.
func TestControlGroupCapsMemory(t *testing.T) {
	eachHost(t, testMemoryCap)
}

func testMemoryCap(t *testing.T, h *cgroupHost) {
	if !h.has("memory") {
		t.Skip("no memory controller for memgate's groups here")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p, err := start(RunSpec{Binary: self, Dir: "/", Env: []string{helperEnv + "=alloc"},
		Limits: Limits{MemoryBytes: 64 << 20}}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	select {
	case <-p.Done():
	case <-time.After(20 * time.Second):
		t.Fatal("allocating past 64 MiB for 20 s: not stopped")
	}
	msg := p.ExitError().Error()
	if !strings.Contains(msg, "killed by the kernel") || !strings.Contains(msg, "passed the 64 MiB limit") {
		t.Fatalf("exit: %s", msg)
	}
	if !strings.Contains(p.Isolation(), "memory at 64 MiB") || strings.Contains(p.Isolation(), "watchdog") {
		t.Errorf("isolation %q", p.Isolation())
	}
}

// The process cap counts this service's tasks only.
func TestControlGroupCapsTasks(t *testing.T) {
	eachHost(t, testTaskCap)
}

func testTaskCap(t *testing.T, h *cgroupHost) {
	if !h.has("pids") {
		t.Skip("no pids controller for memgate's groups here")
	}
	p, err := start(RunSpec{
		Binary: "/bin/sh",
		// Start sleepers until fork fails, then say how many.
		Args:   []string{"-c", `n=0; while /bin/sleep 300 & [ $? -eq 0 ] && [ $n -lt 200 ]; do n=$((n+1)); done 2>/dev/null; echo "started $n"; exec /bin/sleep 300`},
		Dir:    "/",
		Env:    []string{"PATH=/usr/bin:/bin"},
		Limits: Limits{Processes: 16},
	}, h)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop(time.Second)
	time.Sleep(time.Second)
	if n := len(p.group.members()); n > 16 || n == 0 {
		t.Fatalf("%d processes in a group capped at 16", n)
	}
}

// Groups a killed memgate left behind are emptied and removed by the next.
func TestStaleGroupsAreSwept(t *testing.T) {
	eachHost(t, func(t *testing.T, h *cgroupHost) {
		gone := exec.Command("/bin/true")
		if err := gone.Run(); err != nil {
			t.Fatal(err)
		}
		stale := &serviceGroup{v2: h.v2 != ""}
		mine, err := h.newServiceGroup("live", 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer mine.remove()
		for _, d := range mine.dirs {
			dir := filepath.Join(filepath.Dir(d), fmt.Sprintf("memgate-%d-stale", gone.Process.Pid))
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			stale.dirs = append(stale.dirs, dir)
		}
		orphan := exec.Command("/bin/sleep", "300")
		if err := orphan.Start(); err != nil {
			t.Fatal(err)
		}
		defer orphan.Process.Kill()
		for _, d := range stale.dirs {
			if err := writeFile(filepath.Join(d, "cgroup.procs"), strconv.Itoa(orphan.Process.Pid)); err != nil {
				t.Fatal(err)
			}
		}
		sweepStaleGroups(h)
		orphan.Wait()
		for _, d := range stale.dirs {
			if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("stale group %s still there (%v)", d, err)
			}
		}
		for _, d := range mine.dirs {
			if _, err := os.Stat(d); err != nil {
				t.Errorf("a live memgate's group %s was swept: %v", d, err)
			}
		}
		if orphan.ProcessState == nil || orphan.ProcessState.Success() {
			t.Errorf("the stale group's process was not killed: %v", orphan.ProcessState)
		}
	})
}
