package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
)

// Lifecycle tests of `memgate serve`: what happens around a gate (who may
// start one, with which config, and that every run and check run ends), not
// the gate's numbers. They run the real server, store, queue, checkout and
// config reading with a fake gate in place of the pipeline, so they need
// neither the gate lock nor a minute per gate.

// fakeGates stands in for the pipeline: it records what each gate was
// given and answers with behave, or a pass.
type fakeGates struct {
	mu     sync.Mutex
	seen   []config.Config
	behave func(ctx context.Context, opts pipeline.Options) pipeline.Result
}

func (f *fakeGates) gate(ctx context.Context, opts pipeline.Options) pipeline.Result {
	f.mu.Lock()
	f.seen = append(f.seen, opts.Config)
	behave := f.behave
	f.mu.Unlock()
	if behave != nil {
		return behave(ctx, opts)
	}
	return fakeResult(gate.Pass, "fake gate: pass")
}

func (f *fakeGates) configs() []config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]config.Config(nil), f.seen...)
}

func fakeResult(v gate.Verdict, reason string) pipeline.Result {
	now := time.Now().UTC()
	return pipeline.Result{Report: &gate.Report{Verdict: v, Reason: reason, StartedAt: now, FinishedAt: now}}
}

func withGate(f *fakeGates) func(*serveConfig) { return func(c *serveConfig) { c.gate = f.gate } }

