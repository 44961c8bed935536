package config

import (
	"fmt"
	"strings"
	"time"
)

// Margin is what a gate takes beyond its configured phases: the checkout,
// the idle and final readings, the profile downloads, the evaluation and
// the report. The examples' gates spend seconds on all of it; two minutes
// leave room for a slow clone and a loaded machine.
const Margin = 2 * time.Minute

// phase is one configured part of a gate at its longest.
type phase struct {
	key   string // dotted config key
	d     time.Duration
	label string // how the sum names it, when not its key
}

// phases are a gate's configured parts, in the order they run.
// A dependency adds its readiness timeout (they start one after another)
// and, built from the repository, a build of up to build.timeout.
func (c Config) phases() []phase {
	ps := []phase{{key: "build.timeout", d: c.Build.Timeout}}
	for _, n := range c.DependencyNames() {
		d := c.Dependencies[n]
		if d.Package != "" {
			ps = append(ps, phase{"build.timeout", c.Build.Timeout, "dependencies." + n + "'s build (build.timeout)"})
		}
		ps = append(ps, phase{key: "dependencies." + n + ".timeout", d: d.Timeout})
	}
	return append(ps,
		phase{key: "readiness.timeout", d: c.Readiness.Timeout},
		phase{key: "load.warmup", d: c.Load.Warmup},
		phase{key: "load.duration", d: c.Load.Duration},
		phase{key: "load.cooldown", d: c.Load.Cooldown},
		// A second burst and cooldown, when the service's own client
		// connections did not settle (gate.PoolCheck).
		phase{key: "load.duration", d: c.Load.Duration, label: "a second burst if a client pool stayed open (load.duration)"},
		phase{key: "load.cooldown", d: c.Load.Cooldown, label: "its cooldown (load.cooldown)"},
		phase{key: "run.stop_timeout", d: c.Run.StopTimeout},
	)
}

// WorstCase is the longest a gate of this config can take: every phase at
// its timeout, plus Margin.
func (c Config) WorstCase() time.Duration {
	total := Margin
	for _, p := range c.phases() {
		total += p.d
	}
	return total
}

// FitIn checks that a gate of this config ends within budget, the time its
// runner gives it (the server's job timeout): a gate that cannot would be
// stopped half-way every time. The error names the longest phase's key, the
// one to shorten.
func (c Config) FitIn(budget time.Duration) error {
	return c.fitIn(budget, fmt.Sprintf("the %s this server gives a gate (its job timeout)", budget))
}

// FitPairIn is FitIn for a pull request gated beside its base: the base
// and the head run in one job, so each gets half of it. (Confirmations are
// started only when the time left holds them: gate/pair.)
func (c Config) FitPairIn(budget time.Duration) error {
	return c.fitIn(budget/2, fmt.Sprintf("the %s a pull request's gate gets: half of this server's job timeout of %s, since its base is gated in the same job", budget/2, budget))
}

func (c Config) fitIn(budget time.Duration, what string) error {
	worst := c.WorstCase()
	if worst <= budget {
		return nil
	}
	phases := c.phases()
	longest := phases[0]
	terms := make([]string, 0, len(phases)+1)
	for _, p := range phases {
		if p.d > longest.d {
			longest = p
		}
		label := p.key
		if p.label != "" {
			label = p.label
		}
		terms = append(terms, fmt.Sprintf("%s %s", label, p.d))
	}
	terms = append(terms, fmt.Sprintf("%s for checkout and reports", Margin))
	return &KeyError{Path: strings.Split(longest.key, "."), Msg: fmt.Sprintf(
		"the gate could take %s (%s), more than %s: shorten %s",
		worst, strings.Join(terms, " + "), what, longest.key)}
}
