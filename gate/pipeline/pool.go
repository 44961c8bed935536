package pipeline

import (
	"context"
	"fmt"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
)

// checkPool runs a second burst of the window's load when the settle
// criteria alone fail the run and what did not settle is the service's
// own idle HTTP client connections, to tell a pool (reused) from a leak
// (grows with requests): see gate.PoolCheck. Then it judges the run
// again. It runs after the sampler stopped: the burst is no part of the
// measured series.
func (m *measurement) checkPool(ctx context.Context) error {
	if !m.failedOnSettleAlone() {
		return nil
	}
	s := &m.report.Settle
	conns, goroutines, ok := m.pooledExcess()
	if !ok {
		return nil
	}
	cfg := m.opts.Config
	m.phase("pool", fmt.Sprintf("%d idle HTTP client connections (%d goroutines) did not close: a second burst of %s at %g requests/s tells a pool from a leak",
		conns, goroutines, cfg.Load.Duration, cfg.Load.Rate))
	burst, err := m.gen.Attack(ctx, cfg.Load.Duration, nil)
	if err != nil {
		return fmt.Errorf("the second burst: %w", err)
	}
	m.gen.CloseIdleConnections()
	// Back to where the window's settle ended, or the cooldown.
	if _, err := m.waitSettled(ctx, gate.Reading{Goroutines: s.Final, FDs: s.FinalFDs}); err != nil {
		return err
	}
	after, err := m.src.Profile(ctx, "goroutine", false)
	if err != nil {
		m.log.Info("no goroutine profile after the second burst", "err", err)
		return nil
	}
	grown, err := m.owner.GoroutineGrowth(m.profiles.gorEnd, after, 0)
	if err != nil {
		return fmt.Errorf("the goroutine profile after the second burst: %w", err)
	}
	more, _ := attribution.ClientConnections(grown)
	th := cfg.Thresholds
	s.Pool = &gate.PoolCheck{
		Connections: conns, Goroutines: goroutines, WindowRequests: m.report.Load.Requests,
		BurstRequests: burst.Requests, BurstConnections: int(more),
		BurstValid: burst.SuccessRatio >= th.MinSuccessRatio && burst.RequestedRate > 0 && burst.AchievedRate >= th.MinRateRatio*burst.RequestedRate,
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
// are all held by idle HTTP client connections the window left open;
// their count and goroutines. Not when anything else is left over too:
// then the settle fails whatever the connections are.
func (m *measurement) pooledExcess() (conns, goroutines int, ok bool) {
	s := m.report.Settle
	tolerance := m.opts.Config.Thresholds.GoroutineSettleTolerance
	if s.Settled || s.Final-s.WindowStart <= tolerance || m.profiles.gorErr != nil {
		return 0, 0, false
	}
	grown, err := m.owner.GoroutineGrowth(m.profiles.gorWarm, m.profiles.gorEnd, 0)
	if err != nil {
		return 0, 0, false
	}
	c, g := attribution.ClientConnections(grown)
	if c <= 0 || s.Final-s.WindowStart-int(g) > tolerance {
		return 0, 0, false
	}
	return int(c), int(g), true
}
