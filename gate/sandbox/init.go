package sandbox

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The first process inside runs here, before main, in every binary that
// imports this package: it was started under InitName by Command.
func init() {
	if len(os.Args) > 0 && os.Args[0] == InitName {
		os.Exit(runInit())
	}
}

// initExit codes: the sandbox could not be assembled. Above 128 the code
// says a signal ended the sandboxed program (128 + signal), as a shell does.
const exitSetup = 125

func runInit() int {
	// Nothing of this process is for the sandboxed code to read or trace.
	unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
	// A umask of the sandbox's own, not memgate's: what a sandbox writes
	// for later ones (the shared caches) must not come out writable by
	// others because memgate ran under a umask of 0.
	unix.Umask(0o022)
	var w wire
	spec := os.NewFile(3, "spec")
	dec := json.NewDecoder(spec)
	if err := dec.Decode(&w); err != nil {
		// The parent gave up before sending it: nothing to do.
		return exitSetup
	}
	// With companions, memgate's control lines follow the spec, and the
	// events and outputs have descriptors of their own: none of them is
	// for the programs started here (the service could forge events, read
	// memgate's lines or write into a dependency's output).
	var ctl *bufio.Reader
	if len(w.Companions) > 0 {
		for fd := 3; fd < 5+len(w.Companions); fd++ {
			unix.CloseOnExec(fd)
		}
		ctl = bufio.NewReader(io.MultiReader(dec.Buffered(), spec))
	} else {
		spec.Close()
	}
	relay, err := assemble(&w)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memgate sandbox: %v\n", err)
		return exitSetup
	}
	if relay != nil {
		go relay.serve()
	}
	return supervise(&w, ctl)
}

// assemble builds the sandbox's root and moves into it.
func assemble(w *wire) (*relayServer, error) {
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return nil, fmt.Errorf("make mounts private: %w", err)
	}
	root := w.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m,mode=0755"); err != nil {
		return nil, fmt.Errorf("root tmpfs: %w", err)
	}
	// The private mounts first: what is bound below may live under /tmp.
	if err := makeDev(root); err != nil {
		return nil, err
	}
	if err := mountAt(root, "/proc", "proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return nil, fmt.Errorf("%w (a container needs --security-opt systempaths=unconfined for a sandbox to mount its own /proc)", err)
	}
	tmp := fmt.Sprintf("size=%d,mode=1777", w.TmpBytes)
	if err := mountAt(root, "/tmp", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, tmp); err != nil {
		return nil, err
	}
	if err := mountAt(root, "/home/sandbox", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, fmt.Sprintf("size=%d,mode=0755,uid=%d,gid=%d", w.TmpBytes, w.InsideUID, w.InsideGID)); err != nil {
		return nil, err
	}
	if len(w.Companions) > 0 {
		opts := fmt.Sprintf("size=%d,mode=0755,uid=%d,gid=%d", w.CompanionTmpBytes, w.InsideUID, w.InsideGID)
		if err := mountAt(root, CompanionsDir, "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, opts); err != nil {
			return nil, err
		}
	}
	for _, b := range w.Binds {
		if err := bindInto(root, b); err != nil {
			return nil, err
		}
	}
	for link, to := range w.Symlinks {
		os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755)
		if err := os.Symlink(to, filepath.Join(root, link)); err != nil {
			return nil, err
		}
	}
	if err := writeFiles(root, w.Files); err != nil {
		return nil, err
	}
	for _, o := range w.Overlays {
		if err := overlayInto(root, o); err != nil {
			return nil, err
		}
	}
	unix.Sethostname([]byte("memgate-sandbox"))
	if w.OwnNetwork {
		if err := loopbackUp(); err != nil {
			return nil, fmt.Errorf("bring up loopback: %w", err)
		}
	}
	var relay *relayServer
	if w.Relay != "" {
		var err error
		if relay, err = listenRelay(w.Relay); err != nil {
			return nil, err
		}
	}
	if err := enter(root); err != nil {
		return nil, err
	}
	if err := noNestedUserNamespaces(); err != nil {
		return nil, err
	}
	return relay, nil
}

// noNestedUserNamespaces keeps the code from making user namespaces of its
// own inside the sandbox's: in one it would hold every capability again,
// and could mount what it likes (a tmpfs of half the machine's memory,
// where no watchdog looks) and reach the kernel code only a capability
// opens. The limit is the sandbox's user namespace's own, set while this
// process still has CAP_SYS_RESOURCE there.
func noNestedUserNamespaces() error {
	if err := os.WriteFile("/proc/sys/user/max_user_namespaces", []byte("0\n"), 0); err != nil {
		return fmt.Errorf("forbid nested user namespaces: %w", err)
	}
	return nil
}

