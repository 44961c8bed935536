package web

import (
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
)

func TestFDChartShowsTheSettleLimitAndRLIMIT(t *testing.T) {
	r := &gate.Report{
		Baseline:   gate.Baseline{MeasureFrom: 3, MeasureTo: 15, SteadyFrom: 9},
		Thresholds: gate.DefaultThresholds(),
		Settle:     gate.Settle{IdleFDs: 9, WindowStartFDs: 280, PeakFDs: 300, FinalFDs: 299, FDLimit: 300},
	}
	for i := range 20 {
		r.Samples = append(r.Samples, gate.Sample{Offset: float64(i), Phase: gate.PhaseMeasure, FDs: min(9+20*i, 300), Sockets: 12})
	}
	svg := string(fdChart(r).SVG())
	for _, want := range []string{"Open file descriptors", "open files", "of them sockets", "settle limit: window start 280 + 5", "RLIMIT_NOFILE 300", "polyline"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	r.Settle.FDLimit = 65536
	if svg := string(fdChart(r).SVG()); strings.Contains(svg, "RLIMIT_NOFILE") {
		t.Error("the limit drawn for a service far from it")
	}
}
