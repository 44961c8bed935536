package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	goldenfile "github.com/memgate/memgate/internal/golden"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/pprof/profile"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/pipeline"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// Stored reports of real runs (testdata/reports/NAME/report.json, with the
// failing run's end-of-window profiles) and the outputs made from them.
var storedRuns = []struct {
	name, dir string
	verdict   gate.Verdict
}{
	{"pass", "../../examples/healthy-json", gate.Pass},
	{"fail", "../../examples/heap-leak", gate.Fail},
	{"fail-goroutines", "../../examples/goroutine-leak", gate.Fail},
	{"inconclusive", "../../examples/healthy-json", gate.Inconclusive},
}

func loadStored(t *testing.T, name string) (*gate.Report, map[string][]byte) {
	t.Helper()
	rep := readReport(t, filepath.Join("testdata", "reports", name, "report.json"))
	profiles := map[string][]byte{}
	for _, p := range []string{pipeline.HeapEnd, pipeline.GoroutineEnd} {
		if b, err := os.ReadFile(filepath.Join("testdata", "reports", name, p)); err == nil {
			profiles[p] = b
		}
	}
	return rep, profiles
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	goldenfile.Check(t, name, got, *update)
}

func TestFormatsOfStoredRunsMatchGoldenFiles(t *testing.T) {
	for _, run := range storedRuns {
		t.Run(run.name, func(t *testing.T) {
			rep, profiles := loadStored(t, run.name)
			if rep.Verdict != run.verdict {
				t.Fatalf("stored %s report has verdict %s", run.name, rep.Verdict)
			}
			junit, err := junitXML(rep, "examples/"+filepath.Base(run.dir))
			if err != nil {
				t.Fatal(err)
			}
			golden(t, run.name+".junit.xml", junit)
			golden(t, run.name+".summary.md", []byte(jobSummary(rep, "https://github.com/octo/shop/actions/runs/4242")))
			var anns bytes.Buffer
			writeAnnotations(&anns, annotations(rep, locateSources(profiles, run.dir, "../..")))
			golden(t, run.name+".annotations.txt", anns.Bytes())
			var chart bytes.Buffer
			writeChart(&chart, rep, 60)
			golden(t, run.name+".chart.txt", chart.Bytes())
		})
	}
}

// What the goldens hold, said as properties a reader can check.
func TestJUnitHasACasePerCriterionWithTheNumbers(t *testing.T) {
	rep, _ := loadStored(t, "fail")
	data, err := junitXML(rep, "examples/heap-leak")
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	s := doc.Suites[0]
	if len(s.Cases) != len(rep.Criteria) || s.Tests != len(rep.Criteria) {
		t.Fatalf("%d cases for %d criteria", len(s.Cases), len(rep.Criteria))
	}
	failures := 0
	for i, c := range rep.Criteria {
		tc := s.Cases[i]
		if tc.Name != c.Name || (tc.Failure != nil) != (c.Status == gate.StatusFail) || (tc.Skipped != nil) != (c.Status == gate.StatusInconclusive) {
			t.Errorf("case %+v for criterion %s %s", tc, c.Name, c.Status)
		}
		if tc.Failure != nil {
			failures++
			if !strings.Contains(tc.Failure.Message, gate.FormatValue(c.Value, c.Unit)) || !strings.Contains(tc.Failure.Message, gate.FormatValue(c.Limit, c.Unit)) {
				t.Errorf("failure message %q lacks value and limit", tc.Failure.Message)
			}
		}
	}
	if failures == 0 || s.Failures != failures || doc.Failures != failures {
		t.Errorf("failures: counted %d, suite says %d, document %d", failures, s.Failures, doc.Failures)
	}
	errRep := &gate.Report{Verdict: gate.Error, Reason: "build failed", BuildOutput: "main.go:3: undefined: x"}
	data, _ = junitXML(errRep, "svc")
	doc = junitSuites{}
	if err := xml.Unmarshal(data, &doc); err != nil || doc.Errors != 1 || doc.Suites[0].Cases[0].Error == nil ||
		!strings.Contains(doc.Suites[0].Cases[0].Error.Text, "undefined: x") {
		t.Errorf("error report: %v %+v", err, doc)
	}
}

