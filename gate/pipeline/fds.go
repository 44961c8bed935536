package pipeline

import (
	"context"
	"fmt"

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
