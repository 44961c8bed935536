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
// leak grows with requests. So when the excess is made of idle client
// connections, the gate sends a second burst of the same load and counts
// them again.

// PoolCheck is that second burst and what it showed.
type PoolCheck struct {
	// Connections and Goroutines: the idle client connections the window
	// left open (more than at its start), and the goroutines they hold.
	Connections int `json:"connections"`
	Goroutines  int `json:"goroutines"`
	// WindowRequests: the requests of the window that left them.
	WindowRequests uint64 `json:"window_requests"`
	// The burst: its requests, whether its load was valid, and the idle
	// client connections it left open beyond those of the window.
	BurstRequests    uint64 `json:"burst_requests"`
	BurstValid       bool   `json:"burst_valid"`
	BurstConnections int    `json:"burst_connections"`
}

// Reused reports whether the connections are a pool: the burst, valid and
// at least half the window's size, left at most half as many new ones
// per request as the window did. A leak of one client per N calls leaves
// as many per request in both; a pool, already wide, leaves none or a
// few from a rarer peak of concurrency.
func (p *PoolCheck) Reused() bool {
	if p == nil || !p.BurstValid || p.Connections <= 0 || p.WindowRequests == 0 || 2*p.BurstRequests < p.WindowRequests {
		return false
	}
	return 2*float64(p.BurstConnections)*float64(p.WindowRequests) <= float64(p.Connections)*float64(p.BurstRequests)
}

// pooled is what a settle criterion leaves out of its excess, n goroutines
// or n descriptors as unit says, with the words saying so; 0 and "" when
// the check did not show a pool.
func (p *PoolCheck) pooled(unit string) (int, string) {
	if !p.Reused() {
		return 0, ""
	}
	n := p.Goroutines
	if unit == "descriptors" {
		n = p.Connections
	}
	return n, fmt.Sprintf("%d idle HTTP client connections the service keeps (%d %s) are left out: a pool, since a second burst of %d requests reused them (%+d connections)",
		p.Connections, n, unit, p.BurstRequests, p.BurstConnections)
}

// grewAgain is the words for a check that did not show a pool, "" when
// none was run.
func (p *PoolCheck) grewAgain() string {
	switch {
	case p == nil:
		return ""
	case !p.BurstValid:
		return fmt.Sprintf("; its %d idle HTTP client connections were not left out: the second burst meant to tell a pool from a leak was not a valid load", p.Connections)
	case p.Reused():
		return ""
	}
	return fmt.Sprintf("; its %d idle HTTP client connections are not a pool: a second burst of %d requests left %d more open",
		p.Connections, p.BurstRequests, p.BurstConnections)
}
