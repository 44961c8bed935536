package workspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/internal/testgit"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return testgit.Git(t, dir, args...)
}

func TestCheckoutHeadAndReadBase(t *testing.T) {
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(src, ".memgate.yml"), []byte("load:\n  rate: 50\n"), 0o644)
	git(t, src, "add", "-A")
	git(t, src, "commit", "-q", "-m", "base")
	base := git(t, src, "rev-parse", "HEAD")
	os.WriteFile(filepath.Join(src, ".memgate.yml"), []byte("load:\n  rate: 1\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n"), 0o644)
	git(t, src, "add", "-A")
	git(t, src, "commit", "-q", "-m", "head")
	head := git(t, src, "rev-parse", "HEAD")

	ctx := context.Background()
	const token = "ghs_never_on_disk"
	ws, err := Checkout(ctx, t.TempDir(), "file://"+src, head, []string{base}, token, Options{AllowLocal: true, Env: []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Remove()
	if _, err := os.Stat(filepath.Join(ws.Dir, "main.go")); err != nil {
		t.Fatalf("head not checked out: %v", err)
	}
	cfg, err := ws.ReadFile(ctx, base, ".memgate.yml", 1<<20)
	if err != nil || !strings.Contains(string(cfg), "rate: 50") {
		t.Fatalf("base config %q %v", cfg, err)
	}
	if _, err := ws.ReadFile(ctx, base, "main.go", 1<<20); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	if _, err := ws.ReadFile(ctx, base, ".memgate.yml", 3); err == nil {
		t.Fatal("size limit not applied")
	}
	// The token was only ever in git's environment.
	filepath.Walk(ws.Dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), token) {
				t.Errorf("token written to %s", p)
			}
		}
		return nil
	})
	dir := ws.Dir
	ws.Remove()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("workspace not removed: %v", err)
	}
}

func TestCloneURLs(t *testing.T) {
	for _, tc := range []struct {
		url        string
		allowLocal bool
		ok         bool
	}{
		{"https://github.com/acme/api.git", false, true},
		{"/srv/repos/api", false, false},
		{"/srv/repos/api", true, true},
		{"file:///srv/repos/api", false, false},
		{"http://github.com/acme/api.git", false, false},
		{"https://user:pw@github.com/acme/api.git", false, false},
		{"ssh://git@github.com/acme/api.git", false, false},
		{"ext::sh -c touch% /tmp/pwned", true, false},
	} {
		err := CheckURL(tc.url, tc.allowLocal)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q, %v) = %v", tc.url, tc.allowLocal, err)
		}
	}
	if _, err := Checkout(context.Background(), t.TempDir(), "https://github.com/a/b.git", "not-a-sha", nil, "", Options{}); err == nil {
		t.Error("a bad sha was accepted")
	}
}

// A commit's files are read from git's objects, never from the disk: a
// symbolic link (to /etc/shadow, or to a directory), a submodule, a
// directory and paths leaving the repository are refused, whatever the
// checkout or the machine holds at those paths.
func TestReadFileRefusesWhatIsNotARegularFileOfTheCommit(t *testing.T) {
	src := t.TempDir()
	git(t, src, "init", "-q", "-b", "main")
	os.MkdirAll(filepath.Join(src, "load"), 0o755)
	os.WriteFile(filepath.Join(src, "load", "ok.http"), []byte("GET /\n"), 0o644)
	os.Symlink("/etc/shadow", filepath.Join(src, "shadow.http"))
	os.Symlink("/etc", filepath.Join(src, "etc"))
	os.Symlink("load", filepath.Join(src, "linked"))
	git(t, src, "add", "-A")
	git(t, src, "update-index", "--add", "--cacheinfo", "160000,"+strings.Repeat("1", 40)+",sub")
	git(t, src, "commit", "-q", "-m", "base")
	base := git(t, src, "rev-parse", "HEAD")

	ctx := context.Background()
	ws, err := Checkout(ctx, t.TempDir(), "file://"+src, base, nil, "", Options{AllowLocal: true, Env: []string{"PATH=" + os.Getenv("PATH")}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Remove()
	if b, err := ws.ReadFile(ctx, base, "load/ok.http", 1<<20); err != nil || string(b) != "GET /\n" {
		t.Fatalf("a regular file: %q %v", b, err)
	}
	for _, tc := range []struct {
		path string
		want error
	}{
		{"shadow.http", ErrNotRegular},
		{"etc", ErrNotRegular},
		{"linked", ErrNotRegular},
		{"sub", ErrNotRegular},
		{"load", ErrNotRegular},
		{"etc/shadow", os.ErrNotExist},
		{"etc/passwd", os.ErrNotExist},
		{"linked/ok.http", os.ErrNotExist},
		{"/etc/passwd", os.ErrNotExist},
		{"../../etc/passwd", os.ErrNotExist},
		{"load/../../etc/passwd", os.ErrNotExist},
		{"./load/ok.http", os.ErrNotExist},
		{"", os.ErrNotExist},
	} {
		b, err := ws.ReadFile(ctx, base, tc.path, 1<<20)
		if !errors.Is(err, tc.want) || b != nil {
			t.Errorf("%q: %q, %v; want %v", tc.path, b, err, tc.want)
		}
	}
}
