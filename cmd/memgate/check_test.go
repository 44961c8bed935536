package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testlock"
)

func TestCheckBrokenConfigExits2AndNamesTheLine(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yml")
	os.WriteFile(cfg, []byte("load:\n  rate: -1\n"), 0o644)
	var out, errb bytes.Buffer
	code := runCheck(context.Background(), []string{"--config", cfg, "--json", "-", "../../examples/healthy-json"}, os.Getenv, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d, want 2; stderr: %s", code, errb.String())
	}
	if !strings.Contains(errb.String(), "line 2: load.rate: must be > 0") {
		t.Errorf("stderr %q", errb.String())
	}
	var rep gate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil || rep.Verdict != gate.Error {
		t.Errorf("JSON on stdout: %v %+v", err, rep)
	}
}

func TestCheckBadFlagsExit2(t *testing.T) {
	for _, args := range [][]string{{"--rate", "fast"}, {"--nope"}, {"a", "b"}, {"--duration", "1s", "."}} {
		var out, errb bytes.Buffer
		if code := runCheck(context.Background(), args, os.Getenv, &out, &errb); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
}

func TestParseInterspersed(t *testing.T) {
	var f checkFlags
	fs := newCheckFlags(&f)
	dir, err := parseInterspersed(fs, []string{"./svc", "--rate", "50", "--json", "-"})
	if err != nil || dir != "./svc" || f.rate != 50 || f.json != "-" {
		t.Fatalf("dir=%q rate=%v json=%q err=%v", dir, f.rate, f.json, err)
	}
}

// One real gate through the command line: flags after DIR, JSON on stdout,
// the table on stderr, profiles written, exit status 0.
func TestCheckHealthyServiceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a real gate")
	}
	testlock.Gate(t)
	profiles := t.TempDir()
	var out, errb bytes.Buffer
	code := runCheck(context.Background(), []string{"../../examples/healthy-json", "--warmup", "2s", "--duration", "8s",
		"--rate", "150", "--json", "-", "--profiles", profiles}, os.Getenv, &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, errb.String())
	}
	var rep gate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not the JSON report: %v\n%s", err, out.String())
	}
	if rep.Verdict != gate.Pass || rep.Load.RequestedRate != 150 || rep.Settings.Duration.Std().Seconds() != 8 {
		t.Errorf("report: verdict %s rate %v settings %+v", rep.Verdict, rep.Load.RequestedRate, rep.Settings)
	}
	for _, key := range []string{`"verdict"`, `"reason"`, `"criteria"`, `"load"`, `"samples"`, `"baseline"`, `"attribution"`, `"environment"`, `"timings"`, `"post_gc_heap_bytes"`, `"p99"`} {
		if !bytes.Contains(out.Bytes(), []byte(key)) {
			t.Errorf("JSON lacks %s", key)
		}
	}
	for _, want := range []string{"==> build", "==> measure", "req/s", "CRITERION", "heap_fluctuation", "PASS"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q", want)
		}
	}
	// The window's four, and the runtime's leak profile where it was read.
	want := 4
	if rep.Attribution.ProvenLeaks.Read {
		want = 5
	}
	if len(rep.Profiles) != want {
		t.Fatalf("profiles %v, want %d (proven leaks read: %v)", rep.Profiles, want, rep.Attribution.ProvenLeaks.Read)
	}
	for _, p := range rep.Profiles {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("profile %s: %v", p, err)
		}
	}
}

func TestMigrateCreatesTheSchema(t *testing.T) {
	db := filepath.Join(t.TempDir(), "m.db")
	var errb bytes.Buffer
	if code := runMigrate(context.Background(), []string{"--database-url", "sqlite:" + db}, func(string) string { return "" }, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// Twice is fine.
	if code := runMigrate(context.Background(), nil, func(k string) string {
		if k == "MEMGATE_DATABASE_URL" {
			return "sqlite:" + db
		}
		return ""
	}, &errb); code != 0 {
		t.Fatalf("second migrate: exit %d: %s", code, errb.String())
	}
	if code := runMigrate(context.Background(), []string{"--database-url", "mysql://x"}, func(string) string { return "" }, &errb); code != 1 {
		t.Fatalf("bad URL: exit %d", code)
	}
}

func TestServeConfigErrorsExit2(t *testing.T) {
	for _, env := range []map[string]string{
		{"MEMGATE_GITHUB_APP_ID": "12"},
		{"MEMGATE_GITHUB_APP_KEY_FILE": "/k.pem"},
		{"MEMGATE_WORKERS": "many"},
		{"MEMGATE_JOB_TIMEOUT": "soon"},
		{"MEMGATE_GITHUB_CLIENT_ID": "Iv1.abc"},
		{"MEMGATE_GITHUB_CLIENT_SECRET": "s3cret"},
		{"MEMGATE_MAX_RESCUES": "many"},
		{"MEMGATE_MAX_MEMORY": "lots"},
		{"MEMGATE_MAX_FILE_SIZE": "-3GiB"},
	} {
		var errb bytes.Buffer
		code := runServe(context.Background(), nil, func(k string) string { return env[k] }, &errb)
		if code != 2 || !strings.Contains(errb.String(), "MEMGATE_") {
			t.Errorf("%v: exit %d: %s", env, code, errb.String())
		}
	}
}
