package service

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/memgate/memgate/gate/sandbox"
)

// Containment is how a gate runs a repository's code: in sandboxes
// (gate/sandbox), or, only where the caller chose it knowingly,
// uncontained.
type Containment struct {
	// Sandboxed runs every build step and the service in sandboxes.
	Sandboxed bool
	// Root: memgate runs as root, so each gate gets identities of its own
	// outside the sandbox and services get control groups.
	Root bool
	// Caches is where memgate keeps the module cache and the standard
	// library's build cache (see Caches).
	Caches *Caches
	// GoRoot is the toolchain's GOROOT, shown to builds read-only.
	GoRoot string
	// Why, when not sandboxed: what is missing, for the report.
	Why string
}

// Identities are a gate's users outside its sandboxes, when memgate is
// root: the build's and the service's, distinct from each other, from
// other gates (with high probability: drawn at random) and from every
// account on the host. Who downloads modules is Caches' fixed fetch user.
type Identities struct{ Build, Service sandbox.Identity }

// The range memgate's sandbox users are drawn from: well above the
// accounts and subordinate id ranges hosts hand out.
const (
	idBase  = 0x6d670000 // "mg"
	idSlots = 1 << 15
)

// NewIdentities draws a gate's identities; as an unprivileged user memgate
// can map only its own uid, so both are the caller's.
func (c Containment) NewIdentities() Identities {
	if !c.Root {
		return Identities{}
	}
	var b [4]byte
	rand.Read(b[:])
	slot := 1 + int(binary.BigEndian.Uint32(b[:])%(idSlots-1))
	build := idBase + 2*slot
	return Identities{Build: sandbox.IdentityFor(build, build), Service: sandbox.IdentityFor(build+1, build+1)}
}

// fetchIdentity owns the shared module cache: only the go command's
// download step writes it, never a build or a service.
func (c Containment) fetchIdentity() sandbox.Identity {
	if !c.Root {
		return sandbox.Identity{}
	}
	return sandbox.IdentityFor(idBase, idBase)
}

// ServiceSandbox is where a service runs: what it sees and who it is.
type ServiceSandbox struct {
	Identity sandbox.Identity
	// Root is an empty directory the sandbox's tree is made in.
	Root string
	// Binds are shown read-only: the binary's directory, the source view.
	Binds    []sandbox.Bind
	Overlays []sandbox.Overlay
	// HostNetwork keeps the host's network (run.network: host).
	HostNetwork bool
	// Relay, for an unprivileged memgate, is the socket path memgate
	// reaches the service's network through.
	Relay string
}

func (s *ServiceSandbox) command(spec RunSpec, env []string, out io.Writer, g *serviceGroup, deps []sandbox.Companion) (*sandbox.Cmd, error) {
	sp := sandbox.Spec{
		Path: spec.Binary, Args: spec.Args, Env: env, Dir: spec.Dir,
		Root: s.Root, Binds: s.Binds, Overlays: s.Overlays, Files: sandbox.SystemFiles(),
		TmpBytes: spec.Limits.FileSizeBytes, HostNetwork: s.HostNetwork, Relay: s.Relay,
		Identity: s.Identity, MaxProcesses: spec.Limits.rlimitProcesses(g), MaxFileBytes: spec.Limits.FileSizeBytes,
		MaxOpenFiles: 65536, Stdout: out, Stderr: out, Companions: deps,
	}
	if g != nil && g.fd != nil {
		sp.ExtraCgroupFD = int(g.fd.Fd())
	}
	c, err := sandbox.Command(sp)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrContainment, err)
	}
	return c, nil
}

// dialer reaches the service's own network: by entering it (root), or
// through the sandbox's relay (an unprivileged memgate may not enter it).
func (s *ServiceSandbox) dialer(pid int) DialFunc {
	switch {
	case s.HostNetwork:
		return nil
	case s.Relay != "":
		return DialFunc(sandbox.RelayDialer(s.Relay))
	default:
		return netnsDialer(fmt.Sprintf("/proc/%d/ns/net", pid))
	}
}

func (s *ServiceSandbox) describe() string {
	who := "as a user of its own"
	if !s.Identity.Set() {
		who = "as memgate's uid mapped to an unprivileged user"
	}
	net := "no network but its own loopback"
	if s.HostNetwork {
		net = "the host's network (run.network: host)"
	}
	return fmt.Sprintf("sandboxed (%s; own pid, mount and IPC namespaces; sees only the system, its binary and its source, read-only; %s)", who, net)
}

