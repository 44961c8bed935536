package checks

import (
	"testing"

	"github.com/memgate/memgate/gate"
)

func TestConclusionFailsClosed(t *testing.T) {
	for _, tc := range []struct{ outcome, check, status string }{
		{string(gate.Pass), "success", "success"},
		{string(gate.Fail), "failure", "failure"},
		{string(gate.Error), "failure", "error"},
		{string(gate.Inconclusive), "failure", "error"},
		{outcomeCancelled, "cancelled", "error"},
		{outcomeNeedsApproval, "action_required", "pending"},
		{"", "failure", "error"},
		{"PASS", "failure", "error"},
		{"something new", "failure", "error"},
	} {
		check, status := conclusion(tc.outcome)
		if check != tc.check || status != tc.status {
			t.Errorf("conclusion(%q) = %s, %s; want %s, %s", tc.outcome, check, status, tc.check, tc.status)
		}
	}
}
