package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/memgate/memgate/internal/testuser"
)

// The container deployment, as far as this machine can run it: there is
// no container engine here, so the image's start-up logic runs directly —
// its ENTRYPOINT's memgate, as an unprivileged user like the image's, with
// the image's environment (its paths moved under a temporary root) — and
// the compose file is read for what the worker is given. The worker must
// be able to sandbox what it runs, without privileges or capabilities.
func TestImageStartUpContains(t *testing.T) {
	if testing.Short() {
		t.Skip("builds memgate")
	}
	image := readDockerfile(t, filepath.Join("..", "..", "Dockerfile"))
	if image.user == "" || image.user == "root" || image.user == "0" {
		t.Fatalf("the image runs memgate as %q: it must be an unprivileged user", image.user)
	}
	if !strings.Contains(image.entrypoint, "memgate") {
		t.Fatalf("entrypoint %q does not run memgate", image.entrypoint)
	}
	worker := readComposeWorker(t, filepath.Join("..", "..", "docker-compose.yml"))
	for _, opt := range []string{"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"} {
		if !contains(worker.SecurityOpt, opt) {
			t.Errorf("the worker lacks security_opt %s, which its sandbox needs", opt)
		}
	}
	if worker.Privileged || len(worker.CapAdd) > 0 {
		t.Errorf("the worker is privileged (%v) or adds capabilities (%v): the sandbox needs neither", worker.Privileged, worker.CapAdd)
	}
	if !strings.Contains(strings.Join(worker.Healthcheck.Test, " "), "doctor") {
		t.Errorf("the worker's health check does not ask memgate doctor: %v", worker.Healthcheck.Test)
	}

	uid, gid := testuser.Ensure(t)
	root, err := os.MkdirTemp("", "memgate-image-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	os.Chmod(root, 0o755)
	bin := testuser.Executable(t, buildMemgate(t))
	env := []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range image.env {
		if strings.HasPrefix(v, "/") {
			v = filepath.Join(root, v)
			os.MkdirAll(v, 0o755)
			os.Chown(v, uid, gid)
		}
		env = append(env, k+"="+v)
	}
	cmd := exec.Command(bin, "doctor")
	cmd.Env = env
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	t.Logf("no container engine here: the image's start-up (%s doctor, as %s, with its environment) ran directly:\n%s", image.entrypoint, testuser.Name, out)
	if err != nil || !strings.Contains(string(out), "sandbox OK") {
		t.Fatalf("the image's memgate cannot sandbox: %v", err)
	}
}

type dockerfile struct {
	user, entrypoint string
	env              map[string]string
}

// readDockerfile reads the last stage's USER, ENTRYPOINT and ENV.
func readDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var d dockerfile
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "FROM":
			d = dockerfile{}
		case "USER":
			d.user = f[1]
		case "ENTRYPOINT":
			d.entrypoint = strings.Join(f[1:], " ")
		case "ENV":
			if d.env == nil {
				d.env = map[string]string{}
			}
			for _, kv := range f[1:] {
				if k, v, ok := strings.Cut(kv, "="); ok {
					d.env[k] = v
				}
			}
		}
	}
	return d
}

type composeService struct {
	SecurityOpt []string `yaml:"security_opt"`
	Privileged  bool     `yaml:"privileged"`
	CapAdd      []string `yaml:"cap_add"`
	Healthcheck struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

func readComposeWorker(t *testing.T, path string) composeService {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	w, ok := f.Services["worker"]
	if !ok {
		t.Fatal("no worker service in docker-compose.yml")
	}
	return w
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
