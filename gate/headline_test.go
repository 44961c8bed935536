package gate

import (
	"strings"
	"testing"
)

// A function is named outright only when its growth rests on enough heap
// profile samples; a single sample may land on any allocation of the window
// (seen: a 128 B/request leak reported "held by hash/crc32.slicingMakeTable").
func TestHeadlineHedgesAttributionOnFewSamples(t *testing.T) {
	report := func(samples float64) *Report {
		return &Report{
			Verdict:  Fail,
			Criteria: []Criterion{{Name: CritHeapGrowth, Status: StatusFail, Value: 160, Limit: 32}},
			Load:     Load{AchievedRate: 200},
			Baseline: Baseline{SteadyFrom: 30, MeasureTo: 50},
			Attribution: Attribution{Heap: []HeapSite{{
				Function: "main.(*orderStore).remember", DeltaBytes: int64(samples * 524288), Samples: samples,
			}}},
		}
	}
	cases := []struct {
		samples float64
		want    string
	}{
		{1, "perhaps held by main.(*orderStore).remember (1 heap profile sample: too few to be sure)"},
		{2.2, "perhaps held by main.(*orderStore).remember (2 heap profile samples: too few to be sure)"},
		{8, ", held by main.(*orderStore).remember"},
		{0, ", held by main.(*orderStore).remember"}, // unknown: as before
	}
	for _, c := range cases {
		got := Headline(report(c.samples))
		if !strings.Contains(got, c.want) {
			t.Errorf("%v samples: %q, want it to contain %q", c.samples, got, c.want)
		}
		if c.samples >= MinHeapSamples && strings.Contains(got, "perhaps") {
			t.Errorf("%v samples hedged: %q", c.samples, got)
		}
	}
}
