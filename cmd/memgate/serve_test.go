package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testgit"
	"github.com/memgate/memgate/internal/testlock"
)

// End-to-end tests of `memgate serve`: real git repositories made here,
// real GitHub payloads (testdata/github-payloads) with the clone URL,
// commits and installation swapped in and signed, the server on a loopback
// port with SQLite in a temp dir, real gates, and an httptest GitHub that
// checks auth headers and records calls.

const (
	testSecret       = "memgate-test-webhook-secret"
	testInstallation = 42
	testToken        = "ghs_memgate_installation_token"
	testRepo         = "Codertocat/Hello-World"
)

// --- a fake GitHub ---------------------------------------------------------

type ghCall struct {
	Method, Path string
	Body         map[string]any
}

type fakeGitHub struct {
	t       *testing.T
	srv     *httptest.Server
	mu      sync.Mutex
	calls   []ghCall
	nextID  int64
	fail502 int // answer this many check-run calls with 502 first
	badAuth []string
	// tokenTTL is how long an installation token lives (an hour, as on
	// GitHub, unless a test shortens it); tokens are checked for expiry.
	tokenTTL time.Duration
	tokens   map[string]time.Time
	// createDelay holds every check-run creation's answer back this long
	// (GitHub has created it; the caller does not know yet).
	createDelay time.Duration
	// pulls answers GET /repos/{o}/{r}/pulls/{n}.
	pulls map[int]map[string]any
	// lostAnswers: this many check-run creations are carried out but
	// answered 502, as when GitHub's answer is lost on the way.
	lostAnswers int
	// permissions answers GET /repos/{o}/{r}/collaborators/{user}/permission
	// (a user not listed is not a collaborator: 404, as on GitHub).
	permissions map[string]string
}

var commitChecksPath = regexp.MustCompile(`^/repos/[^/]+/[^/]+/commits/([0-9a-f]+)/check-runs$`)

var checkRunPath = regexp.MustCompile(`^/repos/([^/]+)/([^/]+)/check-runs(?:/(\d+))?$`)

