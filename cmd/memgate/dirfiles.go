package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"syscall"
)

// errNotRegular is a repository path that is not a regular file.
var errNotRegular = errors.New("not a regular file")

// dirFiles are the files of the directory `memgate check` gates, read
// through an os.Root: nothing outside it can be opened, whatever the path
// or the symbolic links on the way. Symbolic links are refused altogether,
// even inside the directory, as git refuses them for the server (a commit's
// link is not followed); so are devices, FIFOs and sockets (/dev/zero would
// never end, a FIFO would block).
type dirFiles struct {
	root *os.Root
}

func openDirFiles(dir string) (*dirFiles, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &dirFiles{root: root}, nil
}

func (d *dirFiles) Close() error { return d.root.Close() }

func (d *dirFiles) ReadFile(_ context.Context, name string, limit int64) ([]byte, error) {
	if !fs.ValidPath(name) || name == "." {
		return nil, fmt.Errorf("%s: not a path inside the directory: %w", name, fs.ErrNotExist)
	}
	parts := strings.Split(name, "/")
	for i := range parts {
		p := path.Join(parts[:i+1]...)
		st, err := d.root.Lstat(p)
		if err != nil {
			return nil, err
		}
		if st.Mode()&fs.ModeSymlink != 0 && p == name {
			return nil, fmt.Errorf("%s: a symbolic link: %w", name, errNotRegular)
		}
		if st.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s: %s on the way is a symbolic link: %w", name, p, errNotRegular)
		}
	}
	// O_NONBLOCK: a FIFO put there after the check must not block the open.
	f, err := d.root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %s: %w", name, kindOf(st.Mode()), errNotRegular)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s is %d bytes, over the %d limit", name, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s grew past the %d limit while read", name, limit)
	}
	return data, nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file (" + m.Type().String() + ")"
}
