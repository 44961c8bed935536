package pipeline

import (
	"context"
	"fmt"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
)

// checkPool runs a second burst of the window's load when the settle
// criteria alone failed the run and what did not settle is client
// connections the window opened, to tell the service's pool (reused) from
// a leak (grows with requests): see gate.PoolCheck. Then it judges the
// run again. It runs after the sampler stopped: the burst is no part of
// the measured series.
func (m *measurement) checkPool(ctx context.Context) error {
	if !m.failedOnSettleAlone() || m.proc == nil {
		return nil
	}
	s := &m.report.Settle
	conns, goroutines, connsAtEnd, ok := m.pooledExcess()
	if !ok {
		return nil
	}
	before, err := m.proc.ClientSockets()
	if err != nil {
		m.log.Info("no pool check: the service's sockets cannot be listed", "err", err)
		return nil
	}
	cfg := m.opts.Config
	m.phase("pool", fmt.Sprintf("%d new HTTP client connections (%d goroutines) did not close: a second burst of %s at %g requests/s tells a pool from a leak",
		conns, goroutines, cfg.Load.Duration, cfg.Load.Rate))
	burst, err := m.gen.Attack(ctx, cfg.Load.Duration, nil)
	if err != nil {
		return fmt.Errorf("the second burst: %w", err)
	}
	m.gen.CloseIdleConnections()
	// Back to where the window's settle ended, or the cooldown.
	settled, err := m.waitSettled(ctx, gate.Reading{Goroutines: s.Final, FDs: s.FinalFDs})
	if err != nil {
		return err
	}
	after, err := m.src.Profile(ctx, "goroutine", false)
	if err != nil {
		m.log.Info("no goroutine profile after the second burst", "err", err)
		return nil
	}
	connsAfter, _, err := attribution.CountClientConnections(after)
	if err != nil {
		return fmt.Errorf("the goroutine profile after the second burst: %w", err)
	}
	socketsAfter, err := m.proc.ClientSockets()
	if err != nil {
		m.log.Info("the service's sockets after the second burst", "err", err)
		return nil
	}
	closed := 0 // of the outgoing connections open before the burst
	for sock := range before {
		if !socketsAfter[sock] {
			closed++
		}
	}
	s.Pool = &gate.PoolCheck{
		Connections: conns, Goroutines: goroutines, WindowRequests: m.report.Load.Requests, Burst: burst,
		BurstConnections: int(connsAfter) - connsAtEnd, BurstGoroutines: settled.Final - s.Final, SocketsClosed: closed,
	}
	m.evaluate()
	return nil
}

// failedOnSettleAlone: the run failed, and on the settle criteria alone.
// Any other failure decides the verdict whatever the connections are,
// and a leak of a client per request should not be doubled to find out.
func (m *measurement) failedOnSettleAlone() bool {
	if m.report.Verdict != gate.Fail {
		return false
	}
	for _, c := range m.report.Criteria {
		if c.Status == gate.StatusFail && c.Name != gate.CritGoroutineSettle && c.Name != gate.CritFDSettle {
			return false
		}
	}
	return true
}

// pooledExcess: the goroutines that did not settle, beyond the tolerance,
// are all held by client connections opened since the window's start
// (counted whole in each profile, busy or idle: a connection busy at the
// start and idle at the end is no new one); their number and goroutines,
// and the connections open at the end. Not when anything else is left
// over too: then the settle fails whatever the connections are.
func (m *measurement) pooledExcess() (conns, goroutines, connsAtEnd int, ok bool) {
	s := m.report.Settle
	tolerance := m.opts.Config.Thresholds.GoroutineSettleTolerance
	if s.Settled || s.Final-s.WindowStart <= tolerance || m.profiles.gorErr != nil {
		return 0, 0, 0, false
	}
	c0, g0, err := attribution.CountClientConnections(m.profiles.gorWarm)
	if err != nil {
		return 0, 0, 0, false
	}
	c1, g1, err := attribution.CountClientConnections(m.profiles.gorEnd)
	if err != nil {
		return 0, 0, 0, false
	}
	c, g := int(c1-c0), int(g1-g0)
	if c <= 0 || s.Final-s.WindowStart-g > tolerance {
		return 0, 0, 0, false
	}
	return c, g, int(c1), true
}