func newFakeGitHub(t *testing.T) *fakeGitHub {
	f := &fakeGitHub{t: t, nextID: 1000, tokenTTL: time.Hour, tokens: map[string]time.Time{}}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

var pullPath = regexp.MustCompile(`^/repos/[^/]+/[^/]+/pulls/(\d+)$`)

var permissionPath = regexp.MustCompile(`^/repos/[^/]+/[^/]+/collaborators/([^/]+)/permission$`)

func (f *fakeGitHub) serve(w http.ResponseWriter, r *http.Request) {
	rec := httptest.NewRecorder()
	delay := f.answer(rec, r)
	if delay > 0 {
		time.Sleep(delay)
	}
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	w.Write(rec.Body.Bytes())
}

// answer handles a call as GitHub would and says how long to hold the
// answer back.
func (f *fakeGitHub) answer(w http.ResponseWriter, r *http.Request) time.Duration {
	body, _ := io.ReadAll(r.Body)
	var m map[string]any
	json.Unmarshal(body, &m)
	f.mu.Lock()
	defer f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Path == fmt.Sprintf("/app/installations/%d/access_tokens", testInstallation) && r.Method == http.MethodPost {
		// The App authenticates with a JWT signed by its key.
		if !strings.HasPrefix(auth, "Bearer ") || strings.Count(auth, ".") != 2 {
			f.badAuth = append(f.badAuth, r.URL.Path+" "+auth)
			w.WriteHeader(http.StatusUnauthorized)
			return 0
		}
		token := fmt.Sprintf("%s_%d", testToken, len(f.tokens)+1)
		expires := time.Now().Add(f.tokenTTL)
		f.tokens[token] = expires
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"token":%q,"expires_at":%q}`, token, expires.UTC().Format(time.RFC3339))
		return 0
	}
	token, _ := strings.CutPrefix(auth, "token ")
	if expires, ok := f.tokens[token]; !ok || time.Now().After(expires) {
		f.badAuth = append(f.badAuth, r.Method+" "+r.URL.Path+" "+auth)
		w.WriteHeader(http.StatusUnauthorized)
		return 0
	}
	if pm := pullPath.FindStringSubmatch(r.URL.Path); pm != nil && r.Method == http.MethodGet {
		n, _ := strconv.Atoi(pm[1])
		pr, ok := f.pulls[n]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return 0
		}
		json.NewEncoder(w).Encode(pr)
		return 0
	}
	if pm := permissionPath.FindStringSubmatch(r.URL.Path); pm != nil && r.Method == http.MethodGet {
		perm, ok := f.permissions[pm[1]]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"message":"Not Found"}`)
			return 0
		}
		json.NewEncoder(w).Encode(map[string]any{"permission": perm, "user": map[string]any{"login": pm[1]}})
		return 0
	}
	if cm := commitChecksPath.FindStringSubmatch(r.URL.Path); cm != nil && r.Method == http.MethodGet {
		var list []map[string]any
		for _, c := range f.replay() {
			if c.HeadSHA == cm[1] && c.Name == r.URL.Query().Get("check_name") {
				status := "queued"
				if n := len(c.Statuses); n > 0 {
					status = c.Statuses[n-1]
				}
				list = append(list, map[string]any{"id": c.ID, "external_id": c.ExternalID, "status": status, "name": c.Name})
			}
		}
		json.NewEncoder(w).Encode(map[string]any{"total_count": len(list), "check_runs": list})
		return 0
	}
	sm := checkRunPath.FindStringSubmatch(r.URL.Path)
	if sm == nil {
		w.WriteHeader(http.StatusNotFound)
		return 0
	}
	if f.fail502 > 0 {
		f.fail502--
		w.WriteHeader(http.StatusBadGateway)
		return 0
	}
	if msg := badOutput(m); msg != "" {
		w.WriteHeader(http.StatusUnprocessableEntity)
		fmt.Fprintf(w, `{"message":%q}`, msg)
		return 0
	}
	f.calls = append(f.calls, ghCall{Method: r.Method, Path: r.URL.Path, Body: m})
	id, delay := int64(0), time.Duration(0)
	switch {
	case r.Method == http.MethodPost && sm[3] == "":
		f.nextID++
		id, delay = f.nextID, f.createDelay
		if f.lostAnswers > 0 {
			f.lostAnswers--
			w.WriteHeader(http.StatusBadGateway)
			return delay
		}
		w.WriteHeader(http.StatusCreated)
	case r.Method == http.MethodPatch && sm[3] != "":
		id, _ = strconv.ParseInt(sm[3], 10, 64)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return 0
	}
	fmt.Fprintf(w, `{"id":%d}`, id)
	return delay
}

// badOutput is why GitHub would refuse a check run's output: more than 50
// annotations in one request, an annotation without what GitHub requires,
// annotations without the output's title and summary. "" when it is good.
func badOutput(body map[string]any) string {
	o, _ := body["output"].(map[string]any)
	anns, _ := o["annotations"].([]any)
	if len(anns) == 0 {
		return ""
	}
	if len(anns) > 50 {
		return fmt.Sprintf("Invalid request. Only 50 annotations are allowed per request; got %d", len(anns))
	}
	if str(o["title"]) == "" || str(o["summary"]) == "" {
		return "Invalid request. output.title and output.summary are required"
	}
	for _, a := range anns {
		m, _ := a.(map[string]any)
		start, _ := m["start_line"].(float64)
		end, _ := m["end_line"].(float64)
		level := str(m["annotation_level"])
		if str(m["path"]) == "" || start < 1 || end < start || str(m["message"]) == "" ||
			(level != "notice" && level != "warning" && level != "failure") {
			return fmt.Sprintf("Invalid request. Bad annotation %v", m)
		}
	}
	return ""
}

// checkRun replays the calls about one check run: its final state.
type checkState struct {
	ID                              int64
	HeadSHA, Name, ExternalID       string
	Statuses                        []string
	Conclusion, Title, Summary, URL string
	// Annotations add up over the calls, as on GitHub; Batches is how many
	// each call carried.
	Annotations []map[string]any
	Batches     []int
	Actions     []string // the buttons' identifiers, as last sent
}

