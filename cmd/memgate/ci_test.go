package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The wiring, without a gate: a config error still gives each CI what it
// reads, GitHub's outputs follow GITHUB_ACTIONS unless --ci says otherwise,
// and bad choices exit 2 before anything runs.
func TestCheckWritesCIOutputsWhereTheEnvironmentSays(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "bad.yml")
	os.WriteFile(cfg, []byte("load:\n  rate: -1\n"), 0o644)
	env := map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(dir, "out"),
		"GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"), "GITHUB_WORKSPACE": dir}
	getenv := func(k string) string { return env[k] }
	junit := filepath.Join(dir, "junit.xml")
	var out, errb bytes.Buffer
	code := runCheck(context.Background(), []string{"--config", cfg, "--junit", junit, "../../examples/healthy-json"}, getenv, &out, &errb)
	if code != 2 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	outs := parseOutputs(t, env["GITHUB_OUTPUT"])
	if outs["verdict"] != "error" || !strings.Contains(outs["reason"], "load.rate") || outs["exit-code"] != "2" {
		t.Errorf("outputs %q", outs)
	}
	summary, _ := os.ReadFile(env["GITHUB_STEP_SUMMARY"])
	if !strings.HasPrefix(string(summary), "**memgate: ERROR**") {
		t.Errorf("summary %q", summary)
	}
	if !strings.Contains(errb.String(), "::error title=memgate could not run the gate::") {
		t.Errorf("no annotation: %s", errb.String())
	}
	x, _ := os.ReadFile(junit)
	if !strings.Contains(string(x), `<error message="config `) || !strings.Contains(string(x), `line 2: load.rate: must be &gt; 0`) {
		t.Errorf("junit:\n%s", x)
	}

	// --ci none inside GitHub Actions: nothing for GitHub.
	os.Remove(env["GITHUB_STEP_SUMMARY"])
	errb.Reset()
	runCheck(context.Background(), []string{"--ci", "none", "--config", cfg, "../../examples/healthy-json"}, getenv, &out, &errb)
	if _, err := os.Stat(env["GITHUB_STEP_SUMMARY"]); err == nil || strings.Contains(errb.String(), "::error") {
		t.Errorf("--ci none wrote GitHub output: %s", errb.String())
	}
	// Outside GitHub Actions, auto writes nothing for GitHub either.
	env["GITHUB_ACTIONS"] = ""
	errb.Reset()
	runCheck(context.Background(), []string{"--config", cfg, "../../examples/healthy-json"}, getenv, &out, &errb)
	if _, err := os.Stat(env["GITHUB_STEP_SUMMARY"]); err == nil || strings.Contains(errb.String(), "::error") {
		t.Errorf("auto outside GitHub wrote GitHub output: %s", errb.String())
	}

	for _, args := range [][]string{{"--ci", "gitlab"}, {"--progress", "fancy"}} {
		errb.Reset()
		if code := runCheck(context.Background(), args, getenv, &out, &errb); code != 2 || !strings.Contains(errb.String(), args[0]) {
			t.Errorf("%v: exit %d: %s", args, code, errb.String())
		}
	}
}
