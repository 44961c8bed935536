package pipeline

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/loadgen"
)

// RepoFiles reads a repository's files by slash-separated paths relative
// to Dir, refusing any larger than limit, any path that leaves the
// repository, symbolic links, and anything but regular files.
type RepoFiles interface {
	ReadFile(ctx context.Context, name string, limit int64) ([]byte, error)
}

// ErrConfig marks a config the gate cannot use (a targets file that is
// missing, hostile or too big): found before the build, so it costs nothing.
var ErrConfig = errors.New("config")

// readTargets gathers the load's targets before anything is built: the
// config's own and the targets file's, whose file and bodies are read
// through opts.Files only, so a pull request cannot make memgate read, say,
// /etc/shadow and send it to its service.
func (r *run) readTargets(ctx context.Context) error {
	cfg := r.opts.Config.Load
	for _, t := range cfg.Targets {
		h := http.Header{}
		for k, v := range t.Headers {
			h.Set(k, v)
		}
		lt := loadgen.Target{Method: t.Method, URL: t.Path, Header: h, Body: []byte(t.Body), FillBody: true, Leave: leaveOf(t.LeaveEarly)}
		if s := t.Stream; s != nil {
			lt.Stream = &loadgen.Stream{Hold: s.Hold, MaxBytes: int64(s.MaxBytes), MaxEvents: s.MaxEvents, Status: s.Status}
		}
		r.reqs = append(r.reqs, lt)
	}
	if cfg.TargetsFile != "" {
		if err := r.readTargetsFile(ctx); err != nil {
			return err
		}
	}
	// load.leave_early is for every ordinary request without its own.
	for i := range r.reqs {
		if t := &r.reqs[i]; t.Stream == nil && t.Leave.After == 0 {
			t.Leave = leaveOf(cfg.LeaveEarly)
		}
	}
	if held := loadgen.StreamsHeld(cfg.Rate, cfg.Timeout, r.reqs); held > loadgen.MaxStreamsHeld {
		return fmt.Errorf("%w: load.rate: at %g requests/s, streams held for their hold after up to load.timeout (%s) for their headers could be %d in flight at once, more than %d: lower load.rate, the streams' hold or load.timeout",
			ErrConfig, cfg.Rate, cfg.Timeout, held, loadgen.MaxStreamsHeld)
	}
	return nil
}

func leaveOf(l *config.LeaveEarly) loadgen.Leave {
	if l == nil {
		return loadgen.Leave{}
	}
	return loadgen.Leave{After: l.After, Share: l.Share}
}

// readTargetsFile adds the targets file's targets.
func (r *run) readTargetsFile(ctx context.Context) error {
	cfg := r.opts.Config.Load
	if r.opts.Files == nil {
		return fmt.Errorf("%w: load.targets_file %s: no repository to read it from", ErrConfig, cfg.TargetsFile)
	}
	more, err := loadgen.ReadTargetsFile(ctx, r.opts.Files, cfg.TargetsFile)
	if err != nil {
		return fmt.Errorf("%w: load.targets_file: %w", ErrConfig, err)
	}
	r.reqs = append(r.reqs, more...)
	return nil
}

// targetLabel names a target for the report's settings, with its kind:
// "GET /events (stream, held 2s)", "GET /report (50% leave after 50ms)".
func targetLabel(t config.Target, leave *config.LeaveEarly) string {
	label := t.Method + " " + t.Path
	if s := t.Stream; s != nil {
		label += fmt.Sprintf(" (stream, held %s", s.Hold)
		if s.MaxEvents > 0 {
			label += fmt.Sprintf(" or %d events", s.MaxEvents)
		}
		if s.MaxBytes > 0 {
			label += fmt.Sprintf(" or %s", gate.FormatBytes(float64(s.MaxBytes)))
		}
		return label + ")"
	}
	if t.LeaveEarly != nil {
		leave = t.LeaveEarly
	}
	if leave != nil {
		label += fmt.Sprintf(" (%.0f%% leave after %s)", 100*leave.Share, leave.After)
	}
	return label
}