func (f *fakeGitHub) checkRuns() map[int64]*checkState {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.replay()
}

// replay is checkRuns with f.mu held.
func (f *fakeGitHub) replay() map[int64]*checkState {
	out := map[int64]*checkState{}
	created := int64(1000)
	for _, c := range f.calls {
		var st *checkState
		if c.Method == http.MethodPost {
			created++
			st = &checkState{ID: created, HeadSHA: str(c.Body["head_sha"]), Name: str(c.Body["name"]), ExternalID: str(c.Body["external_id"])}
			out[created] = st
		} else {
			id, _ := strconv.ParseInt(c.Path[strings.LastIndex(c.Path, "/")+1:], 10, 64)
			if st = out[id]; st == nil {
				st = &checkState{ID: id}
				out[id] = st
			}
		}
		if s := str(c.Body["status"]); s != "" {
			st.Statuses = append(st.Statuses, s)
		}
		if s := str(c.Body["conclusion"]); s != "" {
			st.Conclusion = s
		}
		if s := str(c.Body["details_url"]); s != "" {
			st.URL = s
		}
		if o, ok := c.Body["output"].(map[string]any); ok {
			st.Title, st.Summary = str(o["title"]), str(o["summary"])
			if anns, _ := o["annotations"].([]any); len(anns) > 0 {
				st.Batches = append(st.Batches, len(anns))
				for _, a := range anns {
					st.Annotations = append(st.Annotations, a.(map[string]any))
				}
			}
		}
		if acts, ok := c.Body["actions"].([]any); ok {
			st.Actions = nil
			for _, a := range acts {
				st.Actions = append(st.Actions, str(a.(map[string]any)["identifier"]))
			}
		}
	}
	return out
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// --- a repository with pull requests ----------------------------------------

type testRepoDir struct {
	dir  string
	base string // base commit: healthy service and the gate config
}

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return testgit.Git(t, dir, args...)
}

func readExample(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("..", "..", "examples", name, "main.go"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// newTestRepo makes a repository whose base commit holds the healthy JSON
// service and a short gate config.
func newTestRepo(t *testing.T) *testRepoDir {
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module example.com/shop\n\ngo 1.22\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "main.go"), []byte(readExample(t, "healthy-json")), 0o644)
	os.WriteFile(filepath.Join(dir, ".memgate.yml"), []byte("load:\n  warmup: 2s\n  duration: 8s\n  cooldown: 3s\n"), 0o644)
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "base")
	return &testRepoDir{dir: dir, base: git(t, dir, "rev-parse", "HEAD")}
}

// pr commits a change on a branch off the base and returns its sha.
func (r *testRepoDir) pr(t *testing.T, branch string, files map[string]string) string {
	git(t, r.dir, "checkout", "-q", "-B", branch, r.base)
	for name, content := range files {
		os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644)
	}
	git(t, r.dir, "add", "-A")
	git(t, r.dir, "commit", "-q", "--allow-empty", "-m", branch)
	sha := git(t, r.dir, "rev-parse", "HEAD")
	git(t, r.dir, "checkout", "-q", "main")
	return sha
}

// --- payloads -------------------------------------------------------------

func payload(t *testing.T, name string, edit func(m map[string]any)) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "server", "testdata", "github-payloads", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// GitHub's examples are from 2019: give them today's event time, as a
	// real delivery has, or memgate refuses them as stale. Two events are
	// two bodies even within a second (memgate refuses a body it has seen
	// under another delivery id as a replay): the time is to the nanosecond.
	for _, key := range []string{"pull_request", "check_suite"} {
		if o, ok := m[key].(map[string]any); ok {
			o["updated_at"] = time.Now().UTC().Format(time.RFC3339Nano)
		}
	}
	edit(m)
	out, _ := json.Marshal(m)
	return out
}

func obj(m map[string]any, path ...string) map[string]any {
	for _, p := range path {
		m = m[p].(map[string]any)
	}
	return m
}

