package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// PrepareRoot makes dir, the parent of every workspace and scratch
// directory ("" for the system's temporary directory), ready at start-up:
// created when missing, owned by memgate's user and closed to others
// (0700; 0711 with traverse, so that the unprivileged user gates run as
// when memgate is root can reach its own directory below it without
// listing the others), and writable. It returns the absolute path. A
// directory that cannot be made ready is an error saying why: memgate
// should not accept webhooks for gates that can only fail.
func PrepareRoot(dir string, traverse bool) (string, error) {
	if dir == "" {
		dir = os.TempDir()
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("workdir %s: %w", dir, err)
	}
	mode := os.FileMode(0o700)
	if traverse {
		mode = 0o711
	}
	st, err := os.Stat(abs)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.MkdirAll(abs, mode); err != nil {
			return "", fmt.Errorf("workdir %s does not exist and cannot be created: %w", abs, err)
		}
		if err := os.Chmod(abs, mode); err != nil { // MkdirAll's mode went through the umask
			return "", fmt.Errorf("workdir %s: %w", abs, err)
		}
	case err != nil:
		return "", fmt.Errorf("workdir %s: %w", abs, err)
	case !st.IsDir():
		return "", fmt.Errorf("workdir %s is not a directory", abs)
	}
	if err := CheckRoot(abs); err != nil {
		return "", err
	}
	return abs, nil
}

// CheckRoot reports whether workspaces can still be made under dir, by
// making (and removing) one.
func CheckRoot(dir string) error {
	probe, err := os.MkdirTemp(dir, ".memgate-probe-")
	if err != nil {
		return fmt.Errorf("workdir %s is not usable: %w", dir, err)
	}
	if err := os.Remove(probe); err != nil {
		return fmt.Errorf("workdir %s is not usable: %w", dir, err)
	}
	return nil
}
