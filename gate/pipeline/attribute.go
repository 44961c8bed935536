package pipeline

import (
	"errors"
	"fmt"
	"slices"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
)

// attribute diffs the profiles into the report. A profile the service
// made too big to read or decompress ends the gate as an error saying
// which; any other problem is a note beside a verdict that stands.
func (r *run) attribute(p profiles) error {
	heapWarm, heapEnd, gorWarm, gorEnd, heapErr, gorErr := p.heapWarm, p.heapEnd, p.gorWarm, p.gorEnd, p.heapErr, p.gorErr
	att := &r.report.Attribution
	var notes []string
	if heapErr == nil {
		r.res.Profiles[HeapWarmup], r.res.Profiles[HeapEnd] = heapWarm, heapEnd
		// All of them: the findings' rules weigh every site.
		sites, err := r.owner.HeapGrowth(heapWarm, heapEnd, 0)
		heapErr = err
		att.Heap = sites
		att.DiffCommand = "go tool pprof -sample_index=inuse_space -top -diff_base " + HeapWarmup + " " + HeapEnd
	}
	if heapErr != nil {
		notes = append(notes, "heap profiles: "+heapErr.Error())
	}
	if gorErr == nil {
		r.res.Profiles[GoroutineWarmup], r.res.Profiles[GoroutineEnd] = gorWarm, gorEnd
		stacks, err := r.owner.GoroutineGrowth(gorWarm, gorEnd, 0)
		gorErr = err
		att.Goroutines = stacks
	}
	if gorErr != nil {
		notes = append(notes, "goroutine profiles: "+gorErr.Error())
	}
	att.Findings = attribution.Findings(att.Heap, att.Goroutines)
	if r.report.Settle.Pool.Reused(r.opts.Config.Thresholds) {
		// The connections the window left open are the service's pool,
		// shown reused by a second burst: not leaked.
		att.Findings = slices.DeleteFunc(att.Findings, func(f gate.Finding) bool { return f.Kind == gate.KindConnectionsLeaked })
	}
	att.Heap, att.Goroutines = head(att.Heap, r.opts.AttributeTo), head(att.Goroutines, r.opts.AttributeTo)
	if len(notes) > 0 {
		att.Note = fmt.Sprint(notes)
	}
	switch {
	case errors.Is(heapErr, gate.ErrTooLarge):
		return fmt.Errorf("the heap profiles (%s, %s): %w", HeapWarmup, HeapEnd, heapErr)
	case errors.Is(gorErr, gate.ErrTooLarge):
		return fmt.Errorf("the goroutine profiles (%s, %s): %w", GoroutineWarmup, GoroutineEnd, gorErr)
	}
	return nil
}

// head is s's first n elements (all of them when n <= 0).
func head[T any](s []T, n int) []T {
	if n > 0 && len(s) > n {
		return s[:n]
	}
	return s
}
