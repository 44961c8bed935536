package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
)

// The host's system directories a program needs, read-only: binaries,
// libraries, the Go toolchain. Nothing under /home, /root, /run, /var or
// /srv, where secrets and other workspaces live.
var systemDirs = []string{"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"}

// From /etc only what name resolution, TLS and the C toolchain read; the
// sandbox's own passwd and group come from Files (see SystemFiles).
var etcEntries = []string{
	"/etc/hosts", "/etc/nsswitch.conf", "/etc/resolv.conf", "/etc/host.conf", "/etc/gai.conf",
	"/etc/protocols", "/etc/services", "/etc/localtime", "/etc/mime.types",
	"/etc/ssl", "/etc/ca-certificates", "/etc/pki", "/etc/alternatives",
	"/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d",
}

// systemBinds lists the host's system paths to show inside; those that are
// symlinks on this host (merged /usr: /bin -> usr/bin) are made as symlinks.
func systemBinds() ([]Bind, map[string]string) {
	var binds []Bind
	links := map[string]string{}
	add := func(p string) {
		st, err := os.Lstat(p)
		if err != nil {
			return
		}
		if st.Mode()&os.ModeSymlink != 0 {
			if to, err := os.Readlink(p); err == nil {
				links[p] = to
			}
			return
		}
		binds = append(binds, Bind{Source: p, Optional: true})
	}
	for _, d := range systemDirs {
		add(d)
	}
	for _, e := range etcEntries {
		add(e)
	}
	return binds, links
}

// GOROOTs outside /usr (a toolchain in /opt or a home) must be bound too:
// callers that run the go command pass theirs through ToolchainBinds.
func ToolchainBinds(goroot string) []Bind {
	if goroot == "" || under(goroot, "/usr") {
		return nil
	}
	return []Bind{{Source: goroot}}
}

func under(p, dir string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !filepath.IsAbs(rel) && (len(rel) < 3 || rel[:3] != "../")
}

// SystemFiles are the sandbox's /etc/passwd and /etc/group: its user is
// "sandbox" with a home of its own, and nothing of the host's accounts shows.
func SystemFiles() map[string]string {
	return map[string]string{
		"/etc/passwd": fmt.Sprintf("root:x:0:0:root:/root:/bin/sh\nsandbox:x:%d:%d:memgate sandbox:/home/sandbox:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n", InsideUID, InsideGID),
		"/etc/group":  fmt.Sprintf("root:x:0:\nsandbox:x:%d:\nnogroup:x:65534:\n", InsideGID),
	}
}
