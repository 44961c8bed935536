package main

import (
	"encoding/xml"
	"fmt"
	"os"
	"strings"

	"github.com/memgate/memgate/gate"
)

// JUnit XML as GitLab, Jenkins, Buildkite and CircleCI read it: one test
// suite, one test case per criterion; a failed criterion is a <failure>
// with its numbers, an inconclusive one is <skipped>, a gate that could not
// run is one <error> case.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Skipped  int          `xml:"skipped,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name       string          `xml:"name,attr"`
	Tests      int             `xml:"tests,attr"`
	Failures   int             `xml:"failures,attr"`
	Errors     int             `xml:"errors,attr"`
	Skipped    int             `xml:"skipped,attr"`
	Time       string          `xml:"time,attr"`
	Timestamp  string          `xml:"timestamp,attr,omitempty"`
	Properties []junitProperty `xml:"properties>property"`
	Cases      []junitCase     `xml:"testcase"`
	SystemOut  string          `xml:"system-out,omitempty"`
}

type junitProperty struct {
	Name  string `xml:"name,attr"`
	Value string `xml:"value,attr"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitProblem `xml:"failure"`
	Error     *junitProblem `xml:"error"`
	Skipped   *junitProblem `xml:"skipped"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr,omitempty"`
	Text    string `xml:",chardata"`
}

// junitXML renders a report; suite names the gated directory.
func junitXML(rep *gate.Report, suite string) ([]byte, error) {
	s := junitSuite{Name: "memgate " + suite, Time: seconds(rep.Timings.Total)}
	if !rep.StartedAt.IsZero() {
		s.Timestamp = rep.StartedAt.UTC().Format("2006-01-02T15:04:05")
	}
	s.Properties = []junitProperty{{"verdict", string(rep.Verdict)}, {"reason", rep.Reason}, {"memgate_version", rep.Environment.MemgateVersion}}
	if rep.Settings.Rate > 0 {
		s.Properties = append(s.Properties, junitProperty{"go_version", rep.Environment.GoVersion},
			junitProperty{"rate", fmt.Sprintf("%g", rep.Settings.Rate)}, junitProperty{"warmup", rep.Settings.Warmup.Std().String()},
			junitProperty{"duration", rep.Settings.Duration.Std().String()})
	}
	class := "memgate." + suite
	for _, c := range rep.Criteria {
		tc := junitCase{Name: c.Name, Classname: class, Time: "0"}
		numbers := fmt.Sprintf("%s: %s, limit %s %s", c.Name, gate.FormatValue(c.Value, c.Unit), c.Comparison, gate.FormatValue(c.Limit, c.Unit))
		switch c.Status {
		case gate.StatusFail:
			s.Failures++
			tc.Failure = &junitProblem{Message: numbers, Type: "memgate." + c.Name, Text: c.Detail + attributionText(rep, c.Name)}
		case gate.StatusInconclusive:
			s.Skipped++
			tc.Skipped = &junitProblem{Message: "inconclusive: " + c.Detail}
		}
		s.Cases = append(s.Cases, tc)
	}
	if len(rep.Criteria) == 0 {
		s.Errors++
		text := rep.BuildOutput
		if rep.ServiceOutput != "" {
			text = rep.ServiceOutput
		}
		s.Cases = append(s.Cases, junitCase{Name: "gate", Classname: class, Time: s.Time,
			Error: &junitProblem{Message: rep.Reason, Type: "memgate." + string(rep.Verdict), Text: text}})
	}
	s.Tests = len(s.Cases)
	doc := junitSuites{Name: "memgate", Tests: s.Tests, Failures: s.Failures, Errors: s.Errors, Skipped: s.Skipped,
		Time: s.Time, Suites: []junitSuite{s}}
	out, err := xml.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("junit: %w", err)
	}
	return append([]byte(xml.Header), append(out, '\n')...), nil
}

// attributionText adds where to look to the failure of a growth criterion.
func attributionText(rep *gate.Report, criterion string) string {
	var b strings.Builder
	switch criterion {
	case gate.CritHeapGrowth, gate.CritHeapFluctuation:
		for i, h := range rep.Attribution.Heap {
			if i == 5 {
				break
			}
			if i == 0 {
				b.WriteString("\n\nheap growth by function (end of warm-up to end of window, after GC):")
			}
			fmt.Fprintf(&b, "\n  +%s  %s", gate.FormatBytes(float64(h.DeltaBytes)), h.Function)
			if h.Origin != "" && h.Origin != h.Function {
				fmt.Fprintf(&b, "  (from %s)", h.Origin)
			}
		}
	case gate.CritGoroutineGrowth, gate.CritGoroutineSettle:
		for i, g := range rep.Attribution.Goroutines {
			if i == 3 {
				break
			}
			fmt.Fprintf(&b, "\n\n%+d goroutines waiting in %s:\n  %s", g.Delta, g.Top, strings.Join(head(g.Stack, 12), "\n  "))
		}
	}
	return b.String()
}

func seconds(d gate.Duration) string { return fmt.Sprintf("%.3f", d.Std().Seconds()) }

func writeJUnit(path string, rep *gate.Report, suite string) error {
	data, err := junitXML(rep, suite)
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("--junit: %w", err)
	}
	return nil
}