// checksOf lists the check runs of a head, oldest first.
func checksOf(gh *fakeGitHub, head string) []*checkState {
	var out []*checkState
	for _, c := range gh.checkRuns() {
		if c.HeadSHA == head {
			out = append(out, c)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// describe shows check runs for a failure message.
func describe(checks []*checkState) string {
	var b strings.Builder
	for _, c := range checks {
		fmt.Fprintf(&b, "\n  check run %d: statuses %v, conclusion %q, title %q", c.ID, c.Statuses, c.Conclusion, c.Title)
	}
	return b.String()
}

// rerequested is a real check_suite (or check_run) rerequested payload for
// head, listing the pull requests prs (none, as for a fork's commits).
func rerequested(t *testing.T, event string, repo *testRepoDir, head string, prs []any) []byte {
	return payload(t, event+".rerequested", func(m map[string]any) {
		m["installation"] = map[string]any{"id": testInstallation}
		obj(m, "repository")["clone_url"] = repo.dir
		obj(m, "repository")["full_name"] = testRepo
		o := obj(m, event)
		o["head_sha"], o["pull_requests"] = head, prs
		if event == "check_run" {
			o["name"] = "memgate"
		}
	})
}

func apiPost(t *testing.T, base, path, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer api-secret")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	b, _ := json.Marshal(out)
	return resp.StatusCode, string(b)
}

// Item 4: "Re-run" on GitHub, "Re-run all checks" and the API cannot gate a
// fork's head commit that no maintainer approved; a fork's check suite
// lists no pull requests, yet its run is gated with its base's config.
func TestServeReRunsCannotBypassForkApproval(t *testing.T) {
	repo := newTestRepo(t)
	first := repo.pr(t, "fork-1", map[string]string{"README.md": "from a fork\n"})
	second := repo.pr(t, "fork-2", map[string]string{"README.md": "pushed again\n"})
	gh := newFakeGitHub(t)
	gates := &fakeGates{}
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1, withGate(gates))
	forked := func(action, head string, edit func(m map[string]any)) []byte {
		b := prPayload(t, action, repo, 21, head)
		var m map[string]any
		json.Unmarshal(b, &m)
		obj(m, "pull_request", "head")["repo"] = map[string]any{"full_name": "stranger/Hello-World", "clone_url": "https://github.com/stranger/Hello-World.git"}
		if edit != nil {
			edit(m)
		}
		out, _ := json.Marshal(m)
		return out
	}
	send := func(event, guid string, body []byte) delivered {
		t.Helper()
		return deliver(t, srv.url, event, guid, body, sign(body, testSecret))
	}
	body := forked("opened", first, nil)
	if d := send("pull_request", "f-open", body); d.Outcome != "needs_approval" {
		t.Fatalf("unapproved fork: %+v", d)
	}
	// The exploit: ask GitHub to re-run the check, or the whole suite (a
	// fork's suite lists no pull requests).
	for _, tc := range []struct{ event, guid string }{{"check_suite", "f-suite"}, {"check_run", "f-run"}} {
		d := send(tc.event, tc.guid, rerequested(t, tc.event, repo, first, []any{}))
		if d.Status != http.StatusAccepted || d.Outcome != "needs_approval" || d.RunID != 0 {
			t.Fatalf("%s rerequested of an unapproved fork head: %+v", tc.event, d)
		}
	}
	// Every check run for the head asks for the approval; none was queued.
	deadline := time.Now().Add(10 * time.Second)
	for len(checksOf(gh, first)) < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range checksOf(gh, first) {
		if c.Conclusion != "action_required" || !strings.Contains(c.Summary, "memgate/ok-to-test") || !strings.Contains(c.Summary, first[:7]) {
			t.Errorf("check run for an unapproved fork head: %+v", c)
		}
	}
	if n := len(checksOf(gh, first)); n != 3 {
		t.Errorf("%d check runs for the unapproved head, want 3 action_required", n)
	}
	// The API: a commit memgate never gated has no clone URL to take.
	if code, out := apiPost(t, srv.url, "/api/v1/runs", fmt.Sprintf(`{"repository":%q,"commit":%q}`, testRepo, first)); code != http.StatusUnprocessableEntity {
		t.Errorf("API run of an unapproved fork head: %d %s", code, out)
	}
	if runs := listRuns(t, srv.url, ""); len(runs) != 0 || len(gates.configs()) != 0 {
		t.Fatalf("a fork's code was queued without approval: %+v", runs)
	}

	// A maintainer approves the first head; the suite's re-run is gated,
	// with the base's config.
	body = forked("labeled", first, func(m map[string]any) {
		m["label"], m["sender"] = map[string]any{"name": "memgate/ok-to-test"}, map[string]any{"login": "maintainer"}
	})
	approved := send("pull_request", "f-label", body)
	if r := waitRun(t, srv.url, approved.RunID); r.Verdict != "pass" {
		t.Fatalf("approved head: %+v (%+v)", r, approved)
	}
	d := send("check_suite", "f-suite-2", rerequested(t, "check_suite", repo, first, []any{}))
	r := waitRun(t, srv.url, d.RunID)
	if d.Outcome != "queued" || r.Verdict != "pass" || r.BaseSHA != repo.base || r.Attempt != 1 {
		t.Fatalf("re-run of the approved head: %+v %+v", d, r)
	}
	// The approved head was gated beside its base (two gates); the re-run
	// reused the base's kept result (one more).
	cfgs := gates.configs()
	if len(cfgs) != 3 {
		t.Fatalf("%d gates for a pair and its re-run, want 3", len(cfgs))
	}
	for _, c := range cfgs {
		if c.Load.Duration != 8*time.Second {
			t.Fatalf("the fork suite's re-run was not gated with its base's config (load.duration 8s): %+v", cfgs)
		}
	}

	// A new push: the suite's re-run needs a new approval again; the API
	// refuses it unless told to approve, and says so.
	if d := send("pull_request", "f-push", forked("synchronize", second, nil)); d.Outcome != "needs_approval" {
		t.Fatalf("new push: %+v", d)
	}
	if d := send("check_suite", "f-suite-3", rerequested(t, "check_suite", repo, second, []any{})); d.Outcome != "needs_approval" {
		t.Fatalf("re-run of the new, unapproved head: %+v", d)
	}
	gh.mu.Lock()
	gh.pulls = map[int]map[string]any{21: {"number": 21,
		"head": map[string]any{"sha": second, "ref": "fork-2", "repo": map[string]any{"full_name": "stranger/Hello-World"}},
		"base": map[string]any{"sha": repo.base, "ref": "main", "repo": map[string]any{"full_name": testRepo}}}}
	gh.mu.Unlock()
	pr := fmt.Sprintf(`{"repository":%q,"pr":21}`, testRepo)
	if code, out := apiPost(t, srv.url, "/api/v1/runs", pr); code != http.StatusForbidden || !strings.Contains(out, "approve") {
		t.Fatalf("API run of the unapproved head: %d %s", code, out)
	}
	// Re-running the approved head's run is allowed: its approval covers it.
	if code, out := apiPost(t, srv.url, fmt.Sprintf("/api/v1/runs/%d/rerun", approved.RunID), ""); code != http.StatusAccepted {
		t.Fatalf("API re-run of the approved head: %d %s", code, out)
	}
	code, out := apiPost(t, srv.url, "/api/v1/runs", fmt.Sprintf(`{"repository":%q,"pr":21,"approve":true}`, testRepo))
	if code != http.StatusAccepted {
		t.Fatalf("API run that approves: %d %s", code, out)
	}
	// That approval, on record for the second head, lets GitHub's re-run
	// through too.
	if d := send("check_run", "f-run-2", rerequested(t, "check_run", repo, second, []any{})); d.Outcome != "queued" {
		t.Fatalf("re-run after the API approved: %+v", d)
	}
	for _, r := range listRuns(t, srv.url, "") {
		if r := waitRun(t, srv.url, r.ID); r.HeadSHA == "" || r.BaseSHA != repo.base {
			t.Errorf("run %+v", r)
		}
	}
}

// Item 4: a re-run of a commit of no pull request memgate knows is refused
// with a check that says why, not gated with default settings.
func TestServeReRunOfAnUnknownCommitIsRefused(t *testing.T) {
	repo := newTestRepo(t)
	head := repo.pr(t, "unknown", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	gates := &fakeGates{}
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1, withGate(gates))
	body := rerequested(t, "check_suite", repo, head, []any{})
	d := deliver(t, srv.url, "check_suite", "u-1", body, sign(body, testSecret))
	if d.Status != http.StatusAccepted || d.Outcome != "unknown_pull_request" || d.RunID != 0 {
		t.Fatalf("re-run of an unknown commit: %+v", d)
	}
	c := waitCheck(t, gh, head)
	if c.Conclusion != "action_required" || !strings.Contains(c.Summary, "knows no pull request") {
		t.Fatalf("check: %+v", c)
	}
	if runs := listRuns(t, srv.url, ""); len(runs) != 0 || len(gates.configs()) != 0 {
		t.Fatalf("gated: %+v", runs)
	}
}

// Item 5: a pull request opened against a branch whose .memgate.yml is
// loose passes; retargeted to main, it is gated again with main's config,
// and the newest check run on its head carries that verdict.
func TestServeRetargetedPullRequestIsGatedWithTheNewBase(t *testing.T) {
	repo := newTestRepo(t)
	// A branch whose config tolerates the service's leak.
	git(t, repo.dir, "checkout", "-q", "-b", "loose", repo.base)
	os.WriteFile(filepath.Join(repo.dir, ".memgate.yml"), []byte("load:\n  warmup: 2s\n  duration: 8s\n  cooldown: 3s\nthresholds:\n  goroutine_settle_tolerance: 100000\n"), 0o644)
	git(t, repo.dir, "commit", "-q", "-am", "loose gate")
	loose := git(t, repo.dir, "rev-parse", "HEAD")
	git(t, repo.dir, "checkout", "-q", "main")
	head := repo.pr(t, "leak", map[string]string{"README.md": "leaks 40 goroutines\n"})

	gh := newFakeGitHub(t)
	// The head's service leaves 40 goroutines behind (its base's does
	// not): the settle rule decides.
	gates := &fakeGates{behave: func(ctx context.Context, opts pipeline.Options) pipeline.Result {
		readme, _ := os.ReadFile(filepath.Join(opts.Dir, "README.md"))
		left := 0.0
		if strings.Contains(string(readme), "leaks 40") {
			left = 40
		}
		tol := opts.Config.Thresholds.GoroutineSettleTolerance
		res := fakeResult(gate.Pass, "fake gate: pass")
		settle := gate.Criterion{Name: gate.CritGoroutineSettle, Status: gate.StatusPass, Value: left, Limit: float64(tol), Unit: "goroutines", Comparison: "<="}
		if left > float64(tol) {
			res = fakeResult(gate.Fail, fmt.Sprintf("40 goroutines left after the load, tolerance %d", tol))
			settle.Status = gate.StatusFail
		}
		res.Report.Criteria = []gate.Criterion{settle}
		return res
	}}
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1, withGate(gates))
	opened := payload(t, "pull_request.opened", func(m map[string]any) {
		m["installation"] = map[string]any{"id": testInstallation}
		obj(m, "repository")["clone_url"] = repo.dir
		obj(m, "repository")["full_name"] = testRepo
		pr := obj(m, "pull_request")
		pr["number"], pr["draft"] = 31, false
		obj(pr, "head")["sha"] = head
		obj(pr, "base")["sha"], obj(pr, "base")["ref"] = loose, "loose"
	})
	d := deliver(t, srv.url, "pull_request", "rt-open", opened, sign(opened, testSecret))
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("against the loose branch: %+v", r)
	}
	if c := waitCheck(t, gh, head); c.Conclusion != "success" {
		t.Fatalf("check against the loose branch: %+v", c)
	}

	// Retargeted to main: GitHub sends edited with changes.base.
	var m map[string]any
	json.Unmarshal(prPayload(t, "opened", repo, 31, head), &m)
	m["action"] = "edited"
	obj(m, "pull_request", "base")["ref"] = "main"
	m["changes"] = map[string]any{"base": map[string]any{"ref": map[string]any{"from": "loose"}, "sha": map[string]any{"from": loose}}}
	edited, _ := json.Marshal(m)
	d = deliver(t, srv.url, "pull_request", "rt-edit", edited, sign(edited, testSecret))
	if d.Status != http.StatusAccepted || d.Outcome != "queued" {
		t.Fatalf("base change: %+v", d)
	}
	r := waitRun(t, srv.url, d.RunID)
	if r.Verdict != "fail" || r.BaseSHA != repo.base || r.BaseRef != "main" || r.Trigger != "pull_request.edited" {
		t.Fatalf("re-gate with main's config: %+v", r)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		checks := checksOf(gh, head)
		if last := checks[len(checks)-1]; len(checks) == 2 && last.Conclusion == "failure" && strings.Contains(last.Summary, "tolerance 5") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the newest check run does not carry main's verdict:%s", describe(checks))
		}
		time.Sleep(50 * time.Millisecond)
	}
	// An edit of the title or body changes nothing.
	m["changes"] = map[string]any{"title": map[string]any{"from": "old title"}}
	retitled, _ := json.Marshal(m)
	if d := deliver(t, srv.url, "pull_request", "rt-title", retitled, sign(retitled, testSecret)); d.Outcome != "ignored" {
		t.Fatalf("title edit: %+v", d)
	}
}

