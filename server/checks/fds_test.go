package checks

import (
	"strings"
	"testing"

	"github.com/memgate/memgate/gate"
)

func TestSummaryShowsOpenFilesAndTheLimit(t *testing.T) {
	rep := failingReport()
	rep.Criteria = append(rep.Criteria, gate.Criterion{Name: gate.CritFDSettle, Status: gate.StatusFail, Value: 290, Limit: 5, Unit: "fds", Comparison: "<="})
	rep.Load.Streams, rep.Load.LeftEarly = 4000, 0
	rep.Settle = gate.Settle{IdleFDs: 9, WindowStartFDs: 300, PeakFDs: 300, FinalFDs: 299, FDLimit: 300}
	s := Summary(rep, "")
	for _, want := range []string{"| fd settle | ❌ fail | 290 | <= 5 |", "Open files: 9 idle, 300 at window start, peak 300, 299 after the load settled (RLIMIT_NOFILE 300)",
		"> [!WARNING]\n> The service reached its limit of open files (RLIMIT_NOFILE 300, peak 300 open)", "4,000 requests were streams held until the client left"} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	// Without counts, no line about them.
	if s := Summary(failingReport(), ""); strings.Contains(s, "Open files") || strings.Contains(s, "streams held") {
		t.Errorf("summary speaks of what was not measured:\n%s", s)
	}
}
