package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/memgate/memgate/gate"
)

// The CI output modes of --ci.
const (
	ciAuto   = "auto"   // GitHub Actions when GITHUB_ACTIONS=true, else none
	ciGitHub = "github" // job summary, annotations, step outputs
	ciNone   = "none"
)

// validOutputFlags checks the choice flags before anything runs.
func validOutputFlags(f checkFlags) error {
	switch f.ci {
	case ciAuto, ciGitHub, ciNone:
	default:
		return fmt.Errorf("--ci: %q is not one of auto, github, none", f.ci)
	}
	switch f.progress {
	case "auto", "live", "plain":
	default:
		return fmt.Errorf("--progress: %q is not one of auto, live, plain", f.progress)
	}
	if f.base != "" && (f.junit != "" || f.ci == ciGitHub) {
		return errors.New("--junit and --ci github do not take --base yet: use --json for the comparison")
	}
	if (f.confirm >= 0 || f.baseReport != "") && f.base == "" {
		return errors.New("--confirm and --base-report take --base")
	}
	if f.confirm > 5 {
		return fmt.Errorf("--confirm: %d is more than 5", f.confirm)
	}
	return nil
}

// ciMode resolves --ci auto from the environment the CI sets.
func ciMode(flag string, getenv func(string) string) string {
	if flag == ciAuto {
		if getenv("GITHUB_ACTIONS") == "true" {
			return ciGitHub
		}
		return ciNone
	}
	return flag
}

// writeCIOutputs writes what the CI reads: a JUnit file when asked, and in
// GitHub Actions the job summary, annotations (to w) and step outputs.
func writeCIOutputs(f checkFlags, dir string, rep *gate.Report, profiles map[string][]byte, getenv func(string) string, w io.Writer) error {
	if f.junit != "" {
		if err := writeJUnit(f.junit, rep, filepath.Clean(dir)); err != nil {
			return err
		}
	}
	if ciMode(f.ci, getenv) != ciGitHub {
		return nil
	}
	paths := map[string]string{"junit": f.junit}
	if f.json != "-" {
		paths["report"] = f.json
	}
	if len(rep.Profiles) > 0 {
		paths["profiles"] = f.profiles
	}
	return githubFromEnv(getenv).write(w, rep, profiles, dir, paths)
}