func prPayload(t *testing.T, action string, repo *testRepoDir, number int, head string) []byte {
	return payload(t, "pull_request."+action, func(m map[string]any) {
		m["installation"] = map[string]any{"id": testInstallation}
		obj(m, "repository")["clone_url"] = repo.dir
		obj(m, "repository")["full_name"] = testRepo
		pr := obj(m, "pull_request")
		pr["number"], pr["draft"] = number, false
		obj(pr, "head")["sha"] = head
		obj(pr, "base")["sha"] = repo.base
		m["number"] = number
	})
}

func sign(body []byte, secret string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

type delivered struct {
	Status  int
	Outcome string `json:"outcome"`
	RunID   int64  `json:"run_id"`
	Error   string `json:"error"`
	Reason  string `json:"reason"`
}

func deliver(t *testing.T, base, event, guid string, body []byte, signature string) delivered {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/webhook", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", guid)
	if signature != "" {
		req.Header.Set("X-Hub-Signature-256", signature)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d delivered
	json.NewDecoder(resp.Body).Decode(&d)
	d.Status = resp.StatusCode
	return d
}

// --- the server -----------------------------------------------------------

type testServer struct {
	url  string
	stop func()
}

func appKey(t *testing.T) string {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "app.pem")
	os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	return path
}

