package pipeline

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/memgate/memgate/gate"
)

// Source reads a running service's numbers and profiles. The service's own
// pprof and memgate's injected reader are the two kinds.
type Source interface {
	Detect(ctx context.Context) error
	Read(ctx context.Context, forceGC bool) (gate.Reading, error)
	Profile(ctx context.Context, name string, forceGC bool) ([]byte, error)
	Describe() string
}

// serialSource lets one request at a time reach the service's profiler. A
// forced-GC reading taken while a profile is being written counts the
// profile writer's buffers as live heap (seen: +1.3 MiB on a 1 MiB heap),
// so readings and profile captures must not overlap.
type serialSource struct {
	mu sync.Mutex
	Source
}

func (s *serialSource) Read(ctx context.Context, forceGC bool) (gate.Reading, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Source.Read(ctx, forceGC)
}

func (s *serialSource) Profile(ctx context.Context, name string, forceGC bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.Source.Profile(ctx, name, forceGC)
}

// sampler reads the service once an interval while the load runs, and the
// post-GC heap at each checkpoint.
type sampler struct {
	src        Source
	interval   time.Duration
	checkpoint time.Duration
	loadStart  time.Time
	progress   Progress

	phase    atomic.Value // gate.Phase
	requests atomic.Uint64
	rate     atomic.Uint64 // float64 bits are overkill: whole requests/s

	mu       sync.Mutex
	samples  []gate.Sample
	errs     int
	lastErr  error
	oversize error // the first reading the service made too big; sampling stops
}

func (s *sampler) setPhase(p gate.Phase) { s.phase.Store(p) }

func (s *sampler) currentPhase() gate.Phase {
	p, _ := s.phase.Load().(gate.Phase)
	return p
}

// add records a sample taken outside the loop (idle, window start, end).
func (s *sampler) add(smp gate.Sample) {
	s.mu.Lock()
	s.samples = append(s.samples, smp)
	s.mu.Unlock()
}

// run samples until ctx ends.
func (s *sampler) run(ctx context.Context) {
	tick := time.NewTicker(s.interval)
	defer tick.Stop()
	lastCheckpoint := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			force := now.Sub(lastCheckpoint) >= s.checkpoint-s.interval/2
			if force {
				lastCheckpoint = now
			}
			smp, err := s.take(ctx, force)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				s.mu.Lock()
				s.errs++
				s.lastErr = err
				stop := errors.Is(err, gate.ErrTooLarge) && s.oversize == nil
				if stop {
					s.oversize = err
				}
				s.mu.Unlock()
				if stop {
					return
				}
				continue
			}
			s.add(smp)
			if s.progress != nil {
				s.progress.Sample(smp)
			}
		}
	}
}

// take reads the service; with force it also reads the heap after a GC.
func (s *sampler) take(ctx context.Context, force bool) (gate.Sample, error) {
	at := time.Now()
	r, err := s.src.Read(ctx, false)
	if err != nil {
		return gate.Sample{}, err
	}
	smp := gate.Sample{
		Time:        at,
		Offset:      at.Sub(s.loadStart).Seconds(),
		Phase:       s.currentPhase(),
		HeapInuse:   r.HeapInuse,
		HeapLive:    r.HeapLive,
		Goroutines:  r.Goroutines,
		GCCycles:    r.GCCycles,
		Requests:    s.requests.Load(),
		AchievedRPS: float64(s.rate.Load()),
		FDs:         r.FDs,
		Sockets:     r.Sockets,
	}
	if force {
		post, err := s.src.Read(ctx, true)
		if err != nil {
			return gate.Sample{}, err
		}
		smp.PostGCHeap = post.HeapInuse
		smp.PostGCObjects = post.HeapAlloc
		if smp.PostGCObjects == 0 {
			smp.PostGCObjects = post.HeapLive
		}
		smp.GCCycles = post.GCCycles
	}
	return smp, nil
}

// tooLarge is the reading that stopped the sampling, if one did.
func (s *sampler) tooLarge() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.oversize
}

func (s *sampler) snapshot() ([]gate.Sample, int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]gate.Sample(nil), s.samples...), s.errs, s.lastErr
}