// enter makes root the process's / and forgets the host's tree.
func enter(root string) error {
	old := filepath.Join(root, ".old")
	if err := os.Mkdir(old, 0o700); err != nil {
		return err
	}
	if err := unix.PivotRoot(root, old); err != nil {
		return fmt.Errorf("pivot_root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if err := unix.Unmount("/.old", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detach the host's tree: %w", err)
	}
	os.Remove("/.old")
	// Nothing more is to be made at the top: it becomes read-only.
	if err := unix.Mount("", "/", "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV, ""); err != nil {
		return fmt.Errorf("remount / read-only: %w", err)
	}
	return nil
}

// openNoFollow opens path for a mount source as the sandbox's user,
// following no symlink on the way.
func openNoFollow(path string) (int, error) {
	fd, err := unix.Openat2(unix.AT_FDCWD, path, &unix.OpenHow{
		Flags:   unix.O_PATH | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return -1, fmt.Errorf("open %s: %w", path, err)
	}
	return fd, nil
}

func bindInto(root string, b wireBind) error {
	fd, err := openNoFollow(b.Source)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	target := filepath.Join(root, b.Target)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		f.Close()
	} else if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	src := "/proc/self/fd/" + strconv.Itoa(fd)
	if err := unix.Mount(src, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s: %w", b.Target, err)
	}
	flags := uintptr(unix.MS_REMOUNT | unix.MS_BIND | unix.MS_NOSUID | unix.MS_NODEV)
	if !b.Writable {
		flags |= unix.MS_RDONLY
	}
	// A remount must keep the flags the host's mount has (the kernel locks
	// them for a less privileged namespace).
	var sf unix.Statfs_t
	if err := unix.Statfs(target, &sf); err == nil && sf.Flags&unix.ST_NOEXEC != 0 {
		flags |= unix.MS_NOEXEC
	}
	if err := unix.Mount("", target, "", flags, ""); err != nil {
		return fmt.Errorf("remount %s: %w", b.Target, err)
	}
	return nil
}

func overlayInto(root string, o wireOverlay) error {
	if o.Upper == "" && len(o.Lowers) == 1 {
		// overlayfs wants two lowers without an upper: a bind is the same.
		return bindInto(root, wireBind{Source: o.Lowers[0], Target: o.Target})
	}
	target := filepath.Join(root, o.Target)
	if err := os.MkdirAll(target, 0o755); err != nil {
		return err
	}
	// Every layer is opened without following symlinks; overlayfs takes
	// them as paths, through /proc/self/fd.
	var fds []string
	open := func(p string) error {
		fd, err := openNoFollow(p)
		if err != nil {
			return err
		}
		fds = append(fds, "/proc/self/fd/"+strconv.Itoa(fd))
		return nil
	}
	for _, l := range o.Lowers {
		if err := open(l); err != nil {
			return err
		}
	}
	opts := "lowerdir=" + strings.Join(fds, ":")
	flags := uintptr(unix.MS_NOSUID | unix.MS_NODEV)
	if o.Upper != "" {
		if err := open(o.Upper); err != nil {
			return err
		}
		if err := open(o.Work); err != nil {
			return err
		}
		opts += ",upperdir=" + fds[len(fds)-2] + ",workdir=" + fds[len(fds)-1]
	} else {
		flags |= unix.MS_RDONLY
	}
	opts += ",userxattr"
	err := unix.Mount("overlay", target, "overlay", flags, opts)
	for _, f := range fds {
		n, _ := strconv.Atoi(strings.TrimPrefix(f, "/proc/self/fd/"))
		unix.Close(n)
	}
	if err != nil {
		return fmt.Errorf("overlay %s: %w", o.Target, err)
	}
	return nil
}

func writeFiles(root string, files map[string]string) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(root, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(files[n]), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func mountAt(root, target, source, fstype string, flags uintptr, data string) error {
	p := filepath.Join(root, target)
	if err := os.MkdirAll(p, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(source, p, fstype, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fstype, target, err)
	}
	return nil
}

// makeDev gives the sandbox the few devices programs expect, bound from the
// host's (a user namespace cannot make device nodes).
func makeDev(root string) error {
	dev := filepath.Join(root, "dev")
	if err := mountAt(root, "/dev", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NOEXEC, "size=64k,mode=0755"); err != nil {
		return err
	}
	for _, name := range []string{"null", "zero", "full", "random", "urandom", "tty"} {
		p := filepath.Join(dev, name)
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o666)
		if err != nil {
			return err
		}
		f.Close()
		if err := unix.Mount("/dev/"+name, p, "", unix.MS_BIND, ""); err != nil {
			return fmt.Errorf("bind /dev/%s: %w", name, err)
		}
	}
	for name, to := range map[string]string{"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
		"stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx"} {
		os.Symlink(to, filepath.Join(dev, name))
	}
	return mountAt(root, "/dev/shm", "tmpfs", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "size=16m,mode=1777")
}

// loopbackUp sets lo up in the sandbox's own network namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