// startServe starts `memgate serve` with workers gates at a time; opts
// change its settings before it starts.
func startServe(t *testing.T, db, github, key string, workers int, opts ...func(*serveConfig)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	c := &serveConfig{addr: addr, databaseURL: "sqlite:" + db, webhookSecret: testSecret, apiURL: github + "/",
		appID: 7, appKeyFile: key, publicURL: "https://memgate.example", apiToken: "api-secret",
		workDir: t.TempDir(), workers: workers, allowLocalRepos: true, jobTimeout: 30 * time.Minute, rescueAfter: 31 * time.Minute, lease: time.Minute}
	for _, o := range opts {
		o(c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	go func() { done <- serve(ctx, c, os.Getenv, log) }()
	base := "http://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(base + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	stopped := false
	ts := &testServer{url: base, stop: func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	}}
	t.Cleanup(ts.stop)
	return ts
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

type apiRun struct {
	ID         int64  `json:"id"`
	Status     string `json:"status"`
	Verdict    string `json:"verdict"`
	Reason     string `json:"reason"`
	Attempt    int    `json:"attempt"`
	HeadSHA    string `json:"head_sha"`
	CheckRunID int64  `json:"check_run_id"`
	Trigger    string `json:"trigger"`
	BaseSHA    string `json:"base_sha"`
	BaseRef    string `json:"base_ref"`
}

func getRun(t *testing.T, base string, id int64) apiRun {
	t.Helper()
	resp, err := http.Get(fmt.Sprintf("%s/api/v1/runs/%d", base, id))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Run apiRun `json:"run"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return out.Run
}

func listRuns(t *testing.T, base, query string) []apiRun {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/runs?" + query)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		Runs []apiRun `json:"runs"`
	}
	json.NewDecoder(resp.Body).Decode(&out)
	return out.Runs
}

func waitRun(t *testing.T, base string, id int64) apiRun {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for {
		r := getRun(t, base, id)
		if r.Status == "completed" || r.Status == "cancelled" {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d still %s", id, r.Status)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// waitCheck waits until the check run of a head is completed on GitHub.
func waitCheck(t *testing.T, gh *fakeGitHub, head string) *checkState {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var last *checkState
		for _, c := range gh.checkRuns() {
			if c.HeadSHA == head && c.Conclusion != "" {
				last = c
			}
		}
		if last != nil {
			return last
		}
		if time.Now().After(deadline) {
			t.Fatalf("no completed check run for %s; calls: %+v", head, gh.checkRuns())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func skipShort(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real gates through the server")
	}
	testlock.Gate(t)
}

// --- the tests ----------------------------------------------------------

func TestServeGatesPullRequestsAndReportsChecks(t *testing.T) {
	skipShort(t)
	repo := newTestRepo(t)
	leak := repo.pr(t, "leak", map[string]string{
		"main.go": readExample(t, "goroutine-leak"),
		// A PR cannot loosen its own gate: the base's config is used.
		".memgate.yml": "load:\n  warmup: 2s\n  duration: 8s\n  cooldown: 3s\nthresholds:\n  goroutine_settle_tolerance: 1000000\n  goroutine_growth_total: 1000000\n  heap_growth_total_bytes: 1000000000\n  heap_fluctuation: 100\n",
	})
	healthy := repo.pr(t, "healthy", map[string]string{"README.md": "docs only\n"})
	gh := newFakeGitHub(t)
	gh.fail502 = 2 // the first calls fail: they must be retried
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1)

	body := prPayload(t, "opened", repo, 2, leak)
	d := deliver(t, srv.url, "pull_request", "guid-leak-1", body, sign(body, testSecret))
	if d.Status != http.StatusAccepted || d.Outcome != "queued" || d.RunID == 0 {
		t.Fatalf("delivery: %+v", d)
	}
	// A redelivery (same GUID) runs nothing twice.
	if d2 := deliver(t, srv.url, "pull_request", "guid-leak-1", body, sign(body, testSecret)); d2.Status != http.StatusAccepted || d2.Outcome != "duplicate" {
		t.Fatalf("redelivery: %+v", d2)
	}
	run := waitRun(t, srv.url, d.RunID)
	if run.Verdict != "fail" || !strings.Contains(run.Reason, "main.main.handleOrder.func1.1") {
		t.Fatalf("leaking PR: %+v", run)
	}
	check := waitCheck(t, gh, leak)
	if check.Conclusion != "failure" || !strings.Contains(check.Title, "in main.main.handleOrder.func1.1") {
		t.Fatalf("check run: %+v", check)
	}
	if !containsInOrder(check.Statuses, "in_progress", "completed") {
		t.Errorf("check statuses %v, want in_progress then completed", check.Statuses)
	}
	if !strings.Contains(check.Summary, "goroutine settle") || check.URL != fmt.Sprintf("https://memgate.example/runs/%d", run.ID) {
		t.Errorf("summary/link: %q %q", check.Summary, check.URL)
	}
	if runs := listRuns(t, srv.url, "repository="+testRepo+"&pr=2"); len(runs) != 1 {
		t.Fatalf("%d runs of PR 2 after a redelivery, want 1", len(runs))
	}

	// "Re-run" on GitHub gates the same head again.
	rr := payload(t, "check_run.rerequested", func(m map[string]any) {
		m["installation"] = map[string]any{"id": testInstallation}
		obj(m, "repository")["clone_url"] = repo.dir
		obj(m, "repository")["full_name"] = testRepo
		cr := obj(m, "check_run")
		cr["name"], cr["head_sha"] = "memgate", leak
	})
	d = deliver(t, srv.url, "check_run", "guid-rerun-1", rr, sign(rr, testSecret))
	if d.Status != http.StatusAccepted || d.Outcome != "queued" {
		t.Fatalf("rerequest: %+v", d)
	}
	rerun := waitRun(t, srv.url, d.RunID)
	if rerun.Attempt != 1 || rerun.Verdict != "fail" || rerun.Trigger != "check_run.rerequested" {
		t.Fatalf("re-run: %+v", rerun)
	}

	// A healthy PR succeeds.
	body = prPayload(t, "opened", repo, 3, healthy)
	d = deliver(t, srv.url, "pull_request", "guid-healthy-1", body, sign(body, testSecret))
	if run := waitRun(t, srv.url, d.RunID); run.Verdict != "pass" {
		t.Fatalf("healthy PR: %+v", run)
	}
	if check := waitCheck(t, gh, healthy); check.Conclusion != "success" {
		t.Fatalf("healthy check: %+v", check)
	}

	// "Re-run all checks" (check_suite rerequested) does the same.
	cs := payload(t, "check_suite.rerequested", func(m map[string]any) {
		m["installation"] = map[string]any{"id": testInstallation}
		obj(m, "repository")["clone_url"] = repo.dir
		obj(m, "repository")["full_name"] = testRepo
		suite := obj(m, "check_suite")
		suite["head_sha"] = healthy
		pr := suite["pull_requests"].([]any)[0].(map[string]any)
		pr["number"] = 3
		obj(pr, "base")["sha"] = repo.base
	})
	d = deliver(t, srv.url, "check_suite", "guid-suite-1", cs, sign(cs, testSecret))
	if run := waitRun(t, srv.url, d.RunID); run.Verdict != "pass" || run.Attempt != 1 || run.Trigger != "check_suite.rerequested" {
		t.Fatalf("suite re-run: %+v (%+v)", run, d)
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if len(gh.badAuth) > 0 {
		t.Errorf("calls without the right credentials: %v", gh.badAuth)
	}
}

func TestServeSupersedesOlderHeadsAndCancelsOnClose(t *testing.T) {
	skipShort(t)
	repo := newTestRepo(t)
	first := repo.pr(t, "pr-first", map[string]string{"README.md": "one\n"})
	second := repo.pr(t, "pr-second", map[string]string{"README.md": "two\n"})
	third := repo.pr(t, "pr-third", map[string]string{"README.md": "three\n"})
	gh := newFakeGitHub(t)
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1)

	b1 := prPayload(t, "opened", repo, 5, first)
	d1 := deliver(t, srv.url, "pull_request", "guid-s1", b1, sign(b1, testSecret))
	b2 := prPayload(t, "synchronize", repo, 5, second)
	d2 := deliver(t, srv.url, "pull_request", "guid-s2", b2, sign(b2, testSecret))
	if d1.Outcome != "queued" || d2.Outcome != "queued" {
		t.Fatalf("deliveries %+v %+v", d1, d2)
	}
	if r := waitRun(t, srv.url, d1.RunID); r.Status != "cancelled" || !strings.Contains(r.Reason, "superseded by "+second[:7]) {
		t.Fatalf("older head: %+v", r)
	}
	if r := waitRun(t, srv.url, d2.RunID); r.Verdict != "pass" {
		t.Fatalf("newer head: %+v", r)
	}
	if c := waitCheck(t, gh, first); c.Conclusion != "cancelled" {
		t.Fatalf("older head's check: %+v", c)
	}

	// Closing the PR cancels its gate in flight.
	b3 := prPayload(t, "synchronize", repo, 5, third)
	d3 := deliver(t, srv.url, "pull_request", "guid-s3", b3, sign(b3, testSecret))
	bc := prPayload(t, "closed", repo, 5, third)
	if dc := deliver(t, srv.url, "pull_request", "guid-s4", bc, sign(bc, testSecret)); dc.Outcome != "cancelled" {
		t.Fatalf("close: %+v", dc)
	}
	if r := waitRun(t, srv.url, d3.RunID); r.Status != "cancelled" {
		t.Fatalf("closed PR's run: %+v", r)
	}
	if c := waitCheck(t, gh, third); c.Conclusion != "cancelled" {
		t.Fatalf("closed PR's check: %+v", c)
	}
}

// A fork's pull request is not built until a maintainer approves its head
// commit with the label; a new push needs a new approval.
func TestServeGatesForksOnlyWhenApproved(t *testing.T) {
	skipShort(t)
	repo := newTestRepo(t)
	first := repo.pr(t, "fork-1", map[string]string{"README.md": "from a fork\n"})
	second := repo.pr(t, "fork-2", map[string]string{"README.md": "pushed again\n"})
	gh := newFakeGitHub(t)
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1)
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
	label := func(name string) func(m map[string]any) {
		return func(m map[string]any) {
			m["action"] = "labeled"
			m["label"] = map[string]any{"name": name}
			m["sender"] = map[string]any{"login": "maintainer"}
		}
	}
	body := forked("opened", first, nil)
	if d := deliver(t, srv.url, "pull_request", "fork-1", body, sign(body, testSecret)); d.Outcome != "needs_approval" || d.RunID != 0 {
		t.Fatalf("unapproved fork: %+v", d)
	}
	if c := waitCheck(t, gh, first); c.Conclusion != "action_required" || !strings.Contains(c.Summary, "memgate/ok-to-test") {
		t.Fatalf("approval check: %+v", c)
	}
	body = forked("opened", first, label("bug"))
	if d := deliver(t, srv.url, "pull_request", "fork-2", body, sign(body, testSecret)); d.Outcome != "ignored" {
		t.Fatalf("another label: %+v", d)
	}
	if runs := listRuns(t, srv.url, ""); len(runs) != 0 {
		t.Fatalf("a fork's code was queued without approval: %+v", runs)
	}
	body = forked("opened", first, label("memgate/ok-to-test"))
	d := deliver(t, srv.url, "pull_request", "fork-3", body, sign(body, testSecret))
	if d.Outcome != "queued" {
		t.Fatalf("approved: %+v", d)
	}
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("approved fork gate: %+v", r)
	}
	// A new push is a new commit nobody approved.
	body = forked("synchronize", second, nil)
	if d := deliver(t, srv.url, "pull_request", "fork-4", body, sign(body, testSecret)); d.Outcome != "needs_approval" {
		t.Fatalf("new push: %+v", d)
	}
}

// Installation tokens that expire during a gate are refreshed: with tokens
// that live 40 s (ghinstallation renews a token in its last minute), every
// call gets a fresh one and none is refused as expired.
func TestServeRefreshesExpiringInstallationTokens(t *testing.T) {
	skipShort(t)
	repo := newTestRepo(t)
	head := repo.pr(t, "pr", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	gh.tokenTTL = 40 * time.Second
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 1)
	body := prPayload(t, "opened", repo, 6, head)
	d := deliver(t, srv.url, "pull_request", "tokens-1", body, sign(body, testSecret))
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("run %+v", r)
	}
	if c := waitCheck(t, gh, head); c.Conclusion != "success" {
		t.Fatalf("check %+v", c)
	}
	gh.mu.Lock()
	defer gh.mu.Unlock()
	if len(gh.tokens) < 2 {
		t.Errorf("%d installation tokens issued: short-lived tokens were not refreshed", len(gh.tokens))
	}
	if len(gh.badAuth) > 0 {
		t.Errorf("calls refused: %v", gh.badAuth)
	}
}

func TestServeRestartLosesNoQueuedGate(t *testing.T) {
	skipShort(t)
	repo := newTestRepo(t)
	head := repo.pr(t, "pr", map[string]string{"README.md": "x\n"})
	gh := newFakeGitHub(t)
	db, key := filepath.Join(t.TempDir(), "memgate.db"), appKey(t)

	// A server that runs no gates takes the delivery and stops.
	srv := startServe(t, db, gh.srv.URL, key, 0)
	body := prPayload(t, "opened", repo, 9, head)
	d := deliver(t, srv.url, "pull_request", "guid-restart", body, sign(body, testSecret))
	if d.Outcome != "queued" {
		t.Fatalf("delivery: %+v", d)
	}
	srv.stop()

	srv = startServe(t, db, gh.srv.URL, key, 1)
	if r := waitRun(t, srv.url, d.RunID); r.Verdict != "pass" {
		t.Fatalf("after restart: %+v", r)
	}
	if c := waitCheck(t, gh, head); c.Conclusion != "success" {
		t.Fatalf("check: %+v", c)
	}
}

func TestServeRefusesBadDeliveriesAndStoresNothing(t *testing.T) {
	gh := newFakeGitHub(t)
	db := filepath.Join(t.TempDir(), "memgate.db")
	srv := startServe(t, db, gh.srv.URL, appKey(t), 0)
	repo := &testRepoDir{dir: "/nonexistent", base: strings.Repeat("a", 40)}
	body := prPayload(t, "opened", repo, 1, strings.Repeat("b", 40))

	for _, tc := range []struct {
		name   string
		body   []byte
		sig    string
		status int
	}{
		{"no signature", body, "", http.StatusUnauthorized},
		{"wrong secret", body, sign(body, "not-the-secret"), http.StatusUnauthorized},
		{"tampered body", append(bytes.Clone(body[:len(body)-1]), ' ', '}'), sign(body, testSecret), http.StatusUnauthorized},
		{"malformed JSON", []byte(`{"action": "opened", `), sign([]byte(`{"action": "opened", `), testSecret), http.StatusBadRequest},
		{"oversized", bytes.Repeat([]byte(" "), 26<<20), sign(bytes.Repeat([]byte(" "), 26<<20), testSecret), http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := deliver(t, srv.url, "pull_request", "guid-"+tc.name, tc.body, tc.sig); d.Status != tc.status {
				t.Fatalf("status %d (%s), want %d", d.Status, d.Error, tc.status)
			}
		})
	}
	ping := payload(t, "ping", func(map[string]any) {})
	if d := deliver(t, srv.url, "ping", "guid-ping", ping, sign(ping, testSecret)); d.Status != http.StatusOK {
		t.Fatalf("ping: %+v", d)
	}
	if runs := listRuns(t, srv.url, ""); len(runs) != 0 {
		t.Fatalf("bad deliveries stored %d runs", len(runs))
	}
	resp, _ := http.Get(srv.url + "/metrics")
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`memgate_webhook_deliveries_total{outcome="bad_signature"} 3`, `memgate_webhook_deliveries_total{outcome="too_large"} 1`,
		`memgate_webhook_deliveries_total{outcome="malformed"} 1`, `memgate_webhook_deliveries_total{outcome="ping"} 1`, `memgate_runs{verdict="pass"} 0`} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestServeAPIWritesNeedTheToken(t *testing.T) {
	gh := newFakeGitHub(t)
	srv := startServe(t, filepath.Join(t.TempDir(), "memgate.db"), gh.srv.URL, appKey(t), 0)
	post := func(path, token, body string) int {
		req, _ := http.NewRequest(http.MethodPost, srv.url+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := post("/api/v1/runs", "", `{"repository":"a/b","pr":1}`); s != http.StatusUnauthorized {
		t.Errorf("no token: %d", s)
	}
	if s := post("/api/v1/runs", "wrong", `{"repository":"a/b","pr":1}`); s != http.StatusUnauthorized {
		t.Errorf("wrong token: %d", s)
	}
	if s := post("/api/v1/runs/1/rerun", "", ""); s != http.StatusUnauthorized {
		t.Errorf("rerun without token: %d", s)
	}
	if s := post("/api/v1/runs", "api-secret", `{"repository":"not a repo"}`); s != http.StatusBadRequest {
		t.Errorf("bad request: %d", s)
	}
	if s := post("/api/v1/runs/999/rerun", "api-secret", ""); s != http.StatusNotFound {
		t.Errorf("rerun of a missing run: %d", s)
	}
	resp, _ := http.Get(srv.url + "/api/v1/runs/12345")
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing run: %d", resp.StatusCode)
	}
	resp.Body.Close()
}

func TestServeRefusesEverythingWithoutASecret(t *testing.T) {
	gh := newFakeGitHub(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	c := &serveConfig{addr: addr, databaseURL: "sqlite:" + filepath.Join(t.TempDir(), "m.db"), apiURL: gh.srv.URL,
		workers: 0, jobTimeout: time.Minute, rescueAfter: 2 * time.Minute, lease: time.Minute}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	var logs bytes.Buffer
	var mu sync.Mutex
	go func() {
		done <- serve(ctx, c, os.Getenv, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil)))
	}()
	defer func() { cancel(); <-done }()
	var d delivered
	for i := 0; i < 100; i++ {
		time.Sleep(50 * time.Millisecond)
		body := []byte(`{"zen":"x"}`)
		req, _ := http.NewRequest(http.MethodPost, "http://"+addr+"/webhook", bytes.NewReader(body))
		req.Header.Set("X-Hub-Signature-256", sign(body, ""))
		req.Header.Set("X-GitHub-Event", "ping")
		req.Header.Set("X-GitHub-Delivery", "g")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			continue
		}
		d.Status = resp.StatusCode
		resp.Body.Close()
		break
	}
	if d.Status != http.StatusUnauthorized {
		t.Fatalf("status %d without a configured secret", d.Status)
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logs.String(), "MEMGATE_WEBHOOK_SECRET is not set") {
		t.Errorf("the log does not say why: %s", logs.String())
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func containsInOrder(list []string, want ...string) bool {
	i := 0
	for _, s := range list {
		if i < len(want) && s == want[i] {
			i++
		}
	}
	return i == len(want)
}
