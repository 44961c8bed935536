// Package sandbox runs code from a pull request where it cannot reach
// memgate: in new user, mount, pid, IPC, UTS and (unless asked otherwise)
// network namespaces, as an identity that is not memgate's, seeing only the
// directories it is given, a private /tmp and /dev, its own /proc, and no
// capabilities.
//
// The same mechanism serves both deployments. As root, the sandbox's user
// is a fresh uid of its own outside too (IdentityForGate), so that even a
// process that escaped its namespaces would own nothing of memgate's. As an
// unprivileged user (the container image, a developer's machine), the kernel
// lets a user map only its own uid: outside, the sandbox is memgate's uid,
// and what keeps memgate's files, environment and processes out of reach is
// that none of them is visible inside (mount and pid namespaces).
//
// The namespaces are made by the kernel at clone; the mounts are made by the
// first process inside, which is this same binary started again under the
// name InitName (see init.go): a package init hook catches it before main,
// so every binary that imports this package, test binaries included, can
// start sandboxes without a helper program or a shell.
package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// InitName is argv[0] of a sandbox's first process.
const InitName = "memgate-sandbox-init"

// ErrUnavailable is wrapped when this host cannot make a sandbox.
var ErrUnavailable = errors.New("sandbox unavailable")

// Inside are the ids the sandboxed code runs as, in its own namespace.
const (
	InsideUID = 1000
	InsideGID = 1000
)

// Bind makes Source visible at Target inside (same path when Target is "").
type Bind struct {
	Source   string `json:"-"`
	Target   string `json:"target"`
	Writable bool   `json:"writable"`
	// Optional binds are skipped when Source does not exist.
	Optional bool `json:"-"`
}

// Overlay shows Lowers (first on top) at Target; writes go to Upper (and
// Work, on the same filesystem), never to a lower. Without Upper the view
// is read-only.
type Overlay struct {
	Target string   `json:"target"`
	Lowers []string `json:"-"`
	Upper  string   `json:"-"`
	Work   string   `json:"-"`
}

// Spec is one sandboxed command.
type Spec struct {
	Path string   // the program, as seen inside
	Args []string // without argv[0]
	Env  []string // the whole environment: nothing is inherited
	Dir  string   // working directory, as seen inside

	// Root is an empty directory memgate owns, where the sandbox's root
	// is assembled (a tmpfs is mounted on it).
	Root     string
	Binds    []Bind
	Overlays []Overlay
	// Files are small files written into the sandbox's root (read-only),
	// e.g. /etc/passwd naming the sandbox's user.
	Files map[string]string
	// TmpBytes caps the private /tmp (a tmpfs); 0 means 64 MiB.
	TmpBytes uint64

	// HostNetwork keeps the host's network (the module download step);
	// otherwise the sandbox has a network of its own with only loopback.
	HostNetwork bool
	// Relay, when set, is a path where the sandbox's first process listens
	// for memgate's connections into its network (see Dialer): an
	// unprivileged memgate cannot enter a namespace its child user
	// namespace owns.
	Relay string

	// Identity is who the sandbox is outside; the zero value is the caller.
	Identity Identity

	// Limits, applied inside before the code starts (0: none).
	MaxProcesses  uint64 // RLIMIT_NPROC
	MaxFileBytes  uint64 // RLIMIT_FSIZE
	MaxOpenFiles  uint64 // RLIMIT_NOFILE
	Stdout        io.Writer
	Stderr        io.Writer
	ExtraCgroupFD int // >0: born in this cgroup v2 group (CLONE_INTO_CGROUP)

	// Companions start before the program, which waits for StartMain
	// (see companions.go); CompanionTmpBytes sizes their CompanionsDir.
	Companions        []Companion
	CompanionTmpBytes uint64
}

// Identity is the uid and gid a sandbox has outside its user namespace.
type Identity struct {
	UID, GID int
	set      bool
}

// IdentityFor is a fixed outside identity (memgate must be root to map it).
func IdentityFor(uid, gid int) Identity { return Identity{UID: uid, GID: gid, set: true} }

// Set reports whether the identity is other than the caller's.
func (i Identity) Set() bool { return i.set }

func (i Identity) outside() (uid, gid int) {
	if i.set {
		return i.UID, i.GID
	}
	return os.Geteuid(), os.Getegid()
}

