package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/runner"
	"github.com/memgate/memgate/storage"
)

// End-to-end tests of pull requests gated beside their base through
// `memgate serve`: real git repositories, GitHub's payloads, the fake
// GitHub, the real store, queue, checkouts and config reading, with a fake
// pair gate in place of gate/pair's orchestration (its numbers are tested
// there) that records what it was asked to measure.

// fakePair stands in for the compare orchestration: a base fails when it
// is one of leaky, and each head comes to the outcome outcomes gives it
// (else the same as its base). It counts the bases it measured, not
// reused.
type fakePair struct {
	mu       sync.Mutex
	measured []string // base SHAs gated, not reused
	reused   []int64  // runs whose kept base result was reused
	outcomes map[string]gate.Outcome
	leaky    map[string]bool
}

func (f *fakePair) gate(ctx context.Context, p runner.Pair) runner.PairResult {
	f.mu.Lock()
	outcome := f.outcomes[p.HeadSHA]
	base := p.Base.Stored
	if base == nil {
		f.measured = append(f.measured, p.Base.SHA)
	} else {
		f.reused = append(f.reused, p.Base.StoredRun)
	}
	f.mu.Unlock()
	if base == nil {
		// Measuring takes a while: a run on the same base meanwhile waits.
		time.Sleep(time.Second)
		base = fakeResult(gate.Pass, "fake base: pass").Report
		if f.leaky[p.Base.SHA] {
			base = fakeResult(gate.Fail, "fake base: goroutines grow").Report
		}
	}
	c := gate.Comparison{Outcome: gate.OutcomeSame, Verdict: gate.Pass, Headline: "no change beyond the noise",
		Base:   gate.RunRef{SHA: p.Base.SHA, Verdict: base.Verdict, Reason: base.Reason, Reused: p.Base.Stored != nil, RunID: p.Base.StoredRun, Report: base},
		Limits: gate.DefaultCompareLimits(),
		Rows: []gate.ComparisonRow{{Criterion: gate.CmpGoroutineGrowth, Base: 0.1, Head: 0.1, Limit: 2, Unit: "goroutines/1k requests",
			Status: gate.StatusPass}}}
	head := fakeResult(gate.Pass, "fake head: pass")
	switch outcome {
	case gate.OutcomeIntroduced:
		head = fakeResult(gate.Fail, "fake head: goroutines grow")
		c.Outcome, c.Verdict, c.Headline = outcome, gate.Fail, "goroutines grow: 40.00 /1k req more than the base"
		c.Rows[0].Head, c.Rows[0].Status = 40.1, gate.StatusFail
	case gate.OutcomeAlready:
		head = fakeResult(gate.Fail, "fake head: goroutines grow")
		c.Outcome, c.Verdict, c.Headline = outcome, gate.Neutral, "goroutines grow, as on the base"
	}
	c.Head = gate.RunRef{SHA: p.HeadSHA, Verdict: head.Report.Verdict, Reason: head.Report.Reason, Report: head.Report}
	return runner.PairResult{Comparison: c, Head: head}
}

func (f *fakePair) counts() ([]string, []int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.measured...), append([]int64(nil), f.reused...)
}

// acceptClick is GitHub's check_run requested_action payload for a click on
// the Accept button of check run id (of run runID, at head) by sender. The
// shared payloads have no requested_action example: this is their
// check_run.rerequested payload with GitHub's documented differences
// (action "requested_action", requested_action.identifier, the sender).
func acceptClick(t *testing.T, repo *testRepoDir, check *checkState, runID int64, sender string) []byte {
	return payload(t, "check_run.rerequested", func(m map[string]any) {
		m["action"] = "requested_action"
		m["requested_action"] = map[string]any{"identifier": "accept"}
		m["installation"] = map[string]any{"id": testInstallation}
		obj(m, "repository")["clone_url"] = repo.dir
		obj(m, "repository")["full_name"] = testRepo
		obj(m, "sender")["login"] = sender
		cr := obj(m, "check_run")
		cr["id"], cr["name"], cr["head_sha"] = check.ID, "memgate", check.HeadSHA
		cr["external_id"], cr["status"], cr["conclusion"] = strconv.FormatInt(runID, 10), "completed", check.Conclusion
	})
}

