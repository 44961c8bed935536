package pipeline

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
)

// The services people run, as a new user configures them from the README
// (each fixture's own .memgate.yml): a go 1.16 module without pprof, a
// module built from vendor/, a GOPATH-era repository without go.mod, and
// one that is a GOPATH itself (its packages under src/).
// Each is a healthy/leaking twin; none imports net/http/pprof, so each is
// read through the reader added to its build (a short gate: the test is
// about building them, the accuracy benchmark about the verdicts at the
// defaults).
func TestServicesOfEveryLayoutAreGated(t *testing.T) {
	for _, tc := range []struct {
		dir  string
		want gate.Verdict
	}{
		{"old-go-healthy", gate.Pass},
		{"old-go-leak", gate.Fail},
		{"vendored-healthy", gate.Pass},
		{"vendored-leak", gate.Fail},
		{"_gopath-healthy", gate.Pass},
		{"_gopath-leak", gate.Fail},
		{"_workspace-leak", gate.Fail},
	} {
		t.Run(tc.dir, func(t *testing.T) {
			dir := examples(tc.dir)
			cfg, err := config.LoadFile(filepath.Join(dir, config.FileName))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Load.Warmup, cfg.Load.Duration, cfg.Load.Cooldown = 2*time.Second, 10*time.Second, 3*time.Second
			res, _ := gateRun(t, context.Background(), dir, cfg)
			r := res.Report
			want(t, r, tc.want)
			if !strings.Contains(r.Environment.Source, "reader") {
				t.Errorf("source %q, want the injected reader", r.Environment.Source)
			}
			if (strings.HasPrefix(tc.dir, "_gopath") || strings.HasPrefix(tc.dir, "_workspace")) && !strings.Contains(r.BuildOutput, "GOPATH mode") {
				t.Errorf("build output does not say GOPATH mode: %q", r.BuildOutput)
			}
			if tc.dir == "_workspace-leak" && !strings.Contains(r.Reason, "(src/tracker/tracker.go:") {
				// Annotations and source links need the file as the
				// repository has it, not as the GOPATH build saw it.
				t.Errorf("reason %q: want the culprit's file as src/tracker/tracker.go", r.Reason)
			}
			if tc.want == gate.Fail {
				culprit, err := os.ReadFile(filepath.Join(dir, "CULPRIT"))
				if err != nil {
					t.Fatal(err)
				}
				if name := strings.TrimSpace(string(culprit)); !strings.Contains(r.Reason, name) {
					logReport(t, r)
					t.Errorf("reason %q does not name the culprit %s", r.Reason, name)
				}
			}
		})
	}
}

// A build.command that drops memgate's GOFLAGS builds a binary without the
// reader: a service without pprof then gets an error that says what to do,
// not a reader that "did not answer" at a port nothing listens on.
func TestCustomBuildWithoutTheReaderSaysWhatToDo(t *testing.T) {
	cfg := quick()
	cfg.Build.Command = "GOFLAGS= go build -o {{output}} ."
	res, _ := gateRun(t, context.Background(), examples("old-go-healthy"), cfg)
	r := res.Report
	want(t, r, gate.Error)
	for _, s := range []string{"keep $GOFLAGS", "pprof.mode: service"} {
		if !strings.Contains(r.Reason, s) {
			t.Errorf("reason %q does not say %q", r.Reason, s)
		}
	}
	if strings.Contains(r.Reason, "did not answer") {
		t.Errorf("reason %q", r.Reason)
	}
}
