package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/testlock"
)

// The action's static rules, checked without running it: every expression
// names a declared input or an earlier step, no `run:` script has an
// expression pasted into it (inputs reach scripts as environment variables,
// so an input cannot become shell code), and the outputs read the check.
func TestActionYAMLIsWellFormed(t *testing.T) {
	meta := loadAction(t, "../../action.yml")
	if meta.Name == "" || meta.Runs.Using != "composite" || len(meta.Runs.Steps) == 0 {
		t.Fatalf("action.yml: name %q using %q, %d steps", meta.Name, meta.Runs.Using, len(meta.Runs.Steps))
	}
	ref := regexp.MustCompile(`(inputs|steps)\.([A-Za-z0-9_-]+)`)
	ids := map[string]bool{}
	check := func(where, s string) {
		for _, m := range exprRE.FindAllStringSubmatch(s, -1) {
			for _, r := range ref.FindAllStringSubmatch(m[1], -1) {
				if r[1] == "inputs" {
					if _, ok := meta.Inputs[r[2]]; !ok {
						t.Errorf("%s: ${{ %s }} names undeclared input %q", where, m[1], r[2])
					}
				} else if !ids[r[2]] && where != "outputs" {
					t.Errorf("%s: ${{ %s }} names step %q before it runs", where, m[1], r[2])
				}
			}
		}
	}
	for i, st := range meta.Runs.Steps {
		where := "step " + strconv.Itoa(i) + " " + st.ID
		if strings.Contains(st.Run, "${{") {
			t.Errorf("%s: an expression inside run: (pass it through env:)", where)
		}
		if st.Run != "" && st.Shell != "bash" {
			t.Errorf("%s: shell %q", where, st.Shell)
		}
		check(where, st.If)
		for _, v := range st.Env {
			check(where, v)
		}
		for _, v := range st.With {
			check(where, v)
		}
		if st.ID != "" {
			ids[st.ID] = true
		}
	}
	for _, name := range []string{"verdict", "reason", "report"} {
		o, ok := meta.Outputs[name]
		if !ok || !strings.Contains(o.Value, "steps.check.outputs."+name) {
			t.Errorf("output %s: %+v", name, o)
		}
		check("outputs", o.Value)
	}
}

// The action, run as a runner runs it, on a healthy and a leaking service:
// the outputs file, the job summary and the annotations on stdout are what
// a workflow and the pull request see.
func TestActionGatesHealthyAndLeakingServices(t *testing.T) {
	if testing.Short() {
		t.Skip("builds memgate and runs two real gates")
	}
	testlock.Gate(t)
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	with := func(dir string) map[string]string {
		return map[string]string{"directory": dir, "rate": "150", "warmup": "2s", "duration": "10s"}
	}

	leak := runAction(t, repo, repo, with("examples/heap-leak"))
	if !leak.failed || leak.exitCode != 1 {
		t.Errorf("leaking service: failed=%v exit %d, want the step to fail with 1", leak.failed, leak.exitCode)
	}
	rep := readReport(t, leak.outputs["report"])
	if leak.outputs["verdict"] != "fail" || rep.Verdict != gate.Fail || leak.outputs["reason"] != rep.Reason || leak.outputs["exit-code"] != "1" {
		t.Fatalf("outputs %v; report verdict %s reason %q", leak.outputs, rep.Verdict, rep.Reason)
	}
	if want := jobSummary(rep, "https://github.com/octo/shop/actions/runs/4242"); leak.summary != want {
		t.Errorf("job summary is not the check run's Markdown:\n%s\nwant:\n%s", leak.summary, want)
	}
	for _, want := range []string{"**memgate: FAIL**", "| heap growth | ❌ fail |", "### Heap growth by function"} {
		if !strings.Contains(leak.summary, want) {
			t.Errorf("summary lacks %q", want)
		}
	}
	// The annotation on the leaking line: remember's body in main.go (a
	// warning when the growth rests on few heap-profile samples).
	m := regexp.MustCompile(`(?m)^::(?:error|warning) file=examples/heap-leak/main\.go,line=(\d+),title=memgate%3A heap grows here[^:]*::.*orderStore\)\.remember`).FindStringSubmatch(leak.stdout)
	if m == nil {
		t.Fatalf("no annotation on examples/heap-leak/main.go in stdout:\n%s", leak.stdout)
	}
	line, _ := strconv.Atoi(m[1])
	src, _ := os.ReadFile(filepath.Join(repo, "examples/heap-leak/main.go"))
	lines := strings.Split(string(src), "\n")
	start := indexOf(lines, "func (s *orderStore) remember(n int) {")
	if start < 0 || line <= start+1 || line > start+1+indexOf(lines[start:], "}") {
		t.Errorf("annotation at line %d, not inside remember (starts line %d): %q", line, start+1, lines[line-1])
	}
	t.Logf("annotation: %s (%q)", m[0][:min(len(m[0]), 140)], strings.TrimSpace(lines[line-1]))
	if !regexp.MustCompile(`(?m)^::error title=memgate%3A fail::`).MatchString(leak.stdout) {
		t.Errorf("no verdict annotation:\n%s", leak.stdout)
	}
	up := leak.uses["actions/upload-artifact@v4"]
	if up == nil || up["name"] != "memgate-report" {
		t.Fatalf("artifact upload did not run after the failed check: %v", leak.uses)
	}
	for _, f := range []string{"report.json", "junit.xml", "profiles/heap-end.pb.gz", "profiles/goroutine-end.pb.gz"} {
		if st, err := os.Stat(filepath.Join(up["path"], f)); err != nil || st.Size() == 0 {
			t.Errorf("artifact %s: %v", f, err)
		}
	}
	if c := leak.uses["actions/cache@v4"]; c == nil || !strings.HasPrefix(c["key"], "memgate-Linux-X64-go") || c["path"] == "" {
		t.Errorf("cache step: %v", c)
	}

	ok := runAction(t, repo, repo, with("examples/healthy-json"))
	if ok.failed || ok.outputs["verdict"] != "pass" || ok.outputs["exit-code"] != "0" {
		t.Fatalf("healthy service: failed=%v outputs %v\n%s", ok.failed, ok.outputs, lastLines(ok.stderr, 40))
	}
	if !strings.HasPrefix(ok.summary, "**memgate: PASS**") || !strings.Contains(ok.summary, "| heap growth | ✅ pass |") {
		t.Errorf("healthy summary:\n%s", ok.summary)
	}
	if strings.Contains(ok.stdout, "::error") || !strings.Contains(ok.stdout, "::notice title=memgate%3A pass::") {
		t.Errorf("healthy annotations:\n%s", ok.stdout)
	}
}

func readReport(t *testing.T, path string) *gate.Report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("report output %q: %v", path, err)
	}
	var rep gate.Report
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatal(err)
	}
	return &rep
}

func indexOf(lines []string, s string) int {
	for i, l := range lines {
		if strings.TrimRight(l, " \t") == s {
			return i
		}
	}
	return -1
}