// wire is what the parent sends the first process inside, on fd 3.
type wire struct {
	Path, Dir    string
	Args, Env    []string
	Root         string
	Binds        []wireBind
	Overlays     []wireOverlay
	Files        map[string]string
	Symlinks     map[string]string
	TmpBytes     uint64
	OwnNetwork   bool
	Relay        string
	MaxProcesses uint64
	MaxFileBytes uint64
	MaxOpenFiles uint64
	InsideUID    int
	InsideGID    int

	Companions        []wireCompanion
	CompanionTmpBytes uint64
}

type wireBind struct {
	Source, Target string
	Writable       bool
}

type wireOverlay struct {
	Target      string
	Lowers      []string
	Upper, Work string // "": a read-only view
}

// Cmd is a started-able sandbox: Start it, Wait for it, as an exec.Cmd.
type Cmd struct {
	*exec.Cmd
	spec *os.File // write end: the wire is sent after Start
	wire wire

	ctlMu      sync.Mutex // memgate's control lines after the wire
	events     chan Event // the companions' events
	parentEnds []*os.File // the sandbox's ends of the pipes, closed here once started
	readers    []func()   // copy the pipes' ends, once started
}

// Command prepares a sandbox for spec. Nothing runs until Start.
func Command(spec Spec) (*Cmd, error) {
	c := &Cmd{}
	w := wire{Path: spec.Path, Dir: spec.Dir, Args: spec.Args, Env: spec.Env, Root: spec.Root,
		Files: spec.Files, TmpBytes: spec.TmpBytes, OwnNetwork: !spec.HostNetwork, Relay: spec.Relay,
		MaxProcesses: spec.MaxProcesses, MaxFileBytes: spec.MaxFileBytes, MaxOpenFiles: spec.MaxOpenFiles,
		InsideUID: InsideUID, InsideGID: InsideGID}
	if w.TmpBytes == 0 {
		w.TmpBytes = 64 << 20
	}
	// Sources are resolved here, where memgate's own paths mean what memgate
	// thinks, and opened inside by the sandbox's user with no symlink
	// followed at all: a path a sandbox could write (a workspace, an
	// output) that became a symlink is refused, not followed, and a bind
	// never shows more than the sandbox's user could open itself.
	binds, links := systemBinds()
	w.Symlinks = links
	for _, b := range append(binds, spec.Binds...) {
		src, err := filepath.EvalSymlinks(b.Source)
		if err != nil {
			if b.Optional && errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("%w: %s: %v", ErrUnavailable, b.Source, err)
		}
		target := b.Target
		if target == "" {
			target = b.Source
		}
		w.Binds = append(w.Binds, wireBind{Source: src, Target: target, Writable: b.Writable})
	}
	for _, o := range spec.Overlays {
		wo := wireOverlay{Target: o.Target, Upper: o.Upper, Work: o.Work}
		for _, l := range o.Lowers {
			src, err := filepath.EvalSymlinks(l)
			if err != nil {
				return nil, fmt.Errorf("%w: overlay %s: %v", ErrUnavailable, l, err)
			}
			wo.Lowers = append(wo.Lowers, src)
		}
		w.Overlays = append(w.Overlays, wo)
	}
	for _, comp := range spec.Companions {
		w.Companions = append(w.Companions, wireCompanion{Name: comp.Name, Path: comp.Path, Dir: comp.Dir,
			Args: comp.Args, Env: comp.Env, Before: comp.Before, Check: comp.Check})
	}
	w.CompanionTmpBytes = spec.CompanionTmpBytes
	if w.CompanionTmpBytes == 0 {
		w.CompanionTmpBytes = 256 << 20
	}
	c.wire = w

	r, wr, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	c.spec = wr
	// Through the magic link: the sandbox's user need not be able to walk
	// to where this binary lives (a test binary's directory is private).
	cmd := exec.Command("/proc/self/exe")
	// The program's path after the name says in a process listing what
	// this sandbox runs (a build, or which service).
	cmd.Args = []string{InitName, spec.Path}
	cmd.Env = []string{} // nothing of memgate's environment, not even for the init
	cmd.Dir = "/"
	cmd.Stdout, cmd.Stderr = spec.Stdout, spec.Stderr
	// fd 3: the wire.
	cmd.ExtraFiles = []*os.File{r}
	c.Cmd = cmd
	if err := c.companionPipes(spec); err != nil {
		r.Close()
		wr.Close()
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	uid, gid := spec.Identity.outside()
	if uid == 0 || gid == 0 {
		// Root outside would own every root-owned file the sandbox can
		// name; a root memgate must give each sandbox a user of its own.
		return nil, fmt.Errorf("%w: refusing to map a sandbox's user to root: give it an identity of its own", ErrUnavailable)
	}
	flags := uintptr(syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS | syscall.CLONE_NEWPID |
		syscall.CLONE_NEWIPC | syscall.CLONE_NEWUTS)
	if !spec.HostNetwork {
		flags |= syscall.CLONE_NEWNET
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  flags,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: InsideUID, HostID: uid, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: InsideGID, HostID: gid, Size: 1}},
		Credential:  &syscall.Credential{Uid: InsideUID, Gid: InsideGID, NoSetGroups: true},
		// The first process needs these in its own user namespace only, to
		// assemble the mounts and bring up loopback; it drops them all
		// before the sandboxed code starts.
		// (overlayfs keeps the mounter's credentials for its copy-ups:
		// all of them, which bind only inside the user namespace.)
		AmbientCaps: allCaps(),
		// A session of its own, without a controlling terminal: in
		// memgate's session the code could open memgate's terminal
		// (/dev/tty), read what is typed there and push input into it
		// (TIOCSTI) for the shell to run after memgate. setsid also makes
		// it a process group leader: kill(-pid) reaches the whole group.
		Setsid:    true,
		Pdeathsig: syscall.SIGKILL,
	}
	if spec.ExtraCgroupFD > 0 {
		cmd.SysProcAttr.UseCgroupFD = true
		cmd.SysProcAttr.CgroupFD = spec.ExtraCgroupFD
	}
	c.Cmd = cmd
	return c, nil
}

