package checks

import "github.com/memgate/memgate/gate"

// What a run can come to besides a verdict.
const (
	outcomeCancelled     = "cancelled"
	outcomeNeedsApproval = "needs_approval"
	// outcomeAccepted: someone with write permission accepted the change
	// the run found, for this head commit.
	outcomeAccepted = "accepted"
)

// conclusion is how GitHub shows what a run came to (a verdict, or one of
// the outcomes above): a check run's conclusion and a commit status's
// state. It is the one place that chooses them. Only a pass (or an
// accepted change) succeeds; a leak already on the base, which the config
// does not block on, is neutral (a commit status has no neutral: success,
// as GitHub's required checks count neutral). Errors, inconclusive gates
// and anything unknown fail closed, since a required check must not pass
// without a verdict.
func conclusion(outcome string) (check, status string) {
	switch outcome {
	case string(gate.Pass), outcomeAccepted:
		return "success", "success"
	case string(gate.Neutral):
		return "neutral", "success"
	case string(gate.Fail):
		return "failure", "failure"
	case outcomeCancelled:
		return "cancelled", "error"
	case outcomeNeedsApproval:
		return "action_required", "pending"
	}
	return "failure", "error"
}

// comparedOutcome is what a pull request's run gated beside its base comes
// to, for conclusion:
//   - a leak introduced by the pull request, or head worse than base
//     beyond the noise: the comparison's verdict, a failure (or, when the
//     failure did not confirm on a fresh process, a flake: the
//     confirmation's verdict, as the comparison gives it);
//   - a leak already on the base: never the pull request's fault; the
//     config's compare.already_leaking says neutral (default) or failure;
//   - a leak on the base that the pull request fixes: success;
//   - accepted (acceptedBy set) after a failure: success, for this head
//     commit only.
//
// A comparison whose verdict is an error or inconclusive concludes as
// that, whatever its outcome.
func comparedOutcome(c *gate.Comparison, acceptedBy string) string {
	v := c.Verdict
	switch {
	case v == gate.Error || v == gate.Inconclusive:
		return string(v)
	case acceptedBy != "" && v == gate.Fail:
		return outcomeAccepted
	case c.Outcome == gate.OutcomeAlready:
		if c.Limits.AlreadyLeaking == "failure" {
			return string(gate.Fail)
		}
		return string(gate.Neutral)
	case c.Outcome == gate.OutcomeFixed && v == gate.Pass:
		return string(gate.Pass)
	case (c.Outcome == gate.OutcomeIntroduced || c.Outcome == gate.OutcomeWorse) && !c.Flake:
		return string(gate.Fail) // whatever the verdict says: fail closed
	}
	return string(v)
}