// Item 7: GitHub takes 11 s to answer each check-run creation (the worker
// used to wait 10 s for the server's, then make its own, and one of the two
// stayed queued for ever). Exactly one check run per run, and it completes.
func TestServeMakesOneCheckRunPerRunWhenGitHubIsSlow(t *testing.T) {
	repo := newTestRepo(t)
	head := repo.pr(t, "slow", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	gh.createDelay = 11 * time.Second
	gates := &fakeGates{}
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1, withGate(gates))
	body := prPayload(t, "opened", repo, 41, head)
	start := time.Now()
	d := deliver(t, srv.url, "pull_request", "slow-1", body, sign(body, testSecret))
	if d.Outcome != "queued" {
		t.Fatalf("delivery: %+v", d)
	}
	// The gate does not wait for GitHub.
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("run: %+v", r)
	}
	// The server's creation returns after 11 s, and the check completes;
	// a worker that gave up waiting would have asked for another at 10 s.
	deadline := time.Now().Add(30 * time.Second)
	for {
		checks := checksOf(gh, head)
		if len(checks) == 1 && checks[0].Conclusion == "success" && getRun(t, srv.url, d.RunID).CheckRunID == checks[0].ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check runs of the head:%s\nthe run stores check run %d", describe(checks), getRun(t, srv.url, d.RunID).CheckRunID)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Until(start.Add(12 * time.Second)))
	checks := checksOf(gh, head)
	if len(checks) != 1 || checks[0].Conclusion != "success" || strings.Count(strings.Join(checks[0].Statuses, " "), "completed") != 1 {
		t.Fatalf("12 s after the delivery (one check run, completed once):%s", describe(checks))
	}
	t.Logf("one check run, statuses %v, conclusion %s", checks[0].Statuses, checks[0].Conclusion)
}

