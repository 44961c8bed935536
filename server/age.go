package server

import (
	"fmt"
	"time"
)

// GitHub signs a delivery's body but not its X-GitHub-Delivery header, so a
// captured body can be sent again under a new delivery id. Bodies already
// accepted are refused by their hash (storage.ErrReplayed); the age bound
// covers what the hashes cannot: bodies captured before memgate kept them,
// or deliveries pruned since. GitHub itself sends an event once, at once,
// and redelivers a failed one by hand for three days (under the same id):
// no genuine delivery is older than that, which is why memgate's default
// bound (MEMGATE_MAX_EVENT_AGE) is four days, a day of slack for clocks and
// GitHub's own queue. Deliveries (and so their hashes) are kept twice that
// bound, at least 30 days, then pruned (prune.go).

// eventTimeLayouts are the formats GitHub's payloads use for timestamps.
var eventTimeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05", "2006-01-02T15:04:05-07:00"}

// occurredAt is when the payload says its event happened, where it says so:
// a pull request's and a check suite's updated_at move with every event.
// A check_run re-request carries no time of its own (its run's times are
// the old run's) and a ping none of interest: they have no bound.
func (e *event) occurredAt(name string) (time.Time, bool) {
	var stamp string
	switch {
	case name == "pull_request" && e.PullRequest != nil:
		stamp = e.PullRequest.UpdatedAt
	case name == "check_suite" && e.CheckSuite != nil:
		stamp = e.CheckSuite.UpdatedAt
	}
	for _, layout := range eventTimeLayouts {
		if t, err := time.Parse(layout, stamp); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// checkAge refuses an event older than the configured bound.
func (s *Server) checkAge(e *event, name string, now time.Time) error {
	if s.cfg.MaxEventAge <= 0 {
		return nil
	}
	at, ok := e.occurredAt(name)
	if !ok {
		return nil
	}
	if age := now.Sub(at); age > s.cfg.MaxEventAge {
		return fmt.Errorf("%w: the payload says it happened at %s, %s ago; memgate accepts events up to %s old",
			errStale, at.UTC().Format(time.RFC3339), age.Round(time.Second), s.cfg.MaxEventAge)
	}
	return nil
}