// allCaps lists every capability this kernel knows.
func allCaps() []uintptr {
	last := 40
	if b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap"); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			last = n
		}
	}
	caps := make([]uintptr, 0, last+1)
	for c := 0; c <= last; c++ {
		caps = append(caps, uintptr(c))
	}
	return caps
}

// Start starts the sandbox's first process; before the sandboxed code runs
// it waits for Release (so that the caller can place it in control groups
// first, with nothing forked yet).
func (c *Cmd) Start() error {
	err := c.Cmd.Start()
	c.ExtraFiles[0].Close()
	for _, f := range c.parentEnds {
		f.Close()
	}
	if err != nil {
		c.spec.Close()
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	for _, read := range c.readers {
		go read()
	}
	return nil
}

// Release sends the sandbox its spec: it assembles itself and runs the code.
// With companions the spec stays open for the control lines (Check,
// StartMain) and closes with the sandbox's end.
func (c *Cmd) Release() error {
	if len(c.wire.Companions) == 0 {
		defer c.spec.Close()
	}
	c.ctlMu.Lock()
	defer c.ctlMu.Unlock()
	if err := json.NewEncoder(c.spec).Encode(c.wire); err != nil {
		return fmt.Errorf("sandbox: send spec: %w", err)
	}
	return nil
}

// Run starts, releases and waits.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	if err := c.Release(); err != nil {
		c.Process.Kill()
		c.Wait()
		return err
	}
	return c.Wait()
}

// Probe makes a sandbox and runs /bin/true in it, as memgate's gates
// would (as root, under an identity of its own): nil when this host can
// contain code, else what stopped it.
func Probe(root string, id Identity) error {
	var out limitedBuffer
	c, err := Command(Spec{Path: "/bin/true", Env: []string{"PATH=/usr/bin:/bin"}, Dir: "/", Root: root,
		Files: SystemFiles(), Identity: id, Stdout: &out, Stderr: &out})
	if err != nil {
		return err
	}
	if err := c.Run(); err != nil {
		return fmt.Errorf("%w: %v: %s", ErrUnavailable, err, out.String())
	}
	return nil
}

type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if len(l.b) < 4096 {
		l.b = append(l.b, p[:min(len(p), 4096-len(l.b))]...)
	}
	return len(p), nil
}

func (l *limitedBuffer) String() string { return string(l.b) }
