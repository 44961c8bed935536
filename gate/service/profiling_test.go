package service

import (
	"slices"
	"testing"
)

func TestWithHeapProfileRateKeepsTheRepositorysGODEBUG(t *testing.T) {
	cases := []struct{ in, want []string }{
		{[]string{"PORT=1"}, []string{"PORT=1", "GODEBUG=memprofilerate=65536"}},
		{[]string{"GODEBUG=http2client=0", "PORT=1"}, []string{"GODEBUG=http2client=0,memprofilerate=65536", "PORT=1"}},
		// The process sees the last one: that is the one extended.
		{[]string{"GODEBUG=a=1", "GODEBUG=b=1"}, []string{"GODEBUG=a=1", "GODEBUG=b=1,memprofilerate=65536"}},
		{[]string{"GODEBUG="}, []string{"GODEBUG=memprofilerate=65536"}},
		{[]string{"GODEBUG=memprofilerate=1"}, []string{"GODEBUG=memprofilerate=1"}},
	}
	for _, c := range cases {
		in := slices.Clone(c.in)
		if got := WithHeapProfileRate(in); !slices.Equal(got, c.want) {
			t.Errorf("%q: got %q, want %q", c.in, got, c.want)
		}
		if !slices.Equal(in, c.in) {
			t.Errorf("%q: the caller's slice was changed", c.in)
		}
	}
}

// The experiment is in every package's build ID: a build with it must not
// start from a seed made without it (it would compile the standard library
// again), so the seeds differ.
func TestSeedKeyFollowsTheExperiment(t *testing.T) {
	env := []string{"PATH=/usr/bin", "CGO_ENABLED=0"}
	plain := seedKey("/usr/local/go", env)
	with := seedKey("/usr/local/go", withLeakExperiment(BuildSpec{ToolEnv: env}).ToolEnv)
	if plain == with {
		t.Fatalf("one seed (%s) for builds with and without GOEXPERIMENT=%s", plain, LeakExperiment)
	}
	c := Containment{GoRoot: "/usr/local/go"}
	if kept := c.sandboxEnv(withLeakExperiment(BuildSpec{ToolEnv: env}).ToolEnv, goCacheInside); !slices.Contains(kept, "GOEXPERIMENT="+LeakExperiment) {
		t.Fatalf("the sandbox's build environment drops the experiment: %q", kept)
	}
}

func TestLeakExperimentJoinsTheRepositorysGOEXPERIMENT(t *testing.T) {
	spec := BuildSpec{Env: map[string]string{"GOEXPERIMENT": "jsonv2", "CGO_ENABLED": "0"}}
	got := withLeakExperiment(spec)
	if got.Env["GOEXPERIMENT"] != "jsonv2,goroutineleakprofile" || got.Env["CGO_ENABLED"] != "0" || spec.Env["GOEXPERIMENT"] != "jsonv2" {
		t.Fatalf("build.env %q (the repository's map: %q)", got.Env, spec.Env)
	}
}
