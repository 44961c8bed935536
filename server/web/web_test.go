package web

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/internal/golden"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/storage"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// fixedNow makes "ago" and durations stable in golden files.
var fixedNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

const testToken = "page-test-token"

type fakeRerunner struct {
	store  *storage.Store
	calls  []int64
	refuse error // the server's answer, when it refuses the re-run
}

func (f *fakeRerunner) Rerun(ctx context.Context, id int64) (int64, error) {
	f.calls = append(f.calls, id)
	if f.refuse != nil {
		return 0, f.refuse
	}
	prev, err := f.store.Run(ctx, id)
	if err != nil {
		return 0, err
	}
	prev.Attempt++
	prev.Trigger, prev.RerunOf, prev.Status = "api.rerun", id, gate.RunQueued
	return f.store.CreateRun(ctx, nil, prev)
}

type testBundle struct {
	store  *storage.Store
	pages  *Pages
	rerun  *fakeRerunner
	srv    *httptest.Server
	ids    map[string]int64
	client *http.Client
}

func setup(t *testing.T, seed bool) *testBundle {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "pages.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rr := &fakeRerunner{store: st}
	auth, err := access.New(access.Config{APIToken: testToken}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(Config{APIToken: testToken, StatusOf: func(err error) int {
		if errors.Is(err, errTestRefused) {
			return http.StatusForbidden
		}
		return http.StatusInternalServerError
	}}, auth, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.now = func() time.Time { return fixedNow }
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	p.Register(r)
	r.NoRoute(p.NotFound)
	// The API route the live script polls, as the server has it.
	r.GET("/api/v1/runs/:id", func(c *gin.Context) {
		var id int64
		fmt.Sscan(c.Param("id"), &id)
		run, err := st.Run(c.Request.Context(), id)
		if err != nil {
			c.JSON(http.StatusNotFound, gin.H{"error": err.Error()})
			return
		}
		c.JSON(http.StatusOK, gin.H{"run": run})
	})
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	b := &testBundle{store: st, pages: p, rerun: rr, srv: srv, ids: map[string]int64{}, client: noRedirect()}
	if seed {
		b.seed(t)
	}
	return b
}

func noRedirect() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func loadReport(t *testing.T, name string) *gate.Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var r gate.Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// seed stores runs like a real server's: a failing and a passing PR, a
// running gate, a queued one with a very long repository name.
func (b *testBundle) seed(t *testing.T) {
	ctx := context.Background()
	add := func(key string, run gate.Run, rep *gate.Report, started, finished time.Time) {
		run.CloneURL = "https://github.com/" + run.Repository + ".git"
		// Public, as GitHub's deliveries would have said: these pages are
		// what everyone sees.
		if err := b.store.SetVisibility(ctx, nil, run.Repository, false); err != nil {
			t.Fatal(err)
		}
		id, err := b.store.CreateRun(ctx, nil, run)
		if err != nil {
			t.Fatal(err)
		}
		if rep != nil {
			b.store.MarkRunning(ctx, id, started)
			if _, err := b.store.Complete(ctx, id, 0, rep, map[string][]byte{"heap-end.pb.gz": []byte("x"), "heap-warmup.pb.gz": []byte("y")}); err != nil {
				t.Fatal(err)
			}
		}
		_, err = b.store.DB().ExecContext(ctx, `UPDATE runs SET started_at = ?, finished_at = ? WHERE id = ?`,
			msOrZero(started), msOrZero(finished), id)
		if err != nil {
			t.Fatal(err)
		}
		b.ids[key] = id
	}
	t0 := fixedNow.Add(-3 * time.Hour)
	add("fail", gate.Run{Repository: "acme/orders-service", PR: 12, HeadSHA: "4f2a9c1e0b7d3a5f6e8c9d0a1b2c3d4e5f6a7b8c", BaseSHA: "1111111111111111111111111111111111111111",
		HeadRef: "feature/async-confirmations", Trigger: "pull_request.synchronize", CreatedAt: t0},
		loadReport(t, "report-goroutine-leak.json"), t0.Add(2*time.Second), t0.Add(40*time.Second))
	add("pass", gate.Run{Repository: "acme/orders-service", PR: 13, HeadSHA: "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b", BaseSHA: "1111111111111111111111111111111111111111",
		Trigger: "pull_request.opened", CreatedAt: t0.Add(time.Hour)},
		loadReport(t, "report-healthy.json"), t0.Add(time.Hour+time.Second), t0.Add(time.Hour+39*time.Second))
	add("running", gate.Run{Repository: "acme/payments", PR: 7, HeadSHA: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", Trigger: "pull_request.opened",
		CreatedAt: fixedNow.Add(-2 * time.Minute)}, nil, fixedNow.Add(-90*time.Second), time.Time{})
	b.store.MarkRunning(ctx, b.ids["running"], fixedNow.Add(-90*time.Second))
	b.store.SetProgress(ctx, b.ids["running"], "measure at 21 s: 200 requests/s, heap 3.1 MiB, 14 goroutines")
	add("queued", gate.Run{Repository: "a-very-long-organisation-name-for-testing/an-extremely-long-repository-name-that-should-wrap-nicely",
		PR: 123456, HeadSHA: "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", Trigger: "check_run.rerequested", CreatedAt: fixedNow.Add(-30 * time.Second)},
		nil, time.Time{}, time.Time{})
	b.store.SetPullRequest(ctx, nil, storage.PullRequest{Repository: "acme/orders-service", Number: 12, State: "open"})
	b.store.SetPullRequest(ctx, nil, storage.PullRequest{Repository: "acme/orders-service", Number: 14, State: "open"})
}

func msOrZero(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func (b *testBundle) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	resp, err := b.client.Get(b.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

func goldenPage(t *testing.T, name, got string) {
	t.Helper()
	golden.Check(t, name, []byte(got), *update)
}

func TestGoldenPages(t *testing.T) {
	b := setup(t, true)
	for name, path := range map[string]string{
		"list.html":        "/",
		"run-fail.html":    fmt.Sprintf("/runs/%d", b.ids["fail"]),
		"run-running.html": fmt.Sprintf("/runs/%d", b.ids["running"]),
		"repo.html":        "/repos/acme/orders-service",
	} {
		status, body, _ := b.get(t, path)
		if status != http.StatusOK {
			t.Fatalf("%s: %d", path, status)
		}
		goldenPage(t, name, body)
	}
}

func TestListShowsRunsAndFilters(t *testing.T) {
	b := setup(t, true)
	_, body, h := b.get(t, "/")
	for _, want := range []string{"acme/orders-service", "#12", "4f2a9c1", `href="https://github.com/acme/orders-service/commit/4f2a9c1e0b7d3a5f6e8c9d0a1b2c3d4e5f6a7b8c"`,
		"v-fail", "v-pass", "s-running", "s-queued", "3 h ago", "an-extremely-long-repository-name"} {
		if !strings.Contains(body, want) {
			t.Errorf("list lacks %q", want)
		}
	}
	if !strings.Contains(h.Get("Content-Security-Policy"), "default-src 'self'") {
		t.Errorf("no CSP: %q", h.Get("Content-Security-Policy"))
	}
	_, body, _ = b.get(t, "/?verdict=fail")
	if !strings.Contains(body, "#12") || strings.Contains(body, "#13") {
		t.Error("verdict filter")
	}
	_, body, _ = b.get(t, "/?repository=acme/payments")
	if !strings.Contains(body, "#7") || strings.Contains(body, "#12") {
		t.Error("repository filter")
	}
	_, body, _ = b.get(t, "/?repository=nobody/none")
	if !strings.Contains(body, "No runs match these filters") {
		t.Error("filtered empty state")
	}
	if status, _, _ := b.get(t, "/?pr=abc"); status != http.StatusBadRequest {
		t.Errorf("bad pr filter: %d", status)
	}
}

func TestPagination(t *testing.T) {
	b := setup(t, false)
	ctx := context.Background()
	b.store.SetVisibility(ctx, nil, "acme/api", false)
	for i := 0; i < 120; i++ {
		b.store.CreateRun(ctx, nil, gate.Run{Repository: "acme/api", PR: i + 1, HeadSHA: fmt.Sprintf("%040x", i), CloneURL: "https://x/y.git", Trigger: "t"})
	}
	_, body, _ := b.get(t, "/")
	if strings.Count(body, "<tr>") != 51 { // header row + 50
		t.Fatalf("%d rows on page 1", strings.Count(body, "<tr>")-1)
	}
	i := strings.Index(body, `href="/?cursor=`)
	if i < 0 {
		t.Fatal("no link to older runs")
	}
	next := body[i+6 : i+6+strings.Index(body[i+6:], `"`)]
	_, body2, _ := b.get(t, strings.ReplaceAll(next, "&amp;", "&"))
	if strings.Count(body2, "<tr>") != 51 || body2 == body {
		t.Fatal("page 2")
	}
}

func TestEmptyStateAndNotFound(t *testing.T) {
	b := setup(t, false)
	_, body, _ := b.get(t, "/")
	if !strings.Contains(body, "No gate runs yet") || !strings.Contains(body, "memgate check") {
		t.Error("empty state does not say how to start")
	}
	for _, path := range []string{"/runs/999", "/runs/abc", "/nope", "/repos/acme/none"} {
		status, body, _ := b.get(t, path)
		if status != http.StatusNotFound || !strings.Contains(body, "All gate runs") {
			t.Errorf("%s: %d", path, status)
		}
	}
}

func TestRunPageShowsTheReport(t *testing.T) {
	b := setup(t, true)
	_, body, _ := b.get(t, fmt.Sprintf("/runs/%d", b.ids["fail"]))
	for _, want := range []string{"goroutine_settle", "main.main.handleOrder.func1.1", `<svg class="chart"`, "polyline",
		"warm-up (not judged)", "settle limit", "fluctuation limit 15%", "go tool pprof -sample_index=inuse_space -top -diff_base heap-warmup.pb.gz heap-end.pb.gz",
		"/api/v1/runs/1/profiles/heap-end.pb.gz", "Sign in with the API token to re-run", "/login?with=token&amp;next=/runs/1", "seconds since the load started", "MiB"} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %q", want)
		}
	}
	if strings.Contains(body, `id="rerun"`) {
		t.Error("re-run button shown without signing in")
	}
	_, body, _ = b.get(t, fmt.Sprintf("/runs/%d", b.ids["running"]))
	if !strings.Contains(body, "This page updates itself") || !strings.Contains(body, "measure at 21 s") || !strings.Contains(body, `data-status="running"`) {
		t.Error("running page")
	}
}

func TestBadge(t *testing.T) {
	b := setup(t, true)
	status, body, h := b.get(t, "/badge/acme/orders-service.svg")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "image/svg+xml") || !strings.Contains(body, ">pass<") {
		t.Errorf("badge: %d %s %s", status, h.Get("Content-Type"), body)
	}
	_, body, _ = b.get(t, "/badge/nobody/none.svg")
	if !strings.Contains(body, "no runs") {
		t.Errorf("unknown repo badge: %s", body)
	}
}

func TestRerunNeedsSignInAndIsSafeFromOtherSites(t *testing.T) {
	b := setup(t, true)
	id := b.ids["fail"]
	post := func(path string, form url.Values, origin string) *http.Response {
		req, _ := http.NewRequest(http.MethodPost, b.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	rerunPath := fmt.Sprintf("/runs/%d/rerun", id)
	if r := post(rerunPath, url.Values{"csrf": {b.pages.csrf()}}, ""); r.StatusCode != http.StatusForbidden {
		t.Fatalf("re-run without signing in: %d", r.StatusCode)
	}
	if r := post("/login", url.Values{"token": {"wrong"}}, ""); r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d", r.StatusCode)
	}
	r := post("/login", url.Values{"token": {testToken}, "next": {"//evil.example/x"}}, "")
	if r.StatusCode != http.StatusSeeOther || r.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q", r.StatusCode, r.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, c := range r.Cookies() {
		if c.Name == "memgate_session" {
			session = c
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || strings.Contains(session.Value, testToken) {
		t.Fatalf("session cookie %+v", session)
	}
	if r := post(rerunPath, url.Values{}, ""); r.StatusCode != http.StatusForbidden {
		t.Errorf("re-run without the CSRF token: %d", r.StatusCode)
	}
	if r := post(rerunPath, url.Values{"csrf": {b.pages.csrf()}}, "https://evil.example"); r.StatusCode != http.StatusForbidden {
		t.Errorf("re-run from another origin: %d", r.StatusCode)
	}
	if len(b.rerun.calls) != 0 {
		t.Fatalf("refused re-runs ran: %v", b.rerun.calls)
	}
	_, body, _ := b.get(t, fmt.Sprintf("/runs/%d", id))
	if !strings.Contains(body, `id="rerun"`) {
		t.Fatal("no re-run button after signing in")
	}
	r = post(rerunPath, url.Values{"csrf": {b.pages.csrf()}}, b.srv.URL)
	if r.StatusCode != http.StatusSeeOther || len(b.rerun.calls) != 1 || !strings.HasPrefix(r.Header.Get("Location"), "/runs/") {
		t.Fatalf("re-run: %d to %q, calls %v", r.StatusCode, r.Header.Get("Location"), b.rerun.calls)
	}
	// A re-run the server refuses (an unapproved fork's head) is the
	// server's status and its reason, not a broken page.
	b.rerun.refuse = fmt.Errorf("%w: fork head abc1234 of o/r#7: add the label", errTestRefused)
	r = post(rerunPath, url.Values{"csrf": {b.pages.csrf()}}, b.srv.URL)
	if r.StatusCode != http.StatusForbidden {
		t.Fatalf("refused re-run: %d", r.StatusCode)
	}
}

var errTestRefused = errors.New("needs a maintainer's approval")

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi float64
		want   string
	}{{0, 10, "[0 2 4 6 8 10]"}, {0.3, 2.7, "[0 0.5 1 1.5 2 2.5 3]"}, {1000, 1250, "[1000 1050 1100 1150 1200 1250]"}} {
		if got := fmt.Sprint(niceTicks(tc.lo, tc.hi, 5)); got != tc.want {
			t.Errorf("niceTicks(%v, %v) = %s, want %s", tc.lo, tc.hi, got, tc.want)
		}
	}
	if !strings.Contains(string(chart{Title: "x", YFmt: trimFloat}.SVG()), "No samples") {
		t.Error("an empty chart must say so")
	}
}

// Without GitHub sign-in, /login shows the token form and says that
// private repositories' runs need the token.
func TestLoginWithoutGitHubSaysPrivateRunsNeedTheToken(t *testing.T) {
	b := setup(t, false)
	status, body, _ := b.get(t, "/login?next=/runs/1")
	if status != http.StatusOK || !strings.Contains(body, "private repositories&#39; runs are visible only with the API token") ||
		!strings.Contains(body, `name="token"`) || strings.Contains(body, "Sign in with GitHub") {
		t.Errorf("/login without GitHub sign-in: %d\n%s", status, body)
	}
}

// Each site's culprit links to its line in the run's commit on GitHub (or
// GitHub Enterprise), every part of the address escaped; a path that is
// not the repository's gets no link, and names stay text.
func TestRunPageLinksCulpritsToTheirLines(t *testing.T) {
	b := setup(t, false)
	b.pages.cfg.GitHubURL = "https://ghe.example"
	ctx := context.Background()
	const sha = "0123456789abcdef0123456789abcdef01234567"
	run := gate.Run{Repository: "acme/api", PR: 4, HeadSHA: sha, CloneURL: "https://x/y.git", Trigger: "t"}
	b.store.SetVisibility(ctx, nil, run.Repository, false)
	id, err := b.store.CreateRun(ctx, nil, run)
	if err != nil {
		t.Fatal(err)
	}
	rep := &gate.Report{Verdict: gate.Fail, Reason: "leak", Attribution: gate.Attribution{
		Heap: []gate.HeapSite{
			{Function: "main.keep", Origin: "main.keep", DeltaBytes: 4 << 20,
				Culprit: &gate.Frame{Function: "<script>alert(1)</script>", File: "dir with space/a#b?c&d.go", Line: 5}},
			{Function: "main.up", DeltaBytes: 3 << 20, Culprit: &gate.Frame{Function: "main.up", File: "../../../../evil", Line: 1}},
			{Function: "main.abs", DeltaBytes: 3 << 20, Culprit: &gate.Frame{Function: "main.abs", File: "/etc/passwd", Line: 1}},
			{Function: "main.js", DeltaBytes: 2 << 20, Culprit: &gate.Frame{Function: "main.js", File: "javascript:alert(1)/x.go", Line: 2}},
			{Function: "github.com/a/b.Get", Origin: "github.com/a/b.Get", DeltaBytes: 1 << 20,
				Culprit: &gate.Frame{Function: "github.com/a/b.Get", File: "vendor/github.com/a/b/b.go", Line: 9, Vendored: true}},
			{Function: "runtime.malg", DeltaBytes: 1 << 20},
		},
		Goroutines: []gate.GoroutineStack{{Top: "main.wait", Delta: 40, Count: 41, Stack: []string{"runtime.gopark", "main.wait"},
			Culprit: &gate.Frame{Function: "main.wait", File: "wait.go", Line: 12}}},
	}}
	b.store.MarkRunning(ctx, id, fixedNow)
	if _, err := b.store.Complete(ctx, id, 0, rep, nil); err != nil {
		t.Fatal(err)
	}
	_, body, _ := b.get(t, fmt.Sprintf("/runs/%d", id))
	blob := "https://ghe.example/acme/api/blob/" + sha + "/"
	for _, want := range []string{
		`<th>Code</th>`,
		`<a class="src" href="` + blob + `dir%20with%20space/a%23b%3Fc&amp;d.go#L5">dir with space/a#b?c&amp;d.go:5</a> <span class="muted">in &lt;script&gt;alert(1)&lt;/script&gt;</span>`,
		`<a class="src" href="` + blob + `javascript:alert%281%29/x.go#L2">javascript:alert(1)/x.go:2</a> <span class="muted">in main.js</span>`,
		`<a class="src" href="` + blob + `vendor/github.com/a/b/b.go#L9">vendor/github.com/a/b/b.go:9</a> <span class="muted">(vendored)</span></td>`,
		`(41 in all) · <span class="mono wrap"><a class="src" href="` + blob + `wait.go#L12">wait.go:12</a></span></summary>`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("run page lacks %s", want)
		}
	}
	for _, bad := range []string{"<script>alert", "evil", "passwd"} {
		if strings.Contains(body, bad) {
			t.Errorf("run page has %q", bad)
		}
	}
	if n := strings.Count(body, `class="src"`); n != 4 {
		t.Errorf("%d source links, want 4", n)
	}
}
