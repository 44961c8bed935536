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

// A compared run concludes by what the pull request changed, never blaming
// it for its base, and fails closed.
func TestComparedConclusion(t *testing.T) {
	limits := gate.DefaultCompareLimits()
	strict := limits
	strict.AlreadyLeaking = "failure"
	for _, tc := range []struct {
		name       string
		c          gate.Comparison
		acceptedBy string
		check      string
	}{
		{"introduced", gate.Comparison{Outcome: gate.OutcomeIntroduced, Verdict: gate.Fail, Limits: limits}, "", "failure"},
		{"introduced, verdict says pass", gate.Comparison{Outcome: gate.OutcomeIntroduced, Verdict: gate.Pass, Limits: limits}, "", "failure"},
		{"worse", gate.Comparison{Outcome: gate.OutcomeWorse, Verdict: gate.Fail, Limits: limits}, "", "failure"},
		{"already, default", gate.Comparison{Outcome: gate.OutcomeAlready, Verdict: gate.Neutral, Limits: limits}, "", "neutral"},
		{"already, config says failure", gate.Comparison{Outcome: gate.OutcomeAlready, Verdict: gate.Fail, Limits: strict}, "", "failure"},
		{"fixed", gate.Comparison{Outcome: gate.OutcomeFixed, Verdict: gate.Pass, Limits: limits}, "", "success"},
		{"same", gate.Comparison{Outcome: gate.OutcomeSame, Verdict: gate.Pass, Limits: limits}, "", "success"},
		{"flake: the confirmation passed", gate.Comparison{Outcome: gate.OutcomeIntroduced, Verdict: gate.Pass, Flake: true, Limits: limits}, "", "success"},
		{"flake: the confirmation failed too", gate.Comparison{Outcome: gate.OutcomeIntroduced, Verdict: gate.Fail, Flake: true, Limits: limits}, "", "failure"},
		{"accepted", gate.Comparison{Outcome: gate.OutcomeIntroduced, Verdict: gate.Fail, Limits: limits}, "octocat", "success"},
		{"accepted, strict already", gate.Comparison{Outcome: gate.OutcomeAlready, Verdict: gate.Fail, Limits: strict}, "octocat", "success"},
		{"an error is not accepted", gate.Comparison{Outcome: gate.OutcomeUnjudged, Verdict: gate.Error, Limits: limits}, "octocat", "failure"},
		{"unjudged inconclusive", gate.Comparison{Outcome: gate.OutcomeUnjudged, Verdict: gate.Inconclusive, Limits: limits}, "", "failure"},
		{"unknown verdict", gate.Comparison{Outcome: gate.OutcomeSame, Verdict: "new", Limits: limits}, "", "failure"},
	} {
		check, _ := conclusion(comparedOutcome(&tc.c, tc.acceptedBy))
		if check != tc.check {
			t.Errorf("%s: %s, want %s", tc.name, check, tc.check)
		}
	}
	if check, status := conclusion(string(gate.Neutral)); check != "neutral" || status != "success" {
		t.Errorf("neutral: %s, %s", check, status)
	}
}