// supervise starts the sandboxed program without any capability, forwards
// termination signals to it, reaps whatever it orphans (this process is
// the namespace's init), and exits as it did. Its exit ends the pid
// namespace: the kernel kills every process left in it. With companions,
// they start first, each when memgate says so, and the program likewise.
func supervise(w *wire, ctl *bufio.Reader) int {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	rp := &reaper{waiting: map[int]chan syscall.WaitStatus{}}
	go rp.run()

	var cr *companionRun
	if len(w.Companions) > 0 {
		cr = newCompanionRun(rp, w)
		proceed := make(chan bool, 1)
		go func() { proceed <- cr.control(ctl) }()
		select {
		case ok := <-proceed:
			if !ok {
				return exitSetup // memgate gave up: the namespace ends
			}
		case s := <-sigs:
			return 128 + int(s.(syscall.Signal))
		}
	}

	path, err := lookPath(w.Path, w.Env)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memgate sandbox: %v\n", err)
		return 127
	}
	cmd := command(path, append([]string{w.Path}, w.Args...), w.Env, w.Dir, os.Stdout, os.Stderr)
	child, status, err := rp.start(cmd, w)
	if err != nil {
		fmt.Fprintf(os.Stderr, "memgate sandbox: start %s: %v\n", w.Path, err)
		return 127
	}
	if cr != nil {
		cr.ev.send(Event{Kind: "main", Pid: child})
	}
	for {
		select {
		case s := <-sigs:
			syscall.Kill(-child, s.(syscall.Signal))
		case ws := <-status:
			return exitCode(ws)
		}
	}
}

// command is a program to start unprivileged: argv[0] as given, in a
// process group of its own.
func command(path string, argv, env []string, dir string, stdout, stderr *os.File) *exec.Cmd {
	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Dir = dir
	cmd.Stdin = nil
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// No parent-death signal: it would fire when the forking thread, spoiled
	// by dropping privileges, is retired. When this process ends, the pid
	// namespace ends and takes the program along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

// reaper waits for every child (orphans are re-parented here) and hands
// the status of the ones this process started to whoever started them.
type reaper struct {
	mu      sync.Mutex
	waiting map[int]chan syscall.WaitStatus
}

// start starts cmd unprivileged; its status arrives on the channel.
func (r *reaper) start(cmd *exec.Cmd, w *wire) (int, <-chan syscall.WaitStatus, error) {
	// Held across the start: the child cannot be reaped before it is known.
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := startUnprivileged(cmd, w); err != nil {
		return 0, nil, err
	}
	ch := make(chan syscall.WaitStatus, 1)
	r.waiting[cmd.Process.Pid] = ch
	return cmd.Process.Pid, ch, nil
}

func (r *reaper) run() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.ECHILD {
			time.Sleep(20 * time.Millisecond) // nothing started yet
			continue
		}
		if err != nil {
			continue
		}
		r.mu.Lock()
		if ch, ok := r.waiting[pid]; ok {
			ch <- ws
			delete(r.waiting, pid)
		}
		r.mu.Unlock()
	}
}

// startUnprivileged forks the program from a thread that has given up every
// capability and may gain none (no_new_privs): ambient capabilities would
// otherwise survive the exec. Limits are set on the way.
func startUnprivileged(cmd *exec.Cmd, w *wire) error {
	done := make(chan error, 1)
	go func() {
		// The thread is spoiled for the rest of the process: never unlock.
		runtime.LockOSThread()
		// Keyrings are not namespaced: a session keyring of its own, or
		// the code would possess memgate's (and what is linked there, such
		// as the user keyring of a service manager's user) and read its
		// keys. Credentials are per thread: this is the forking one.
		if _, _, e := unix.Syscall(unix.SYS_KEYCTL, unix.KEYCTL_JOIN_SESSION_KEYRING, 0, 0); e != 0 && e != unix.ENOSYS {
			done <- fmt.Errorf("a session keyring of its own: %w", e)
			return
		}
		if err := dropPrivileges(); err != nil {
			done <- err
			return
		}
		setLimits(w)
		done <- cmd.Start()
	}()
	return <-done
}

func dropPrivileges() error {
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil {
		return fmt.Errorf("clear ambient capabilities: %w", err)
	}
	for c := 0; c <= unix.CAP_LAST_CAP; c++ {
		unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return fmt.Errorf("drop capabilities: %w", err)
	}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("no_new_privs: %w", err)
	}
	return nil
}

func setLimits(w *wire) {
	set := func(res int, v uint64) {
		if v > 0 {
			unix.Setrlimit(res, &unix.Rlimit{Cur: v, Max: v})
		}
	}
	set(unix.RLIMIT_NPROC, w.MaxProcesses)
	set(unix.RLIMIT_FSIZE, w.MaxFileBytes)
	set(unix.RLIMIT_NOFILE, w.MaxOpenFiles)
}

// lookPath finds a program on the sandboxed program's PATH (this process
// has no environment of its own).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	for _, kv := range env {
		if dirs, ok := strings.CutPrefix(kv, "PATH="); ok {
			for _, d := range filepath.SplitList(dirs) {
				p := filepath.Join(d, name)
				if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
					return p, nil
				}
			}
		}
	}
	return "", fmt.Errorf("%s: not found on the sandbox's PATH", name)
}