// ErrContainment is wrapped when a gate cannot contain the code it must
// run: it does not run it.
var ErrContainment = fmt.Errorf("cannot contain the repository's code")

// prepareOwned makes dir (fresh, under a directory memgate made) owned by
// the identity, so that a sandbox as that user can write it. Lchown: the
// path is memgate's own and was just made, but never follow a link as root.
func prepareOwned(dir string, id sandbox.Identity) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if !id.Set() {
		return nil
	}
	st, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return os.Lchown(dir, id.UID, id.GID)
}

// Traversable reports whether every directory on the way to dir lets
// others in, so that a root memgate's sandbox users can open it.
func Traversable(dir string) bool {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil || st.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == filepath.Dir(d) {
			return true
		}
	}
}

// sandboxEnv is the environment of a build step inside a sandbox; the
// caller adds the module cache (the tenant's, or the seed's empty one).
func (c Containment) sandboxEnv(toolEnv []string, goCache string) []string {
	keep := map[string]bool{"PATH": true, "LANG": true, "CGO_ENABLED": true, "CC": true, "CXX": true,
		"GOPROXY": true, "GONOPROXY": true, "GOPRIVATE": true, "GONOSUMDB": true, "GONOSUMCHECK": true, "GOSUMDB": true,
		"GOEXPERIMENT": true}
	var env []string
	for _, kv := range toolEnv {
		k, _, _ := strings.Cut(kv, "=")
		if keep[k] {
			env = append(env, kv)
		}
	}
	return append(env, "HOME=/home/sandbox", "TMPDIR=/tmp", "USER=sandbox", "GOTOOLCHAIN=local", "GOENV=off",
		"GOPATH=/home/sandbox/go", "GOCACHE="+goCache, "GOROOT="+c.GoRoot)
}

// Bind and Overlay are the sandbox's, for callers that lay out a service's
// view without importing the sandbox.
type (
	Bind    = sandbox.Bind
	Overlay = sandbox.Overlay
)

// NewContainment finds out whether this host can sandbox builds and
// services (by making one), and prepares the caches under cacheDir. When
// it cannot, the result is not Sandboxed and Why says what is missing; the
// caller decides whether to run uncontained (memgate check, saying so) or
// not at all (memgate serve, unless the operator accepted the risk).
func NewContainment(ctx context.Context, cacheDir string, toolEnv []string) Containment {
	c := Containment{Root: os.Geteuid() == 0}
	out, err := goEnv(ctx, toolEnv, "GOROOT")
	if err != nil {
		c.Why = "go env GOROOT: " + err.Error()
		return c
	}
	c.GoRoot = out
	if err := os.MkdirAll(cacheDir, 0o711); err != nil {
		c.Why = err.Error()
		return c
	}
	probe, err := os.MkdirTemp(cacheDir, "probe-")
	if err != nil {
		c.Why = err.Error()
		return c
	}
	defer os.RemoveAll(probe)
	os.Chmod(probe, 0o755)
	if c.Root {
		os.Chmod(cacheDir, 0o711)
	}
	if err := sandbox.Probe(probe, c.NewIdentities().Service); err != nil {
		c.Why = err.Error()
		return c
	}
	caches, err := OpenCaches(cacheDir, c)
	if err != nil {
		c.Why = err.Error()
		return c
	}
	c.Caches, c.Sandboxed = caches, true
	return c
}

func goEnv(ctx context.Context, toolEnv []string, key string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "env", key)
	cmd.Env = toolEnv
	b, err := cmd.Output()
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

// CopyTree copies the directory src to dst (made), readable by others:
// directories, regular files (keeping their execute bits) and symlinks as
// symlinks (never followed); other kinds and src's .git are left out.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == ".git" && d.IsDir() {
			return filepath.SkipDir
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&os.ModeSymlink != 0:
			to, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(to, target)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			mode := os.FileMode(0o644)
			if info.Mode()&0o111 != 0 {
				mode = 0o755
			}
			return copyRegular(p, target, mode)
		}
		return nil
	})
}

func copyRegular(src, dst string, mode os.FileMode) error {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
