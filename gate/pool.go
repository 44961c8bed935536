package gate

import "fmt"

// A service that calls an upstream through one shared HTTP client keeps
// a pool of idle connections to it, each with two goroutines (its read
// and write loops) and a descriptor, for as long as the transport's idle
// timeout (90 s by default): far past the cooldown. When concurrent calls
// widen the pool during the window, the settle check sees goroutines and
// descriptors that did not come back, exactly as it sees a client leaked
// per call (seen: a shared client went from 1 to 6 idle connections in
// one run of ten, and failed goroutine_settle with +9).
//
// Only the service's behaviour tells the two apart: a pool is reused, a
// leak grows with requests. So when the run failed on the settle criteria
// alone and the excess is made of client connections the window opened,
// the gate sends a second burst of the same load and looks again.

// PoolCheck is that second burst and what it showed.
type PoolCheck struct {
	// Connections and Goroutines: the client connections open after the
	// cooldown beyond those open at the window's start (busy or idle),
	// and the goroutines they hold.
	Connections int `json:"connections"`
	Goroutines  int `json:"goroutines"`
	// WindowRequests: the requests of the window that opened them.
	WindowRequests uint64 `json:"window_requests"`
	// Burst is the second burst's load.
	Burst Load `json:"burst"`
	// After the burst and its cooldown: the client connections opened
	// beyond those before it, the change in all goroutines, and how many
	// of the service's outgoing TCP connections open before it were
	// closed. That last is reported, not judged: a saturated pool churns
	// (net/http closes a connection handed back to a full idle list, old
	// or new: seen, 7 of 7 replaced in a pool that never grew), so it
	// cannot tell a pool from a client per call whose old connections
	// time out during the burst (90 s by default, past the default
	// load.duration of 40 s, which the base commit's config sets).
	BurstConnections int `json:"burst_connections"`
	BurstGoroutines  int `json:"burst_goroutines"`
	SocketsClosed    int `json:"sockets_closed"`
}

// Reused reports whether the connections are a pool: a valid burst of at
// least half the window's requests left fewer than half as many new
// connections per request as the window did, and its goroutines came back
// within tolerance.
func (p *PoolCheck) Reused(th Thresholds) bool {
	if p == nil || !p.burstValid(th) || p.Connections <= 0 || p.WindowRequests == 0 || 2*p.Burst.Requests < p.WindowRequests {
		return false
	}
	return p.fewerPerRequest() && p.BurstGoroutines <= th.GoroutineSettleTolerance
}

// fewerPerRequest: the burst left fewer than half as many new connections
// per request as the window did.
func (p *PoolCheck) fewerPerRequest() bool {
	return 2*float64(p.BurstConnections)*float64(p.WindowRequests) < float64(p.Connections)*float64(p.Burst.Requests)
}

func (p *PoolCheck) burstValid(th Thresholds) bool {
	l := p.Burst
	return l.Requests > 0 && l.SuccessRatio >= th.MinSuccessRatio && l.RequestedRate > 0 && l.AchievedRate >= th.MinRateRatio*l.RequestedRate
}

// leftOut is what a settle criterion with this excess leaves out of it (at
// most the excess, at most the pool's goroutines or descriptors as unit
// says), with the words saying so; 0 and "" when the check did not show
// a pool.
func (p *PoolCheck) leftOut(excess int, unit string, th Thresholds) (int, string) {
	if !p.Reused(th) || excess <= 0 {
		return 0, ""
	}
	n := p.Goroutines
	if unit == "descriptors" {
		n = p.Connections
	}
	n = min(n, excess)
	return n, fmt.Sprintf("%d %s of %d idle HTTP client connections the service keeps are left out: a pool, since a second burst of %d requests reused them (%+d connections, %d closed)",
		n, unit, p.Connections, p.Burst.Requests, p.BurstConnections, p.SocketsClosed)
}

// notAPool is the words for a check that did not show a pool, "" when
// none was run or it did.
func (p *PoolCheck) notAPool(th Thresholds) string {
	switch {
	case p == nil || p.Reused(th):
		return ""
	case !p.burstValid(th):
		return fmt.Sprintf("; its %d new HTTP client connections were not left out: the second burst meant to tell a pool from a leak was not a valid load", p.Connections)
	case p.BurstGoroutines > 0 && p.fewerPerRequest():
		return fmt.Sprintf("; its %d new HTTP client connections are not a pool: after a second burst of %d requests the service held %+d goroutines more",
			p.Connections, p.Burst.Requests, p.BurstGoroutines)
	}
	return fmt.Sprintf("; its %d new HTTP client connections are not a pool: a second burst of %d requests left %d more open",
		p.Connections, p.Burst.Requests, p.BurstConnections)
}
