// Package workspace checks a commit out of a repository with the git CLI
// into a fresh directory, and reads files of other commits, without ever
// writing a token to disk or passing it on a command line.
package workspace

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/memgate/memgate/gate"
)

// ErrCloneURL is returned for a clone URL memgate will not fetch from.
var ErrCloneURL = errors.New("clone URL not allowed")

var shaRe = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)

// Options say where clones may come from and how git runs.
type Options struct {
	// AllowLocal accepts local paths and file:// URLs (tests, local trials).
	AllowLocal bool
	// Env is git's base environment (PATH, HOME); nothing else is inherited.
	Env     []string
	Timeout time.Duration
}

// Workspace is a checked-out commit in a directory of its own.
type Workspace struct {
	Dir  string
	opts Options
	auth []string // GIT_CONFIG_* variables carrying the token header
}

// CheckURL reports whether a clone URL may be fetched.
func CheckURL(raw string, allowLocal bool) error {
	if strings.HasPrefix(raw, "/") || strings.HasPrefix(raw, "file://") {
		if !allowLocal {
			return fmt.Errorf("%w: %q is local (set MEMGATE_ALLOW_LOCAL_REPOS=true for tests and local trials)", ErrCloneURL, raw)
		}
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrCloneURL, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.User != nil {
		return fmt.Errorf("%w: %q must be an https URL without credentials", ErrCloneURL, raw)
	}
	return nil
}

// Checkout fetches sha (and the extra commits, e.g. the base) from cloneURL
// into a new directory under parent and checks sha out. token, when not
// empty, is sent as an HTTP header through git's environment.
func Checkout(ctx context.Context, parent, cloneURL, sha string, extra []string, token string, opts Options) (*Workspace, error) {
	if err := CheckURL(cloneURL, opts.AllowLocal); err != nil {
		return nil, err
	}
	for _, s := range append([]string{sha}, extra...) {
		if !shaRe.MatchString(s) {
			return nil, fmt.Errorf("workspace: %q is not a full commit sha", s)
		}
	}
	if opts.Timeout == 0 {
		opts.Timeout = 5 * time.Minute
	}
	dir, err := os.MkdirTemp(parent, "memgate-ws-")
	if err != nil {
		return nil, fmt.Errorf("workspace: %w", err)
	}
	ws := &Workspace{Dir: dir, opts: opts}
	if token != "" {
		basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + token))
		ws.auth = []string{"GIT_CONFIG_COUNT=1", "GIT_CONFIG_KEY_0=http.extraHeader", "GIT_CONFIG_VALUE_0=Authorization: Basic " + basic}
	}
	fail := func(err error) (*Workspace, error) {
		ws.Remove()
		return nil, err
	}
	if _, err := ws.git(ctx, "init", "-q", "."); err != nil {
		return fail(err)
	}
	args := append([]string{"fetch", "-q", "--no-tags", "--depth", "1", cloneURL, sha}, extra...)
	if _, err := ws.git(ctx, args...); err != nil {
		return fail(fmt.Errorf("workspace: fetch %s from %s: %w", gate.ShortSHA(sha), cloneURL, err))
	}
	if _, err := ws.git(ctx, "-c", "advice.detachedHead=false", "checkout", "-q", "--detach", sha); err != nil {
		return fail(fmt.Errorf("workspace: checkout %s: %w", gate.ShortSHA(sha), err))
	}
	return ws, nil
}

// ErrNotRegular is a path of a commit that is not a regular file: a
// symbolic link (whose target git would hand out as its content, and which
// a checkout would follow anywhere), a submodule or a directory.
var ErrNotRegular = errors.New("not a regular file")

// ReadFile returns a regular file as it is in another fetched commit,
// straight from git's objects: nothing on disk is opened, so no path of the
// machine can be reached. A file that does not exist there gives
// os.ErrNotExist; a path that is absolute, has "." or ".." elements, or
// passes through a symbolic link does not exist either (git does not
// follow links inside a tree).
func (w *Workspace) ReadFile(ctx context.Context, sha, path string, limit int64) ([]byte, error) {
	if !shaRe.MatchString(sha) {
		return nil, fmt.Errorf("workspace: %q is not a full commit sha", sha)
	}
	where := fmt.Sprintf("%s at %s", path, gate.ShortSHA(sha))
	if !fs.ValidPath(path) || path == "." {
		return nil, fmt.Errorf("%s: not a path inside the repository: %w", where, os.ErrNotExist)
	}
	// ls-tree -l: "<mode> <type> <object> <size>\t<path>\0" for the one
	// entry at path, if there is one.
	out, err := w.git(ctx, "--literal-pathspecs", "ls-tree", "-z", "-l", "--full-tree", sha, "--", path)
	if err != nil {
		return nil, fmt.Errorf("workspace: %s: %w", where, err)
	}
	for _, entry := range strings.Split(string(out), "\x00") {
		meta, name, ok := strings.Cut(entry, "\t")
		f := strings.Fields(meta)
		if !ok || name != path || len(f) != 4 {
			continue
		}
		mode, typ, object, sizeText := f[0], f[1], f[2], f[3]
		switch {
		case mode == "120000":
			return nil, fmt.Errorf("%s: a symbolic link: %w", where, ErrNotRegular)
		case mode == "160000":
			return nil, fmt.Errorf("%s: a submodule: %w", where, ErrNotRegular)
		case typ != "blob" || (mode != "100644" && mode != "100755"):
			return nil, fmt.Errorf("%s: a %s (mode %s): %w", where, typ, mode, ErrNotRegular)
		}
		size, err := strconv.ParseInt(sizeText, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("workspace: %s: size %q", where, sizeText)
		}
		if size > limit {
			return nil, fmt.Errorf("workspace: %s is %d bytes, over the %d limit", where, size, limit)
		}
		return w.git(ctx, "cat-file", "blob", object)
	}
	return nil, fmt.Errorf("%s: %w", where, os.ErrNotExist)
}

// Remove deletes the workspace.
func (w *Workspace) Remove() error { return os.RemoveAll(w.Dir) }

func (w *Workspace) git(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = w.Dir
	cmd.Env = append(append([]string{
		"GIT_TERMINAL_PROMPT=0", "GIT_CONFIG_NOSYSTEM=1", "GIT_ASKPASS=/bin/false",
		"HOME=" + filepath.Join(w.Dir, ".git"), // no user config, no credential helpers
	}, w.opts.Env...), w.auth...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &limitedWriter{w: &stderr, n: 16 << 10}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("git %s: %v: %s", args[0], err, strings.TrimSpace(stderr.String()))
	}
	return stdout.Bytes(), nil
}

type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		if len(p) > room {
			l.w.Write(p[:room])
		} else {
			l.w.Write(p)
		}
	}
	return len(p), nil
}
