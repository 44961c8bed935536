package service

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// After the build, memgate itself looks at {{output}} (to read the Go
// version it was built with), outside any sandbox. The build decides what
// is there: a FIFO made memgate's open block forever (no writer will ever
// come: the build's sandbox is gone), hanging the gate and its worker; a
// symlink made memgate open whatever path it names, in memgate's view.
func TestHostileBuildOutputIsNotFollowed(t *testing.T) {
	for name, command := range map[string]string{
		"fifo":    "mkfifo {{output}}",
		"symlink": "ln -s /proc/self/fd/0 {{output}}",
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			done := make(chan error, 1)
			go func() {
				_, err := Build(ctx, BuildSpec{Dir: dir, Command: command, Timeout: 30 * time.Second,
					Output: filepath.Join(dir, "service"), WorkDir: dir, ToolEnv: []string{"PATH=/usr/bin:/bin"}})
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrBuild) {
					t.Fatalf("a build whose output is a %s was accepted: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				// Unblock the stuck open so the test process can end.
				if f, err := os.OpenFile(filepath.Join(dir, "service"), os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
					f.Close()
				}
				t.Fatalf("memgate hung on the build's output (a %s)", name)
			}
		})
	}
}
