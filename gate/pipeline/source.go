package pipeline

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/memgate/memgate/gate/probe"
	"github.com/memgate/memgate/gate/service"
	"github.com/memgate/memgate/loadgen"
)

// chooseSource picks where numbers are read: the service's pprof when it is
// really there (auto, service), else the injected reader (auto, reader).
func (r *run) chooseSource(ctx context.Context, port int, readerAddr, note string, dial probe.DialFunc) (Source, error) {
	cfg := r.opts.Config.Pprof
	addr := strings.ReplaceAll(cfg.Address, "{{port}}", strconv.Itoa(port))
	if addr == "" {
		addr = fmt.Sprintf("127.0.0.1:%d", port)
	}
	host, _, _ := net.SplitHostPort(addr)
	if !loadgen.IsLoopbackHost(host) {
		return nil, fmt.Errorf("%w: pprof.address %s is not a loopback address", service.ErrBuild, addr)
	}
	var pprofErr error
	if cfg.Mode != "reader" {
		p := probe.NewPprof("http://"+addr+cfg.Path, dial)
		if pprofErr = p.Detect(ctx); pprofErr == nil {
			return p, nil
		}
		if cfg.Mode == "service" {
			return nil, fmt.Errorf("%w: pprof.mode is service but %v", service.ErrService, pprofErr)
		}
	}
	if readerAddr == "" {
		if note == "" {
			note = "the reader was not added to the build"
		}
		return nil, fmt.Errorf("%w: no pprof (%v) and %s", service.ErrService, pprofErr, note)
	}
	rd := probe.NewReader(readerAddr, dial)
	// The reader starts in an init func: it is up by the time the service
	// answers, but give it a moment on a loaded machine.
	var err error
	for i := 0; i < 20; i++ {
		if err = rd.Detect(ctx); err == nil {
			return rd, nil
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return nil, fmt.Errorf("%w: the injected reader did not answer at %s: %v", service.ErrService, readerAddr, err)
}
