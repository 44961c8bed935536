package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// baseCheckout is the base commit of `memgate check --base`, written to a
// scratch directory of memgate's own.
type baseCheckout struct {
	Dir     string // the service's directory within the base's tree
	SHA     string // the base commit
	HeadSHA string // the checkout's HEAD ("" in a repository without commits)
	scratch string
}

// Close removes the scratch copy.
func (b *baseCheckout) Close() error {
	if b.scratch == "" {
		return nil
	}
	return os.RemoveAll(b.scratch)
}

// checkoutBase writes the tree of ref to a scratch directory and finds the
// service's directory in it (dir's place in its repository). The user's
// repository is only read: the tree goes through an index file of the
// scratch directory's own (no worktree is registered, no ref, index or
// config of the repository is written), so a checkout in the middle of
// its work is left as it was.
// With write false only the commits are resolved (a stored report of
// the base is reused).
func checkoutBase(ctx context.Context, dir, ref string, write bool, env []string) (*baseCheckout, error) {
	git := func(extra []string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "git", args...)
		cmd.Dir = dir
		cmd.Env = append(append([]string{}, env...), extra...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("git %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return strings.TrimSpace(string(out)), nil
	}
	top, err := git(nil, "rev-parse", "--show-toplevel")
	if err != nil {
		return nil, fmt.Errorf("--base needs DIR in a git checkout: %w", err)
	}
	prefix, err := git(nil, "rev-parse", "--show-prefix")
	if err != nil {
		return nil, err
	}
	sha, err := git(nil, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
	if err != nil || sha == "" {
		return nil, fmt.Errorf("--base %s: not a commit in %s", ref, top)
	}
	head, _ := git(nil, "rev-parse", "--verify", "--quiet", "HEAD")
	if !write {
		return &baseCheckout{SHA: sha, HeadSHA: head}, nil
	}
	scratch, err := os.MkdirTemp("", "memgate-base-")
	if err != nil {
		return nil, fmt.Errorf("--base: %w", err)
	}
	b := &baseCheckout{SHA: sha, HeadSHA: head, scratch: scratch}
	tree := filepath.Join(scratch, "tree")
	index := []string{"GIT_INDEX_FILE=" + filepath.Join(scratch, "index")}
	if _, err := git(index, "-C", top, "read-tree", sha); err != nil {
		b.Close()
		return nil, fmt.Errorf("--base %s: %w", ref, err)
	}
	if _, err := git(index, "-C", top, "checkout-index", "--all", "--prefix="+tree+"/"); err != nil {
		b.Close()
		return nil, fmt.Errorf("--base %s: %w", ref, err)
	}
	b.Dir = filepath.Join(tree, filepath.FromSlash(prefix))
	if st, err := os.Stat(b.Dir); err != nil || !st.IsDir() {
		b.Close()
		return nil, fmt.Errorf("--base %s: the service's directory %s is not in that commit", ref, prefix)
	}
	return b, nil
}
