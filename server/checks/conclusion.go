package checks

import "github.com/memgate/memgate/gate"

// What a run can come to besides a verdict.
const (
	outcomeCancelled     = "cancelled"
	outcomeNeedsApproval = "needs_approval"
)

// conclusion is how GitHub shows what a run came to (a verdict, or one of
// the outcomes above): a check run's conclusion and a commit status's
// state. It is the one place that chooses them. Only a pass succeeds:
// errors, inconclusive gates and anything unknown fail closed, since a
// required check must not pass without a verdict.
func conclusion(outcome string) (check, status string) {
	switch outcome {
	case string(gate.Pass):
		return "success", "success"
	case string(gate.Fail):
		return "failure", "failure"
	case outcomeCancelled:
		return "cancelled", "error"
	case outcomeNeedsApproval:
		return "action_required", "pending" // blocks a required check until approved
	}
	return "failure", "error"
}
