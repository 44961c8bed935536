package config

import (
	"strings"
	"testing"
	"time"
)

func TestStreamsAndLeavingEarly(t *testing.T) {
	cfg, err := Parse([]byte(`
load:
  leave_early: {after: 100ms}
  targets:
    - method: GET
      path: /events
      stream: {max_events: 5}
    - method: GET
      path: /feed
      stream: {hold: 500ms, max_bytes: 64KiB, status: 206}
    - method: GET
      path: /report
      leave_early: {after: 50ms, share: 0.25}
`))
	if err != nil {
		t.Fatal(err)
	}
	ts := cfg.Load.Targets
	if s := ts[0].Stream; s == nil || s.Hold != DefaultStreamHold || s.MaxEvents != 5 || s.Status != 0 {
		t.Errorf("stream defaults: %+v", s)
	}
	if s := ts[1].Stream; s.Hold != 500*time.Millisecond || s.MaxBytes != 64<<10 || s.Status != 206 {
		t.Errorf("stream: %+v", s)
	}
	if l := cfg.Load.LeaveEarly; l == nil || l.After != 100*time.Millisecond || l.Share != 1 {
		t.Errorf("load.leave_early: %+v", l)
	}
	if l := ts[2].LeaveEarly; l.After != 50*time.Millisecond || l.Share != 0.25 {
		t.Errorf("target leave_early: %+v", l)
	}
}

func TestStreamAndLeavingEarlyErrorsNameTheKey(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"load:\n  targets:\n    - {method: GET, path: /e, stream: {hold: 2m}}\n", "line 3: load.targets.0.stream.hold: must be at most load.duration"},
		{"load:\n  targets:\n    - {method: GET, path: /e, stream: {hold: -1s}}\n", "load.targets.0.stream.hold: must be > 0"},
		{"load:\n  targets:\n    - {method: GET, path: /e, stream: {status: 1000}}\n", "load.targets.0.stream.status: 1000 is not an HTTP status"},
		{"load:\n  targets:\n    - {method: GET, path: /e, stream: {max_events: -2}}\n", "load.targets.0.stream.max_events: must be >= 0"},
		{"load:\n  targets:\n    - {method: GET, path: /e, stream: {}, leave_early: {after: 1s}}\n", "load.targets.0.leave_early: a stream is left at its hold"},
		{"load:\n  leave_early: {after: 6s}\n", "load.leave_early.after: must be shorter than load.timeout (5s)"},
		{"load:\n  leave_early: {share: 0.5}\n", "load.leave_early.after: must be > 0"},
		{"load:\n  leave_early: {after: 1s, share: 2}\n", "load.leave_early.share: must be in (0, 1], not 2"},
		{"load:\n  targets:\n    - {method: GET, path: /e, stream: {hold_for: 1s}}\n", "hold_for"},
	} {
		_, err := Parse([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err %v, want %q", c.yaml, err, c.want)
		}
	}
}
