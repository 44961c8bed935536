package pipeline

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/service"
)

// fdSource adds the service's open descriptors, counted from outside in
// /proc, to every reading of its source: that needs no pprof, and still
// works when the service has no descriptor left to answer with. Where
// /proc cannot be read, the reading keeps what the source counted itself
// (the injected reader counts its own /proc/self/fd).
type fdSource struct {
	Source
	count func() (service.OpenFiles, error)
}

func (s fdSource) Read(ctx context.Context, forceGC bool) (gate.Reading, error) {
	r, err := s.Source.Read(ctx, forceGC)
	if err != nil {
		return r, err
	}
	if n, err := s.count(); err == nil {
		r.FDs, r.Sockets, r.FDLimit = n.FDs, n.Sockets, n.Limit
	}
	return r, nil
}

// countFDs wraps the run's source with the outside count where the
// service's /proc can be read; fdsFrom says where the counts came from.
func (r *run) countFDs(src Source) Source {
	if r.proc == nil {
		r.fdErr = fmt.Errorf("%w: no service process", service.ErrNoFDs)
		return src
	}
	if _, r.fdErr = r.proc.OpenFiles(); r.fdErr != nil {
		return src
	}
	return fdSource{Source: src, count: r.proc.OpenFiles}
}

// fdsFrom says in the environment how descriptors were counted, or why
// they were not, once the idle reading shows whether the source counts.
func (r *run) fdsFrom(idle gate.Reading) string {
	switch {
	case r.fdErr == nil:
		return "counted from outside, in /proc/<pid>/fd of the service's process"
	case idle.FDs > 0:
		return fmt.Sprintf("counted by the injected reader in /proc/self/fd (not from outside: %v)", r.fdErr)
	}
	return fmt.Sprintf("not counted (%v), and the service's pprof does not show them: no fd criteria", r.fdErr)
}

// settleFDs fills the descriptor counts of a settle from its readings.
func settleFDs(s *gate.Settle, idle, start gate.Reading, samples []gate.Sample) {
	s.IdleFDs, s.WindowStartFDs, s.FDLimit = idle.FDs, start.FDs, max(idle.FDLimit, start.FDLimit)
	for _, smp := range samples {
		if smp.Phase != gate.PhaseIdle && smp.FDs > s.PeakFDs {
			s.PeakFDs = smp.FDs
		}
	}
}

// fdTargets is what the service's descriptors are open on, where they can
// be read from outside; nil otherwise.
func (r *run) fdTargets() map[string]int {
	if r.proc == nil || r.fdErr != nil {
		return nil
	}
	t, err := r.proc.OpenFileTargets()
	if err != nil {
		r.log.Info("open file targets", "err", err)
		return nil
	}
	return t
}

// openFileGrowth is the targets whose descriptors grew from start to end,
// most first, at most top; the names are the service's, clipped.
func openFileGrowth(start, end map[string]int, top int) []gate.OpenFileSite {
	if start == nil || end == nil {
		return nil
	}
	var out []gate.OpenFileSite
	for target, n := range end {
		if d := n - start[target]; d > 0 {
			out = append(out, gate.OpenFileSite{Target: clipTarget(target), Delta: d, Count: n})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Delta != out[j].Delta {
			return out[i].Delta > out[j].Delta
		}
		return out[i].Target < out[j].Target
	})
	if len(out) > top {
		out = out[:top]
	}
	return out
}

// clipTarget keeps a target printable and short: a path is the service's
// to choose.
func clipTarget(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 200 {
		s = strings.ToValidUTF8(s[:200], "") + "…"
	}
	return s
}