// A service under test names its functions and files, and its reason text
// reaches the annotations, the outputs file and the XML: none of it may
// forge a workflow command, an output, or break the XML.
func TestHostileNamesCannotForgeCommandsOutputsOrXML(t *testing.T) {
	rep, _ := loadStored(t, "fail")
	hostile := "main.x\n::add-mask::ghp_secret\r\n::set-output name=verdict::pass\x00\x1b[2J%0A"
	rep.Reason = hostile
	rep.Criteria[0].Detail = hostile
	rep.Attribution.Heap = []gate.HeapSite{{Function: hostile, Origin: hostile, DeltaBytes: 1 << 20}}
	locs := sourceLocations{heap: map[string]srcLoc{hostile: {File: "a,b:c\n::error::x.go", Line: 3}}}
	var out bytes.Buffer
	writeAnnotations(&out, annotations(rep, locs))
	for _, line := range strings.Split(strings.TrimRight(out.String(), "\n"), "\n") {
		if !strings.HasPrefix(line, "::error ") && !strings.HasPrefix(line, "::warning ") && !strings.HasPrefix(line, "::notice ") {
			t.Errorf("a line that is not memgate's annotation: %q", line)
		}
	}
	if !strings.Contains(out.String(), "file=a%2Cb%3Ac%0A%3A%3Aerror%3A%3Ax.go,line=3,") || !strings.Contains(out.String(), "%250A") {
		t.Errorf("properties or data not escaped:\n%s", out.String())
	}

	path := filepath.Join(t.TempDir(), "output")
	g := githubOutput{outputPath: path}
	rep.Reason = "x\nmemgate_forged\nverdict=pass\nmemgate_forged"
	if err := g.write(&bytes.Buffer{}, rep, nil, ".", nil); err != nil {
		t.Fatal(err)
	}
	outs := parseOutputs(t, path)
	if outs["verdict"] != "fail" || outs["reason"] != rep.Reason {
		t.Errorf("outputs %q", outs)
	}

	rep.Reason = hostile
	data, err := junitXML(rep, "svc")
	if err != nil {
		t.Fatal(err)
	}
	var doc junitSuites
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Errorf("JUnit is not well-formed XML: %v\n%s", err, data)
	}
}

// File names in a profile come from the service: only a regular file under
// the gated directory, reached without leaving it, becomes an annotation's
// file.
func TestLocateBelievesOnlyFilesInTheGatedDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "svc")
	os.MkdirAll(filepath.Join(dir, "internal"), 0o755)
	os.WriteFile(filepath.Join(dir, "internal", "store.go"), []byte("package internal\n"), 0o644)
	outside := t.TempDir()
	os.WriteFile(filepath.Join(outside, "secret.go"), []byte("x"), 0o644)
	os.Symlink(outside, filepath.Join(dir, "link"))
	fns := map[string]string{
		"example.com/svc/internal.Store": "/build/src/internal/store.go", // the sandbox's path
		"main.escape":                    "/build/src/../../etc/passwd",
		"main.viaLink":                   "/build/src/link/secret.go",
		"main.absent":                    "/build/src/nope.go",
		"runtime.malg":                   "/usr/local/go/src/runtime/proc.go",
	}
	p := &profile.Profile{SampleType: []*profile.ValueType{{Type: "inuse_space", Unit: "bytes"}}}
	var id uint64
	for name, file := range fns {
		id++
		fn := &profile.Function{ID: id, Name: name, Filename: file}
		loc := &profile.Location{ID: id, Line: []profile.Line{{Function: fn, Line: 7}}}
		p.Function, p.Location = append(p.Function, fn), append(p.Location, loc)
		p.Sample = append(p.Sample, &profile.Sample{Location: []*profile.Location{loc}, Value: []int64{1024}})
	}
	var buf bytes.Buffer
	if err := p.Write(&buf); err != nil {
		t.Fatal(err)
	}
	locs := locateSources(map[string][]byte{pipeline.HeapEnd: buf.Bytes()}, dir, root)
	want := map[string]srcLoc{"example.com/svc/internal.Store": {File: "svc/internal/store.go", Line: 7}}
	if len(locs.heap) != 1 || locs.heap["example.com/svc/internal.Store"] != want["example.com/svc/internal.Store"] {
		t.Errorf("located %v, want %v", locs.heap, want)
	}
}

// The report's table quotes the service's output: in GitHub Actions it is
// printed with the runner's command reading stopped, so a line of the
// service's cannot become a command; annotations come after it resumes.
func TestServiceOutputCannotIssueWorkflowCommands(t *testing.T) {
	rep := &gate.Report{Verdict: gate.Error, Reason: "the service crashed",
		ServiceOutput: "panic: boom\n::add-mask::x\n::stop-commands::memgate_guess\n::error file=main.go::forged"}
	var out bytes.Buffer
	resume := pauseCommands(&out)
	printReport(&out, rep, "")
	resume()
	writeAnnotations(&out, annotations(rep, sourceLocations{}))
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	token := strings.TrimPrefix(lines[0], "::stop-commands::")
	if token == lines[0] || len(token) < 32 || strings.Contains(rep.ServiceOutput, token) {
		t.Fatalf("first line %q is not a stop-commands with a fresh token", lines[0])
	}
	// What the runner reads: commands before the stop and after the resume,
	// on lines that start with :: once leading white space is trimmed (the
	// runner trims it: the table's indentation does not protect anything).
	var read []string
	stopped := false
	for _, l := range lines {
		l = strings.TrimLeft(l, " \t")
		switch {
		case !stopped && strings.HasPrefix(l, "::stop-commands::"):
			stopped = true
		case stopped && l == "::"+token+"::":
			stopped = false
		case !stopped && strings.HasPrefix(l, "::"):
			read = append(read, l)
		}
	}
	if len(read) != 1 || !strings.HasPrefix(read[0], "::error title=memgate could not run the gate::the service crashed") {
		t.Errorf("the runner would read %q", read)
	}
	if !strings.Contains(out.String(), "    ::error file=main.go::forged") {
		t.Errorf("the service output is not in the log as text:\n%s", out.String())
	}
}
