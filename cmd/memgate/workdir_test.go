package main

import (
	"bytes"
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A MEMGATE_WORKDIR that does not exist is created (closed to others) at
// start-up; one that vanishes later makes /readyz fail; one that cannot be
// made refuses the start and says why.
func TestServeWorkdirIsReadyOrRefused(t *testing.T) {
	gh := newFakeGitHub(t)
	key := appKey(t)
	env := func(workdir string) func(string) string {
		vars := map[string]string{"MEMGATE_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "m.db"),
			"MEMGATE_WEBHOOK_SECRET": testSecret, "MEMGATE_GITHUB_API_URL": gh.srv.URL + "/", "MEMGATE_GITHUB_APP_ID": "7",
			"MEMGATE_GITHUB_APP_KEY_FILE": key, "MEMGATE_WORKDIR": workdir, "MEMGATE_ADDR": freeAddr(t), "PATH": os.Getenv("PATH")}
		return func(k string) string { return vars[k] }
	}

	t.Run("missing", func(t *testing.T) {
		workdir := filepath.Join(t.TempDir(), "not", "yet")
		getenv := env(workdir)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var stderr bytes.Buffer
		go func() { done <- runServe(ctx, nil, getenv, lockedWriter{mu: &sync.Mutex{}, w: &stderr}) }()
		defer func() { cancel(); <-done }()
		base := "http://" + getenv("MEMGATE_ADDR")
		status, body := readyz(t, base, done)
		if status != http.StatusOK {
			t.Fatalf("readyz %d %s", status, body)
		}
		st, err := os.Stat(workdir)
		if err != nil || !st.IsDir() {
			t.Fatalf("workdir not created: %v", err)
		}
		want := os.FileMode(0o700)
		if os.Geteuid() == 0 {
			want = 0o711 // nobody traverses to its own directory, lists nothing
		}
		if st.Mode().Perm() != want {
			t.Errorf("workdir mode %v, want %v", st.Mode().Perm(), want)
		}
		os.RemoveAll(filepath.Dir(workdir))
		status, body = readyz(t, base, done)
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "workdir") {
			t.Fatalf("readyz with the workdir gone: %d %s", status, body)
		}
	})

	t.Run("impossible", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "a-file")
		os.WriteFile(file, nil, 0o600)
		for _, workdir := range []string{file, filepath.Join(file, "below")} {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			var stderr bytes.Buffer
			code := runServe(ctx, nil, env(workdir), lockedWriter{mu: &sync.Mutex{}, w: &stderr})
			cancel()
			if code == 0 || !strings.Contains(stderr.String(), "MEMGATE_WORKDIR") || !strings.Contains(stderr.String(), workdir) {
				t.Fatalf("workdir %s: exit %d, stderr:\n%s", workdir, code, stderr.String())
			}
		}
	})
}

// readyz waits for the server to answer /readyz, and returns its answer.
func readyz(t *testing.T, base string, done <-chan int) (int, string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case code := <-done:
			t.Fatalf("memgate serve exited %d", code)
		default:
		}
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			var b bytes.Buffer
			b.ReadFrom(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, b.String()
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("memgate serve never answered")
	return 0, ""
}
