package runner

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/internal/gatetest"
	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/internal/testlock"
)

// The server reads the targets file and its bodies from the base commit's
// git objects, like the config: a pull request's head cannot supply them,
// and a base commit's own file cannot reach outside the repository, through
// a link, a submodule or a path. Each case is a real repository whose base
// names load/targets.http in its .memgate.yml; the run, executed by the
// runner from its clone, ends before the build with an error naming the
// file (and line), and nothing of the secret is in the stored run.
func TestServerTargetsFileComesFromTheBaseAndStaysInIt(t *testing.T) {
	// A regression would run real gates; hold the lock as they would.
	testlock.Gate(t)
	outside := t.TempDir()
	const secret = "S3CRET-of-the-worker"
	secretFile := filepath.Join(outside, "secret")
	os.WriteFile(secretFile, []byte(secret), 0o644)
	hostile := "POST http://127.0.0.1:{{port}}/\nContent-Type: text/plain\n@" + secretFile + "\n"

	for _, tc := range []struct {
		name       string
		base, head map[string]string
		want       string
	}{
		{"hostile file only in the head", nil, map[string]string{"load/targets.http": hostile},
			"load/targets.http at %base: file does not exist"},
		// The base's version is what is read: its body is missing, the
		// head's version (a harmless one here) is never looked at.
		{"head replaces the base's", map[string]string{"load/targets.http": "POST /\n@missing.json\n"},
			map[string]string{"load/targets.http": "GET /\n", "load/missing.json": "{}"}, "line 2: body \"@missing.json\": load/missing.json at %base: file does not exist"},
		{"body only in the head", map[string]string{"load/targets.http": "POST /\n@body.json\n"},
			map[string]string{"load/body.json": testgit.Link + secretFile}, "line 2: body \"@body.json\": load/body.json at %base: file does not exist"},
		{"linked targets file", map[string]string{"load/targets.http": testgit.Link + secretFile}, nil,
			"load/targets.http at %base: a symbolic link"},
		{"linked body", map[string]string{"load/targets.http": "POST /\n@body\n", "load/body": testgit.Link + "/etc/shadow"}, nil,
			"line 2: body \"@body\": load/body at %base: a symbolic link"},
		{"linked directory", map[string]string{"load/targets.http": "POST /\n@etc/shadow\n", "load/etc": testgit.Link + "/etc"}, nil,
			"load/etc/shadow at %base: file does not exist"},
		{"etc shadow", map[string]string{"load/targets.http": "POST /\n@/etc/shadow\n"}, nil, "line 2: body \"@/etc/shadow\": body files are read from the repository"},
		{"dot dot", map[string]string{"load/targets.http": "GET /\n\nPOST /\n@../../x\n"}, nil, "line 4: body \"@../../x\""},
		{"proc environ", map[string]string{"load/targets.http": "POST /\n@/proc/self/environ\n"}, nil, "line 2: body \"@/proc/self/environ\""},
		{"dev zero", map[string]string{"load/targets.http": "POST /\n@/dev/zero\n"}, nil, "line 2: body \"@/dev/zero\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			repo := testgit.Init(t)
			files := map[string]string{"go.mod": testgit.GoMod, "main.go": testgit.EchoService,
				".memgate.yml": "load:\n  warmup: 1s\n  duration: 5s\n  targets_file: load/targets.http\n"}
			for k, v := range tc.base {
				files[k] = v
			}
			base := testgit.Commit(t, repo, "base", files)
			head := testgit.Commit(t, repo, "head", tc.head)

			st := migratedStore(t)
			id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/shop", PR: 1, HeadSHA: head, BaseSHA: base,
				CloneURL: repo, Trigger: "test", JobID: 5})
			if err != nil {
				t.Fatal(err)
			}
			rep := &recordingReporter{}
			r := New(st, rep, Options{AllowLocalRepos: true, GitEnv: []string{"PATH=" + os.Getenv("PATH")},
				WorkDir: t.TempDir(), ServiceEnv: []string{"PATH=" + os.Getenv("PATH")}})
			if err := r.Execute(ctx, id, 5, true); err != nil {
				t.Fatalf("execute: %v", err)
			}
			run, err := st.RunWithReport(ctx, id)
			if err != nil || run.Report == nil {
				t.Fatalf("run %+v: %v", run, err)
			}
			t.Logf("%s: %s", run.Verdict, run.Reason)
			stored, _ := json.Marshal(run)
			if strings.Contains(string(stored), secret) || strings.Contains(string(stored), "root:") {
				t.Fatalf("the secret is in the stored run: %s", stored)
			}
			if !containsCall(rep.calls, "completed") {
				t.Errorf("the check was not completed: %v", rep.calls)
			}
			want := strings.ReplaceAll(tc.want, "%base", gate.ShortSHA(base))
			if run.Verdict != gate.Error || !strings.Contains(run.Reason, "load.targets_file: load/targets.http") ||
				!strings.Contains(run.Reason, want) {
				t.Errorf("verdict %s, reason %q; want an error with %q", run.Verdict, run.Reason, want)
			}
			if run.Report.Timings.Build != 0 {
				t.Errorf("the service was built (%s)", run.Report.Timings.Build)
			}
		})
	}
}

func containsCall(calls []string, want string) bool {
	for _, c := range calls {
		if c == want {
			return true
		}
	}
	return false
}

// The other side, in a real gate: the base commit's targets file and body
// are sent, not the head's versions of them. The echo service prints the
// first body it gets.
func TestServerSendsTheBaseCommitsBody(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real gate")
	}
	testlock.Gate(t)
	ctx := context.Background()
	repo := testgit.Init(t)
	base := testgit.Commit(t, repo, "base", map[string]string{"go.mod": testgit.GoMod, "main.go": testgit.EchoService,
		".memgate.yml":      "load:\n  warmup: 1s\n  duration: 5s\n  cooldown: 2s\n  targets_file: load/targets.http\n",
		"load/targets.http": "POST /orders\nContent-Type: application/json\n@order.json\n",
		"load/order.json":   `{"from":"the-base"}`})
	head := testgit.Commit(t, repo, "head", map[string]string{
		"load/targets.http": "POST /orders\n@order.json\n\nPOST /orders\n@head.json\n",
		"load/order.json":   `{"from":"the-head"}`, "load/head.json": `{"from":"the-head-only"}`})
	st := migratedStore(t)
	id, err := st.CreateRun(ctx, nil, gate.Run{Repository: "acme/shop", PR: 1, HeadSHA: head, BaseSHA: base,
		CloneURL: repo, Trigger: "test", JobID: 5})
	if err != nil {
		t.Fatal(err)
	}
	r := New(st, &recordingReporter{}, Options{AllowLocalRepos: true, GitEnv: []string{"PATH=" + os.Getenv("PATH")},
		WorkDir: gatetest.WorkDir(t), ToolEnv: service.ToolchainEnv(os.Getenv), ServiceEnv: []string{"PATH=" + os.Getenv("PATH")},
		Containment: gatetest.Containment(t)})
	if err := r.Execute(ctx, id, 5, true); err != nil {
		t.Fatal(err)
	}
	run, err := st.RunWithReport(ctx, id)
	if err != nil || run.Report == nil {
		t.Fatalf("%+v %v", run, err)
	}
	out := run.Report.ServiceOutput
	t.Logf("%s: %s; service said %q", run.Verdict, run.Reason, out)
	if run.Verdict == gate.Error || !strings.Contains(out, `{\"from\":\"the-base\"}`) || strings.Contains(out, "the-head") {
		t.Fatalf("verdict %s (%s), service output %q", run.Verdict, run.Reason, out)
	}
}