// waitConclusion waits until the newest check run of head concludes as want.
func waitConclusion(t *testing.T, gh *fakeGitHub, head, want string) *checkState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if c := checksOf(gh, head); len(c) > 0 && c[len(c)-1].Conclusion == want {
			return c[len(c)-1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s check run for %s: %s", want, head, describe(checksOf(gh, head)))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Two pull requests on one base at once, on two workers: the base is
// measured once and its result reused; a leak the pull request introduced
// fails with the Accept button, a leak already on the base does not blame
// the pull request. An Accept by a user without write permission is
// refused and recorded nowhere; by one with it, it is recorded with who,
// when and the head commit, and the check run turns to success; after a
// new push the old acceptance covers nothing and a click on the old check
// run is refused as stale.
func TestServeComparesWithTheBaseAndAccepts(t *testing.T) {
	repo := newTestRepo(t)
	leak := repo.pr(t, "leak", map[string]string{"README.md": "leaks\n"})
	same := repo.pr(t, "same", map[string]string{"README.md": "docs\n"})
	pushed := repo.pr(t, "leak-2", map[string]string{"README.md": "leaks, again\n"})
	// Another base, which leaks, and a pull request on it that does not
	// touch the leak.
	healthyBase := repo.base
	repo.base = repo.pr(t, "leaky-main", map[string]string{"README.md": "main, leaking\n"})
	already := repo.pr(t, "already", map[string]string{"CHANGELOG.md": "docs\n"})
	leakyBase := repo.base
	repo.base = healthyBase
	pair := &fakePair{outcomes: map[string]gate.Outcome{leak: gate.OutcomeIntroduced, already: gate.OutcomeAlready, pushed: gate.OutcomeIntroduced},
		leaky: map[string]bool{leakyBase: true}}
	gh := newFakeGitHub(t)
	gh.permissions = map[string]string{"mallory": "read", "octocat": "write", "hubot": "admin"}
	db := filepath.Join(t.TempDir(), "memgate.db")
	srv := startServe(t, db, gh.srv.URL, appKey(t), 2, withGate(&fakeGates{}), func(c *serveConfig) { c.pair = pair.gate })
	st, err := storage.Open(context.Background(), "sqlite:"+db, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	send := func(event, guid string, body []byte) delivered {
		t.Helper()
		d := deliver(t, srv.url, event, guid, body, sign(body, testSecret))
		if d.Status != http.StatusAccepted {
			t.Fatalf("%s %s: %+v", event, guid, d)
		}
		return d
	}

	d2 := send("pull_request", "pr2-open", prPayload(t, "opened", repo, 2, leak))
	d3 := send("pull_request", "pr3-open", prPayload(t, "opened", repo, 3, same))
	run2, run3 := waitRun(t, srv.url, d2.RunID), waitRun(t, srv.url, d3.RunID)
	if run2.Verdict != "fail" || run3.Verdict != "pass" {
		t.Fatalf("verdicts: #2 %+v, #3 %+v", run2, run3)
	}
	measured, reused := pair.counts()
	if len(measured) != 1 || measured[0] != repo.base || len(reused) != 1 {
		t.Fatalf("base measured %d times (%v), reused %v: want once, then reused", len(measured), measured, reused)
	}
	measuredBy := run2.ID
	if reused[0] == run2.ID {
		measuredBy = run3.ID
	}
	if reused[0] != run2.ID+run3.ID-measuredBy {
		t.Fatalf("reused the result of run %d; runs %d and %d", reused[0], run2.ID, run3.ID)
	}
	repo.base = leakyBase
	d5 := send("pull_request", "pr5-open", prPayload(t, "opened", repo, 5, already))
	repo.base = healthyBase
	if run5 := waitRun(t, srv.url, d5.RunID); run5.Verdict != "neutral" {
		t.Fatalf("a leak already on the base: %+v", run5)
	}
	check2, check3 := waitCheck(t, gh, leak), waitCheck(t, gh, already)
	if check2.Conclusion != "failure" || len(check2.Actions) != 1 || check2.Actions[0] != "accept" ||
		!strings.Contains(check2.Summary, "| goroutine growth vs base | 0.10 /1k req | 40.10 /1k req | +40.00 /1k req |") {
		t.Fatalf("introduced leak's check run: %+v", check2)
	}
	wantTitle := fmt.Sprintf("already leaks on master: fake base: goroutines grow, run %d", d5.RunID)
	if check3.Conclusion != "neutral" || check3.Title != wantTitle || len(check3.Actions) != 0 {
		t.Fatalf("already leaking base's check run: %+v, want title %q", check3, wantTitle)
	}

	// Mallory may only read: refused, saying why, nothing recorded, the
	// check as it was. Her click again (the same body) is decided again,
	// not taken for a replay.
	for _, guid := range []string{"accept-mallory", "accept-mallory-again"} {
		d := send("check_run", guid, acceptClick(t, repo, check2, run2.ID, "mallory"))
		if d.Outcome != "accept_refused" || !strings.Contains(d.Reason, `@mallory has "read" permission`) {
			t.Fatalf("Accept by a reader (%s): %+v", guid, d)
		}
	}
	if _, err := st.AcceptanceOf(context.Background(), testRepo, 2, leak, healthyBase); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused Accept was recorded: %v", err)
	}
	if c := waitCheck(t, gh, leak); c.Conclusion != "failure" {
		t.Fatalf("a refused Accept changed the check run: %+v", c)
	}

	// Octocat may write: recorded, and the check run succeeds.
	before := time.Now()
	if d := send("check_run", "accept-octocat", acceptClick(t, repo, check2, run2.ID, "octocat")); d.Outcome != "accepted" || d.RunID != run2.ID {
		t.Fatalf("Accept by a writer: %+v", d)
	}
	a, err := st.AcceptanceOf(context.Background(), testRepo, 2, leak, healthyBase)
	if err != nil || a.By != "octocat" || a.RunID != run2.ID || a.At.Before(before.Add(-time.Second)) {
		t.Fatalf("acceptance: %+v %v", a, err)
	}
	if c := waitConclusion(t, gh, leak, "success"); !strings.HasPrefix(c.Title, "accepted by @octocat: ") || c.ID != check2.ID ||
		len(c.Actions) != 0 {
		t.Fatalf("accepted check run (its Accept button must go): %+v", c)
	}
	var api struct {
		Comparison struct {
			Outcome string `json:"outcome"`
			Base    struct {
				Report *gate.Report `json:"report"`
			} `json:"base"`
		} `json:"comparison"`
		Accepted struct {
			By      string `json:"by"`
			HeadSHA string `json:"head_sha"`
		} `json:"accepted"`
	}
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/runs/%d", srv.url, run2.ID))
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&api)
	resp.Body.Close()
	if api.Comparison.Outcome != "introduced" || api.Comparison.Base.Report == nil || api.Accepted.By != "octocat" || api.Accepted.HeadSHA != leak {
		t.Fatalf("the API's run: %+v", api)
	}

	// A new push: gated and failing again, not covered by the acceptance;
	// a click on the old check run is refused as stale, even by an admin.
	d4 := send("pull_request", "pr2-push", prPayload(t, "synchronize", repo, 2, pushed))
	if r := waitRun(t, srv.url, d4.RunID); r.Verdict != "fail" {
		t.Fatalf("pushed head: %+v", r)
	}
	if c := waitCheck(t, gh, pushed); c.Conclusion != "failure" {
		t.Fatalf("the acceptance of the old head covered the new one: %+v", c)
	}
	if d := send("check_run", "accept-stale", acceptClick(t, repo, check2, run2.ID, "hubot")); d.Outcome != "accept_refused" ||
		!strings.Contains(d.Reason, "is no longer the head of #2") {
		t.Fatalf("Accept of a superseded head: %+v", d)
	}
	if _, err := st.AcceptanceOf(context.Background(), testRepo, 2, pushed, healthyBase); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the stale click accepted the new head: %v", err)
	}
	// A click naming a run that is not the check run's is refused too.
	forged := *check3
	if d := send("check_run", "accept-forged", acceptClick(t, repo, &forged, run2.ID, "hubot")); d.Outcome != "accept_refused" ||
		!strings.Contains(d.Reason, "is not one of memgate's runs") {
		t.Fatalf("Accept naming another head's run: %+v", d)
	}
	if measured, _ := pair.counts(); len(measured) != 2 {
		t.Errorf("%d bases measured for two bases (%v)", len(measured), measured)
	}
}
