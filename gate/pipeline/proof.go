package pipeline

import (
	"context"
	"errors"
	"fmt"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/probe"
)

// GoroutineLeakEnd names the runtime's goroutine leak profile, as written
// with --profiles and stored by the server.
const GoroutineLeakEnd = "goroutineleak-end.pb.gz"

// readProof reads the runtime's proof of leaked goroutines, once, after
// the measurement (writing it runs a GC that looks for them, which the
// window's numbers should not include). The service's own pprof serves it
// where it serves every profile by name; a router that mounts only the
// usual ones does not, and the reader, when in the build, does. A profile
// that could not be read is a note beside a verdict that stands; one too
// large ends the gate, as the other profiles do.
func (r *run) readProof(ctx context.Context, src Source, svc *started) error {
	p := &gate.ProvenLeaks{}
	r.report.Attribution.ProvenLeaks = p
	if !svc.built.LeakProfile {
		p.Note = svc.built.LeakNote
		if p.Note == "" {
			p.Note = "the build does not have it"
		}
		return nil
	}
	data, err := src.Profile(ctx, "goroutineleak", false)
	if _, isPprof := src.(*probe.Pprof); err != nil && isPprof && svc.readerAddr != "" && !errors.Is(err, gate.ErrTooLarge) {
		data, err = probe.NewReader(svc.readerAddr, probe.DialFunc(svc.proc.Dial())).Profile(ctx, "goroutineleak", false)
	}
	if err == nil {
		r.res.Profiles[GoroutineLeakEnd] = data
		var proven gate.ProvenLeaks
		proven, err = r.owner.ProvenLeaks(data, r.opts.AttributeTo)
		*p = proven
	}
	if err != nil {
		p.Note = "reading it: " + err.Error()
		if errors.Is(err, gate.ErrTooLarge) {
			return fmt.Errorf("the goroutine leak profile (%s): %w", GoroutineLeakEnd, err)
		}
	}
	return nil
}
