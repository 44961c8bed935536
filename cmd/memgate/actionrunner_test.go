package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// This file runs action.yml's steps the way a GitHub runner does: each
// `run:` step as `bash --noprofile --norc -eo pipefail FILE` in the
// workspace, with the GITHUB_* and RUNNER_* variables and fresh
// GITHUB_OUTPUT files, `${{ }}` expressions evaluated for the contexts a
// composite action sees, `if:` conditions honoured, step outputs carried
// into later steps and into the action's outputs. `uses:` steps are
// recorded with their inputs resolved (actions/cache reports a miss).
// An expression the runner here cannot evaluate fails the test: the
// action must stay within what is simulated.

type actionMeta struct {
	Name   string `yaml:"name"`
	Inputs map[string]struct {
		Default  string `yaml:"default"`
		Required bool   `yaml:"required"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Value string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string       `yaml:"using"`
		Steps []actionStep `yaml:"steps"`
	} `yaml:"runs"`
}

type actionStep struct {
	ID    string            `yaml:"id"`
	If    string            `yaml:"if"`
	Shell string            `yaml:"shell"`
	Run   string            `yaml:"run"`
	Uses  string            `yaml:"uses"`
	Env   map[string]string `yaml:"env"`
	With  map[string]string `yaml:"with"`
}

type actionRun struct {
	stdout   string // every step's stdout, as the runner reads workflow commands
	stderr   string
	outputs  map[string]string // the action's outputs
	failed   bool              // the action failed
	exitCode int               // of the failing step
	uses     map[string]map[string]string
	summary  string
}

type actionRunner struct {
	t         *testing.T
	meta      actionMeta
	inputs    map[string]string
	env       map[string]string // GITHUB_*, RUNNER_*
	steps     map[string]map[string]string
	failed    bool
	workspace string
	temp      string
}

func loadAction(t *testing.T, path string) actionMeta {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m actionMeta
	if err := yaml.Unmarshal(data, &m); err != nil {
		t.Fatalf("action.yml: %v", err)
	}
	return m
}

// runAction runs the composite action at actionDir with the given inputs
// in workspace.
func runAction(t *testing.T, actionDir, workspace string, with map[string]string) actionRun {
	t.Helper()
	meta := loadAction(t, filepath.Join(actionDir, "action.yml"))
	if meta.Runs.Using != "composite" {
		t.Fatalf("runs.using %q", meta.Runs.Using)
	}
	tmp := t.TempDir()
	r := &actionRunner{t: t, meta: meta, inputs: map[string]string{}, steps: map[string]map[string]string{}, workspace: workspace,
		temp: filepath.Join(tmp, "runner-temp")}
	for k, in := range meta.Inputs {
		r.inputs[k] = in.Default
	}
	for k, v := range with {
		if _, ok := meta.Inputs[k]; !ok {
			t.Fatalf("input %q is not declared in action.yml", k)
		}
		r.inputs[k] = v
	}
	os.MkdirAll(r.temp, 0o755)
	summary := filepath.Join(tmp, "step_summary")
	os.WriteFile(summary, nil, 0o644)
	r.env = map[string]string{
		"CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": workspace, "GITHUB_ACTION_PATH": actionDir,
		"GITHUB_STEP_SUMMARY": summary, "GITHUB_ENV": filepath.Join(tmp, "env"), "GITHUB_PATH": filepath.Join(tmp, "path"),
		"GITHUB_STATE": filepath.Join(tmp, "state"), "GITHUB_REPOSITORY": "octo/shop", "GITHUB_SERVER_URL": "https://github.com",
		"GITHUB_RUN_ID": "4242", "GITHUB_SHA": "0123456789abcdef0123456789abcdef01234567", "GITHUB_EVENT_NAME": "pull_request",
		"RUNNER_TEMP": r.temp, "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
	}
	var out actionRun
	var stdout, stderr bytes.Buffer
	out.uses = map[string]map[string]string{}
	for i, st := range meta.Runs.Steps {
		cond := st.If
		if cond == "" {
			cond = "success()"
		}
		if r.eval(strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(cond), "${{"), "}}")) != "true" {
			continue
		}
		name := st.ID
		if name == "" {
			name = fmt.Sprintf("step%d", i)
		}
		if st.Uses != "" {
			resolved := map[string]string{}
			for k, v := range st.With {
				resolved[k] = r.subst(v)
			}
			out.uses[st.Uses] = resolved
			r.steps[name] = map[string]string{}
			if strings.HasPrefix(st.Uses, "actions/cache@") {
				r.steps[name]["cache-hit"] = "false"
			}
			continue
		}
		if st.Shell != "bash" {
			t.Fatalf("step %s: shell %q; composite run steps must say shell: bash", name, st.Shell)
		}
		code := r.runStep(name, st, &stdout, &stderr)
		if code != 0 && !r.failed {
			r.failed, out.exitCode = true, code
		}
	}
	out.stdout, out.stderr, out.failed = stdout.String(), stderr.String(), r.failed
	out.outputs = map[string]string{}
	for k, o := range meta.Outputs {
		out.outputs[k] = r.subst(o.Value)
	}
	b, _ := os.ReadFile(summary)
	out.summary = string(b)
	return out
}

func (r *actionRunner) runStep(name string, st actionStep, stdout, stderr *bytes.Buffer) int {
	dir := r.t.TempDir()
	script := filepath.Join(dir, "script.sh")
	os.WriteFile(script, []byte(st.Run), 0o644)
	outputs := filepath.Join(dir, "output")
	os.WriteFile(outputs, nil, 0o644)
	cmd := exec.Command("bash", "--noprofile", "--norc", "-eo", "pipefail", script)
	cmd.Dir = r.workspace
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GITHUB_") && !strings.HasPrefix(kv, "RUNNER_") && !strings.HasPrefix(kv, "INPUT_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, "GITHUB_OUTPUT="+outputs)
	for k, v := range st.Env {
		cmd.Env = append(cmd.Env, k+"="+r.subst(v))
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	stdout.Write(so.Bytes())
	stderr.Write(se.Bytes())
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		r.t.Logf("step %s exited %d\nstdout:\n%s\nstderr:\n%s", name, code, so.String(), lastLines(se.String(), 30))
	}
	r.steps[name] = parseOutputs(r.t, outputs)
	return code
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// parseOutputs reads a GITHUB_OUTPUT file: name=value lines and
// name<<DELIMITER heredocs.
func parseOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if k, delim, ok := strings.Cut(line, "<<"); ok && !strings.Contains(k, "=") {
			var val []string
			closed := false
			for sc.Scan() {
				if sc.Text() == delim {
					closed = true
					break
				}
				val = append(val, sc.Text())
			}
			if !closed {
				t.Fatalf("GITHUB_OUTPUT: heredoc %s not closed by %s", k, delim)
			}
			out[k] = strings.Join(val, "\n")
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("GITHUB_OUTPUT: malformed line %q", line)
		}
		out[k] = v
	}
	return out
}

var exprRE = regexp.MustCompile(`\$\{\{\s*(.*?)\s*\}\}`)

func (r *actionRunner) subst(s string) string {
	return exprRE.ReplaceAllStringFunc(s, func(m string) string {
		return r.eval(exprRE.FindStringSubmatch(m)[1])
	})
}

// eval handles the expressions action.yml may use: context references,
// string literals, ==, !=, &&, always(), success(), failure().
func (r *actionRunner) eval(e string) string {
	e = strings.TrimSpace(e)
	if parts := strings.Split(e, "&&"); len(parts) > 1 {
		for _, p := range parts {
			if !truthy(r.eval(p)) {
				return "false"
			}
		}
		return "true"
	}
	for _, op := range []string{"!=", "=="} {
		if a, b, ok := strings.Cut(e, op); ok {
			eq := strings.EqualFold(r.eval(a), r.eval(b))
			return fmt.Sprint(eq == (op == "=="))
		}
	}
	switch e {
	case "always()":
		return "true"
	case "success()":
		return fmt.Sprint(!r.failed)
	case "failure()":
		return fmt.Sprint(r.failed)
	}
	if strings.HasPrefix(e, "'") && strings.HasSuffix(e, "'") && len(e) >= 2 {
		return strings.ReplaceAll(e[1:len(e)-1], "''", "'")
	}
	parts := strings.Split(e, ".")
	switch {
	case len(parts) == 2 && parts[0] == "inputs":
		v, ok := r.inputs[parts[1]]
		if !ok {
			r.t.Fatalf("expression %q: no such input", e)
		}
		return v
	case len(parts) == 4 && parts[0] == "steps" && parts[2] == "outputs":
		return r.steps[parts[1]][parts[3]]
	}
	switch e {
	case "github.action_path":
		return r.env["GITHUB_ACTION_PATH"]
	case "github.action_ref":
		return "" // a local action (uses: ./) has none
	case "github.workspace":
		return r.workspace
	case "runner.temp":
		return r.temp
	case "runner.os":
		return r.env["RUNNER_OS"]
	case "runner.arch":
		return r.env["RUNNER_ARCH"]
	}
	r.t.Fatalf("expression %q: not one the simulated runner knows", e)
	return ""
}

func truthy(s string) bool { return s != "" && s != "false" && s != "0" }
