package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/checks"
)

// githubOutput is what `memgate check` gives a GitHub Actions job: the
// job summary, annotations and step outputs, at the paths the runner sets
// in the environment.
type githubOutput struct {
	summaryPath string // $GITHUB_STEP_SUMMARY
	outputPath  string // $GITHUB_OUTPUT
	runURL      string // this workflow run, where the report artifact is
	root        string // $GITHUB_WORKSPACE: annotations' paths are relative to it
}

func githubFromEnv(getenv func(string) string) githubOutput {
	g := githubOutput{summaryPath: getenv("GITHUB_STEP_SUMMARY"), outputPath: getenv("GITHUB_OUTPUT"), root: getenv("GITHUB_WORKSPACE")}
	if server, repo, id := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID"); server != "" && repo != "" && id != "" {
		g.runURL = fmt.Sprintf("%s/%s/actions/runs/%s", server, repo, id)
	}
	if g.root == "" {
		g.root = "."
	}
	return g
}

// jobSummary is the Markdown a check run gets, and the settings it ran with.
func jobSummary(rep *gate.Report, runURL string) string {
	s := checks.Summary(rep, runURL)
	if rep.Settings.Rate > 0 {
		s += fmt.Sprintf("\n\n<sub>%g requests/s, %s warm-up, %s window · memgate %s · Go %s · GOMAXPROCS %d</sub>",
			rep.Settings.Rate, rep.Settings.Warmup.Std(), rep.Settings.Duration.Std(), rep.Environment.MemgateVersion,
			strings.TrimPrefix(rep.Environment.GoVersion, "go"), rep.Environment.GOMAXPROCS)
	}
	return s + "\n"
}

// write reports to GitHub; annotations go to w (the step's output, where
// the runner reads workflow commands).
func (g githubOutput) write(w io.Writer, rep *gate.Report, profiles map[string][]byte, dir string, paths map[string]string) error {
	writeAnnotations(w, annotations(rep, locateSources(profiles, dir, g.root)))
	var errs []string
	if g.summaryPath != "" {
		if err := appendFile(g.summaryPath, jobSummary(rep, g.runURL)); err != nil {
			errs = append(errs, "job summary: "+err.Error())
		}
	}
	if g.outputPath != "" {
		out := []string{"verdict", string(rep.Verdict), "reason", rep.Reason, "exit-code", fmt.Sprint(rep.Verdict.ExitCode())}
		for _, k := range []string{"report", "junit", "profiles"} {
			if p := paths[k]; p != "" {
				if abs, err := filepath.Abs(p); err == nil {
					p = abs
				}
				out = append(out, k, p)
			}
		}
		if err := appendFile(g.outputPath, stepOutputs(out...)); err != nil {
			errs = append(errs, "step outputs: "+err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("github: %s", strings.Join(errs, "; "))
	}
	return nil
}

// stepOutputs formats name/value pairs for $GITHUB_OUTPUT, each as a
// heredoc with a random delimiter: a reason is text from the service under
// test, and a value that could hold the delimiter could set other outputs.
func stepOutputs(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		delim := randomDelimiter()
		for strings.Contains(kv[i+1], delim) {
			delim = randomDelimiter()
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", kv[i], delim, kv[i+1], delim)
	}
	return b.String()
}

func randomDelimiter() string {
	var buf [16]byte
	rand.Read(buf[:])
	return "memgate_" + hex.EncodeToString(buf[:])
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// pauseCommands stops the runner from reading workflow commands in what
// follows, until the returned func resumes it: the report's table quotes the
// service's output and function names, and a line of theirs that looks like
// a command (::add-mask::, ::error::) must stay text in the log.
func pauseCommands(w io.Writer) (resume func()) {
	token := randomDelimiter()
	fmt.Fprintf(w, "::stop-commands::%s\n", token)
	return func() { fmt.Fprintf(w, "::%s::\n", token) }
}
