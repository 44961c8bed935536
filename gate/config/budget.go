package config

import (
	"fmt"
	"time"
)

// Margin is what a gate takes beyond its configured phases: the checkout,
// the idle and final readings, the profile downloads, the evaluation and
// the report. Measured gates of the examples spend under 10 s on all of it;
// two minutes leaves room for a slow clone and a loaded machine.
const Margin = 2 * time.Minute

// budgetKeys are the configured phases of a gate, in the order they run,
// each at its longest.
func (c Config) budgetKeys() []struct {
	key []string
	d   time.Duration
} {
	return []struct {
		key []string
		d   time.Duration
	}{
		{[]string{"build", "timeout"}, c.Build.Timeout},
		{[]string{"readiness", "timeout"}, c.Readiness.Timeout},
		{[]string{"load", "warmup"}, c.Load.Warmup},
		{[]string{"load", "duration"}, c.Load.Duration},
		{[]string{"load", "cooldown"}, c.Load.Cooldown},
		{[]string{"run", "stop_timeout"}, c.Run.StopTimeout},
	}
}

// WorstCase is the longest a gate of this config can take: every phase at
// its timeout, plus Margin.
func (c Config) WorstCase() time.Duration {
	total := Margin
	for _, k := range c.budgetKeys() {
		total += k.d
	}
	return total
}

// FitIn checks that a gate of this config ends within budget, the time its
// runner gives it (the server's job timeout); a gate that cannot is stopped
// half-way every time. The error names the longest phase, the one to
// shorten.
func (c Config) FitIn(budget time.Duration) error {
	worst := c.WorstCase()
	if worst <= budget {
		return nil
	}
	keys := c.budgetKeys()
	longest := keys[0]
	for _, k := range keys[1:] {
		if k.d > longest.d {
			longest = k
		}
	}
	return &KeyError{Path: longest.key, Msg: fmt.Sprintf(
		"the gate could take %s (build.timeout %s + readiness.timeout %s + load.warmup %s + load.duration %s + load.cooldown %s + run.stop_timeout %s + %s for checkout and reports), "+
			"more than the %s this server gives a gate (its job timeout): shorten %s.%s",
		worst, keys[0].d, keys[1].d, keys[2].d, keys[3].d, keys[4].d, keys[5].d, Margin, budget,
		longest.key[0], longest.key[1])}
}
