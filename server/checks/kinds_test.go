package checks

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/attribution"
	"github.com/memgate/memgate/internal/golden"
)

// kindReport is a failing gate's report on the real profiles of one kind
// of leak (gate/attribution/testdata/leaks wrote them), attributed as the
// pipeline does, with fixed criteria and load.
func kindReport(t *testing.T, kind string) *gate.Report {
	t.Helper()
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "gate", "attribution", "testdata", "profiles", kind, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	owner := attribution.Owner{
		Packages: []attribution.Root{{ImportPath: "example.com/leaks"}},
		Vendored: []attribution.Root{{ImportPath: "example.com/reqctx", Dir: "vendor/example.com/reqctx"}},
	}
	heap, err := owner.HeapGrowth(read("heap-0.pb.gz"), read("heap-1.pb.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	gor, err := owner.GoroutineGrowth(read("goroutine-0.pb.gz"), read("goroutine-1.pb.gz"), 0)
	if err != nil {
		t.Fatal(err)
	}
	rep := &gate.Report{
		Verdict:     gate.Fail,
		Load:        gate.Load{RequestedRate: 200, AchievedRate: 199.9, Requests: 4000, SuccessRatio: 1},
		Baseline:    gate.Baseline{IdleGoroutines: 4, WindowStartGoroutines: 6, MeasureFrom: 10, MeasureTo: 30, SteadyFrom: 20},
		Settle:      gate.Settle{WindowStart: 6, Final: 6},
		Environment: gate.Environment{Source: "the service's net/http/pprof"},
		Attribution: gate.Attribution{Findings: attribution.Findings(heap, gor), Heap: heap[:min(5, len(heap))], Goroutines: gor[:min(3, len(gor))]},
	}
	heapCrit := gate.Criterion{Name: gate.CritHeapGrowth, Status: gate.StatusPass, Value: 3, Limit: 32, Unit: "bytes/request", Comparison: "<="}
	settle := gate.Criterion{Name: gate.CritGoroutineSettle, Status: gate.StatusPass, Value: 0, Limit: 5, Unit: "goroutines", Comparison: "<="}
	var grew int64
	for _, g := range gor {
		grew += g.Delta
	}
	if grew > 10 {
		settle.Status, settle.Value, rep.Settle.Final = gate.StatusFail, float64(grew), 6+int(grew)
	} else {
		heapCrit.Status, heapCrit.Value = gate.StatusFail, float64(heap[0].DeltaBytes)/4000
	}
	rep.Criteria = []gate.Criterion{heapCrit, settle}
	rep.Reason = gate.Headline(rep)
	return rep
}

// The check run summary of each kind of leak, as a reviewer reads it,
// names the kind and the repository's function to fix, with its line.
func TestSummaryOfEachLeakKind(t *testing.T) {
	for _, tc := range []struct{ kind, words, culprit string }{
		{"requests", "Requests retained", "main.rememberUser (main.go:"},
		{"connections", "Connections leaked", "main.getHttpClient (main.go:"},
		{"blocked", "Goroutines blocked", "main.awaitConfirmation (main.go:"},
		{"timers", "Timers never stopped", "main.scheduleExpiry (main.go:"},
		{"cache", "Cache without a bound", "main.(*responseCache).put (main.go:"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			rep := kindReport(t, tc.kind)
			got := Summary(rep, "https://memgate.example/runs/7")
			if !strings.Contains(Title(rep), tc.culprit) {
				t.Errorf("title %q does not name %s", Title(rep), tc.culprit)
			}
			if !strings.Contains(got, "- **"+tc.words+"**") || !strings.Contains(got, text(tc.culprit)) {
				t.Errorf("summary does not say %q and %q:\n%s", tc.words, tc.culprit, got)
			}
			golden.Check(t, "summary-"+tc.kind+".md", []byte(got), *update)
		})
	}
}
