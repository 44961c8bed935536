package server

import (
	"context"
	"time"
)

// MinDeliveryRetention is the least time deliveries are kept. A delivery's
// row is the replay guard for its body (see age.go): it is kept well past
// the age at which the body would be refused as stale anyway. Events with
// no time of their own (a check run's re-request) lose their guard when
// pruned; a month is longer than anyone keeps a captured body's value.
const MinDeliveryRetention = 30 * 24 * time.Hour

// deliveryRetention is how long deliveries are kept: twice the event age
// bound, at least MinDeliveryRetention; 0 (keep for ever) without a bound.
func (s *Server) deliveryRetention() time.Duration {
	if s.cfg.MaxEventAge <= 0 {
		return 0
	}
	return max(2*s.cfg.MaxEventAge, MinDeliveryRetention)
}

// PruneDeliveries deletes the deliveries older than the retention, now and
// then every interval until ctx ends, so the table does not grow for ever.
func (s *Server) PruneDeliveries(ctx context.Context, every time.Duration) {
	keep := s.deliveryRetention()
	if keep == 0 {
		s.log.Info("deliveries are kept for ever: MEMGATE_MAX_EVENT_AGE is 0")
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		n, err := s.pruneDeliveries(ctx, keep)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("prune deliveries", "err", err)
		case n > 0:
			s.log.Info("pruned deliveries", "count", n, "older_than", keep)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) pruneDeliveries(ctx context.Context, keep time.Duration) (int64, error) {
	return s.store.PruneDeliveries(ctx, time.Now().Add(-keep))
}