// Item 6: a gate whose job fails on every attempt (here memgate itself
// panics while gating) is given up by the queue. The run used to stay
// running, its check in progress, and the reaper handed it to a new job at
// every retry; now it completes as an error that says what happened, and
// its check run completes.
func TestServeEndsARunWhoseJobTheQueueGaveUpOn(t *testing.T) {
	repo := newTestRepo(t)
	head := repo.pr(t, "panics", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	gates := &fakeGates{behave: func(context.Context, pipeline.Options) pipeline.Result {
		panic("attribution: index out of range [7] with length 7")
	}}
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1, withGate(gates),
		func(c *serveConfig) { c.lease = 3 * time.Second })
	body := prPayload(t, "opened", repo, 51, head)
	d := deliver(t, srv.url, "pull_request", "panic-1", body, sign(body, testSecret))
	deadline := time.Now().Add(60 * time.Second)
	var r apiRun
	for r = getRun(t, srv.url, d.RunID); r.Status != "completed"; r = getRun(t, srv.url, d.RunID) {
		if time.Now().After(deadline) {
			t.Fatalf("run still %s after 60 s: %+v", r.Status, r)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if r.Verdict != "error" || !strings.Contains(r.Reason, "failed on all 2 attempts") || !strings.Contains(r.Reason, "index out of range") {
		t.Fatalf("ended run: %+v", r)
	}
	c := waitCheck(t, gh, head)
	if c.Conclusion != "failure" || !strings.Contains(c.Summary, "failed on all 2 attempts") {
		t.Fatalf("check: %+v", c)
	}
	if n := len(checksOf(gh, head)); n != 1 {
		t.Errorf("%d check runs", n)
	}
	if n := len(gates.configs()); n != 2 {
		t.Errorf("the gate ran %d times, want 2 (the queue's attempts, no rescue)", n)
	}
	t.Logf("after %s: %s", time.Since(deadline.Add(-60*time.Second)).Round(100*time.Millisecond), r.Reason)
}

// Item 7: memgate stops while GitHub is still creating a run's check run.
// The stopping server lets the creation finish and stores its id, and the
// next server's worker completes that check run: no second one, no orphan.
func TestServeStoppedMidCreationLeavesNoOrphanCheckRun(t *testing.T) {
	repo := newTestRepo(t)
	head := repo.pr(t, "stop", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	gh.createDelay = 2 * time.Second
	db, key := filepath.Join(t.TempDir(), "memgate.db"), appKey(t)
	gates := &fakeGates{}
	srv := startServe(t, db, gh.srv.URL, key, 0, withGate(gates))
	body := prPayload(t, "opened", repo, 61, head)
	d := deliver(t, srv.url, "pull_request", "stop-1", body, sign(body, testSecret))
	if d.Outcome != "queued" {
		t.Fatalf("delivery: %+v", d)
	}
	// Stop once GitHub has the creation, its answer 2 s away.
	for start := time.Now(); len(checksOf(gh, head)) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the check run was never asked for")
		}
	}
	srv.stop()
	gh.mu.Lock()
	gh.createDelay = 0
	gh.mu.Unlock()
	srv = startServe(t, db, gh.srv.URL, key, 1, withGate(gates))
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("run: %+v", r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		checks := checksOf(gh, head)
		if len(checks) == 1 && checks[0].Conclusion == "success" && strings.Count(strings.Join(checks[0].Statuses, " "), "completed") == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check runs of the head:%s", describe(checks))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Item 7: GitHub creates the check run but its answer is lost (a 502), so
// the retried creation makes a second one. The first, which memgate never
// learnt the id of, is completed too: found by the run's id, which every
// check run of it carries as external_id.
func TestServeCompletesACheckRunWhoseCreationAnswerWasLost(t *testing.T) {
	repo := newTestRepo(t)
	head := repo.pr(t, "lost", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	gh.lostAnswers = 1
	gates := &fakeGates{}
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1, withGate(gates))
	body := prPayload(t, "opened", repo, 71, head)
	d := deliver(t, srv.url, "pull_request", "lost-1", body, sign(body, testSecret))
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("run: %+v", r)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		checks := checksOf(gh, head)
		done := len(checks) > 0
		for _, c := range checks {
			done = done && c.Conclusion == "success"
		}
		if done && len(checks) == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("check runs of the head:%s", describe(checks))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
