package server

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/memgate/memgate/storage/storagetest"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/server/access/accesstest"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/storage"
)

// Runs of private repositories, seeded through real webhook payloads with
// repository.private set, read by everyone who might: nobody, a GitHub
// user without access, a user with access, the API token. A fake GitHub
// (server/access/accesstest) answers the OAuth flow, /user and
// /repos/{owner}/{repo}.

const (
	privRepo    = "Codertocat/Hello-World" // the payload's repository, made private
	pubRepo     = "acme/public"
	privBranch  = "secret-branch-private-feature"
	privToken   = "privacy-test-api-token"
	privSecret  = "s"
	missingRun  = 987654
	unknownRepo = "nobody/never-gated"
)

// privMarkers must appear nowhere a viewer without access looks.
var privMarkers = []string{privBranch, "SECRET-REASON", "SECRET-BUILD-OUTPUT", "SECRET-SERVICE-OUTPUT", "SECRET-PROFILE"}

type privacyBundle struct {
	base    string
	store   *storage.Store
	gh      *accesstest.GitHub
	logs    *syncBuffer
	dbFiles []string
	private int64 // the private repository's run
	public  int64 // a public repository's run
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// eachEngine runs a test on SQLite, and on Postgres when
// MEMGATE_TEST_DATABASE_URL names one.
func eachEngine(t *testing.T, test func(t *testing.T, url string, files []string)) {
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "priv.db")
		test(t, "sqlite:"+path, []string{path, path + "-wal"})
	})
	t.Run("postgres", func(t *testing.T) {
		base := os.Getenv("MEMGATE_TEST_DATABASE_URL")
		if base == "" {
			t.Skip("MEMGATE_TEST_DATABASE_URL is not set: Postgres half skipped")
		}
		test(t, storagetest.Database(t, base), nil)
	})
}

func setupPrivacy(t *testing.T, dbURL string, files []string) *privacyBundle {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, dbURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	pg := st.Engine() == storage.Postgres
	if err := queue.Migrate(ctx, st.DB(), pg); err != nil {
		t.Fatal(err)
	}
	qcfg := queue.DefaultConfig()
	qcfg.Workers, qcfg.Postgres = 0, pg
	q, err := queue.New(st.DB(), nil, qcfg)
	if err != nil {
		t.Fatal(err)
	}
	gh := accesstest.New(t)
	gh.AddUser("octocat", 1, privRepo)
	gh.AddUser("mallory", 2, "mallory/own-repo")

	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(ctx, Config{WebhookSecret: privSecret, APIToken: privToken, SignIn: &access.GitHub{ClientID: accesstest.ClientID,
		ClientSecret: accesstest.ClientSecret, WebURL: gh.URL, APIURL: gh.URL + "/", RedirectURL: base + "/login/callback"}},
		st, q, checks.Silent{}, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = s.Handler()
	srv.Start()
	t.Cleanup(srv.Close)

	b := &privacyBundle{base: base, store: st, gh: gh, logs: logs, dbFiles: files}
	b.private = b.gated(t, "priv-1", privatePR(t, fmt.Sprintf("%040x", 1)), "fail")
	b.public = b.gated(t, "pub-1", publicPR(t, fmt.Sprintf("%040x", 2)), "pass")
	return b
}

// privatePR is the real pull_request.opened payload of a private
// repository, on a branch whose name must not leak.
func privatePR(t *testing.T, head string) []byte {
	return editPayload(t, "pull_request.opened.json", func(m map[string]any) {
		m["repository"].(map[string]any)["private"] = true
		h := m["pull_request"].(map[string]any)["head"].(map[string]any)
		h["sha"], h["ref"] = head, privBranch
	})
}

func publicPR(t *testing.T, head string) []byte {
	return editPayload(t, "pull_request.opened.json", func(m map[string]any) {
		repo := m["repository"].(map[string]any)
		repo["full_name"], repo["clone_url"], repo["private"] = pubRepo, "https://github.com/"+pubRepo+".git", false
		h := m["pull_request"].(map[string]any)["head"].(map[string]any)
		h["sha"] = head
		h["repo"].(map[string]any)["full_name"] = pubRepo
	})
}

// repositoryEvent is a repository event (publicized, privatized) made of
// the real payload's repository, installation and sender.
func repositoryEvent(t *testing.T, action string) []byte {
	return editPayload(t, "pull_request.opened.json", func(m map[string]any) {
		delete(m, "pull_request")
		delete(m, "number")
		m["action"] = action
		m["repository"].(map[string]any)["private"] = action == "privatized"
	})
}

func editPayload(t *testing.T, name string, edit func(m map[string]any)) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", "github-payloads", name))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	out, _ := json.Marshal(m)
	return out
}

func deliverEvent(t *testing.T, base, event, guid string, body []byte) map[string]any {
	t.Helper()
	mac := hmac.New(sha256.New, []byte(privSecret))
	mac.Write(body)
	req, _ := http.NewRequest(http.MethodPost, base+"/webhook", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", event)
	req.Header.Set("X-GitHub-Delivery", guid)
	req.Header.Set("X-Hub-Signature-256", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	if resp.StatusCode/100 != 2 {
		t.Fatalf("delivery %s: %d %v", guid, resp.StatusCode, out)
	}
	return out
}

// gated delivers a pull request and completes its run with a report whose
// every field that the pages show carries a marker, and a profile.
func (b *privacyBundle) gated(t *testing.T, guid string, body []byte, verdict gate.Verdict) int64 {
	t.Helper()
	out := deliverEvent(t, b.base, "pull_request", guid, body)
	id := int64(out["run_id"].(float64))
	if id == 0 {
		t.Fatalf("delivery %s queued no run: %v", guid, out)
	}
	ctx := context.Background()
	run, err := b.store.Run(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	tag := "PUBLIC"
	if run.Repository == privRepo {
		tag = "SECRET"
	}
	rep := &gate.Report{Verdict: verdict, Reason: tag + "-REASON heap grows",
		BuildOutput: tag + "-BUILD-OUTPUT", ServiceOutput: tag + "-SERVICE-OUTPUT",
		Samples: []gate.Sample{{Offset: 1, Phase: gate.PhaseMeasure, HeapInuse: 1 << 20, PostGCHeap: 1 << 19, Goroutines: 4}}}
	if ok, err := b.store.Complete(ctx, id, run.JobID, rep, map[string][]byte{"heap-end.pb.gz": []byte(tag + "-PROFILE")}); !ok || err != nil {
		t.Fatalf("complete run %d: %v %v", id, ok, err)
	}
	return id
}

// --- viewers ------------------------------------------------------------------

type viewer struct {
	name   string
	client *http.Client
	bearer string
	bodies []string // everything this viewer was shown
}

func newViewer(name string) *viewer {
	jar, _ := cookiejar.New(nil)
	return &viewer{name: name, client: &http.Client{Jar: jar}}
}

// noFollow is the same browser, stopping at redirects.
func (v *viewer) noFollow() *http.Client {
	return &http.Client{Jar: v.client.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (v *viewer) get(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if v.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+v.bearer)
	}
	resp, err := v.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	v.bodies = append(v.bodies, string(body))
	return resp.StatusCode, string(body)
}

// signIn walks GitHub's web flow as login, following every redirect, and
// returns where the browser ended.
func (b *privacyBundle) signIn(t *testing.T, v *viewer, login, next string) (int, *url.URL) {
	t.Helper()
	b.gh.SignInAs(login)
	resp, err := v.client.Get(b.base + "/login?next=" + url.QueryEscape(next))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	v.bodies = append(v.bodies, string(body))
	return resp.StatusCode, resp.Request.URL
}

// paths are every read of run data, for the private run.
func (b *privacyBundle) paths() map[string]string {
	return map[string]string{
		"list":              "/",
		"list filtered":     "/?repository=" + privRepo,
		"api list":          "/api/v1/runs",
		"api list filtered": "/api/v1/runs?repository=" + privRepo,
		"run page":          fmt.Sprintf("/runs/%d", b.private),
		"api run":           fmt.Sprintf("/api/v1/runs/%d", b.private),
		"profile":           fmt.Sprintf("/api/v1/runs/%d/profiles/heap-end.pb.gz", b.private),
		"repo page":         "/repos/" + privRepo,
		"badge":             "/badge/" + privRepo + ".svg",
	}
}

// theSameAsNothing is what each single-item path answers for a run or
// repository memgate never had.
func (b *privacyBundle) theSameAsNothing() map[string]string {
	id := strconv.Itoa(missingRun)
	return map[string]string{
		"run page":  "/runs/" + id,
		"api run":   "/api/v1/runs/" + id,
		"profile":   "/api/v1/runs/" + id + "/profiles/heap-end.pb.gz",
		"repo page": "/repos/" + unknownRepo,
		"badge":     "/badge/" + unknownRepo + ".svg",
	}
}

func (b *privacyBundle) assertHidden(t *testing.T, v *viewer) {
	t.Helper()
	same := b.theSameAsNothing()
	for name, path := range b.paths() {
		status, body := v.get(t, b.base+path)
		for _, m := range privMarkers {
			if strings.Contains(body, m) {
				t.Errorf("%s: %s shows %q to %s", name, path, m, v.name)
			}
		}
		if !strings.Contains(path, "repository=") && !strings.Contains(path, privRepo) && strings.Contains(body, privRepo) {
			t.Errorf("%s: %s names the private repository to %s", name, path, v.name)
		}
		if name == "list" && !strings.Contains(body, pubRepo) {
			t.Errorf("%s: the public run is missing for %s", path, v.name)
		}
		nothing, single := same[name]
		if !single {
			continue
		}
		if status != http.StatusNotFound {
			t.Errorf("%s: %s answers %s with %d, want 404", name, path, v.name, status)
		}
		// Exactly as for something that does not exist, once the id or
		// name asked for is the same.
		nstatus, nbody := v.get(t, b.base+nothing)
		nbody = strings.NewReplacer(strconv.Itoa(missingRun), strconv.FormatInt(b.private, 10), unknownRepo, privRepo,
			strings.ReplaceAll(unknownRepo, "/", "%2f"), strings.ReplaceAll(privRepo, "/", "%2f")).Replace(nbody)
		if nstatus != status || nbody != body {
			t.Errorf("%s: %s answers %s differently from %s:\n%d %s\n%d %s", name, path, v.name, nothing, status, body, nstatus, nbody)
		}
	}
	// Paging counts only what the viewer may see: one run, no next page.
	_, body := v.get(t, b.base+"/api/v1/runs?limit=1")
	var page struct {
		Runs []gate.Run `json:"runs"`
		Next int64      `json:"next_cursor"`
	}
	json.Unmarshal([]byte(body), &page)
	if len(page.Runs) != 1 || page.Runs[0].ID != b.public || page.Next != 0 {
		t.Errorf("%s's first page of one: %s", v.name, body)
	}
}

func (b *privacyBundle) assertVisible(t *testing.T, v *viewer) {
	t.Helper()
	want := map[string][]string{
		"list":              {privRepo, pubRepo},
		"list filtered":     {privRepo, fmt.Sprintf("/runs/%d", b.private)},
		"api list":          {privRepo, privBranch, "SECRET-REASON"},
		"api list filtered": {privRepo, privBranch},
		"run page":          {privRepo, privBranch, "SECRET-REASON", "SECRET-BUILD-OUTPUT", "SECRET-SERVICE-OUTPUT", "heap-end.pb.gz"},
		"api run":           {privBranch, "SECRET-BUILD-OUTPUT", "SECRET-SERVICE-OUTPUT"},
		"profile":           {"SECRET-PROFILE"},
		"repo page":         {privRepo, "SECRET-REASON"},
		"badge":             {">fail<"},
	}
	for name, path := range b.paths() {
		status, body := v.get(t, b.base+path)
		if status != http.StatusOK {
			t.Errorf("%s: %s answers %s with %d", name, path, v.name, status)
			continue
		}
		for _, w := range want[name] {
			if !strings.Contains(body, w) {
				t.Errorf("%s: %s lacks %q for %s", name, path, w, v.name)
			}
		}
	}
	_, body := v.get(t, b.base+"/api/v1/runs?limit=1")
	if !strings.Contains(body, "next_cursor") {
		t.Errorf("%s's first page of one has no next page: %s", v.name, body)
	}
}

// --- the tests ----------------------------------------------------------------

func TestPrivateRunsAreVisibleOnlyToThoseWhoMaySeeTheRepository(t *testing.T) {
	eachEngine(t, func(t *testing.T, dbURL string, files []string) {
		b := setupPrivacy(t, dbURL, files)

		anon := newViewer("nobody")
		b.assertHidden(t, anon)
		// The public repository's run is there for everyone.
		if status, body := anon.get(t, fmt.Sprintf("%s/runs/%d", b.base, b.public)); status != http.StatusOK || !strings.Contains(body, "PUBLIC-SERVICE-OUTPUT") {
			t.Errorf("public run page: %d", status)
		}

		mallory := newViewer("mallory (signed in, no access)")
		if status, at := b.signIn(t, mallory, "mallory", "/"); status != http.StatusOK || at.Path != "/" {
			t.Fatalf("mallory's sign-in ended at %v with %d", at, status)
		}
		b.assertHidden(t, mallory)

		octocat := newViewer("octocat (signed in, may read the repository)")
		next := fmt.Sprintf("/runs/%d", b.private)
		status, at := b.signIn(t, octocat, "octocat", next)
		if status != http.StatusOK || at.Path != next {
			t.Fatalf("octocat's sign-in ended at %v with %d", at, status)
		}
		b.assertVisible(t, octocat)
		if _, body := octocat.get(t, b.base+"/"); !strings.Contains(body, "octocat") || !strings.Contains(body, "Sign out") {
			t.Error("the pages do not say who is signed in")
		}

		token := newViewer("the API token")
		token.bearer = privToken
		b.assertVisible(t, token)

		// The user's GitHub token reaches no page, cookie, log or database.
		tokens := b.gh.Tokens()
		if len(tokens) != 2 {
			t.Fatalf("%d tokens issued, want 2 (mallory, octocat)", len(tokens))
		}
		u, _ := url.Parse(b.base)
		var cookies []string
		for _, c := range octocat.client.Jar.Cookies(u) {
			cookies = append(cookies, c.Name+"="+c.Value)
		}
		var db []byte
		for _, f := range b.dbFiles {
			raw, _ := os.ReadFile(f)
			db = append(db, raw...)
		}
		if len(b.dbFiles) > 0 && len(db) == 0 {
			t.Fatal("read nothing of the database files")
		}
		for _, tok := range tokens {
			for where, text := range map[string]string{"pages": strings.Join(append(octocat.bodies, mallory.bodies...), "\n"),
				"cookies": strings.Join(cookies, ";"), "log": b.logs.String(), "database": string(db)} {
				if strings.Contains(text, tok) {
					t.Errorf("a user's GitHub token is in the %s", where)
				}
			}
		}
		t.Logf("octocat's cookies: %d bytes; %d access checks asked of GitHub", len(strings.Join(cookies, ";")), b.gh.RepoChecks())
	})
}

// The repository event (and any later payload) changes who sees the runs;
// runs made by a re-run are private like their repository.
func TestVisibilityFollowsGitHub(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vis.db")
	b := setupPrivacy(t, "sqlite:"+path, nil)
	anon := newViewer("nobody")
	runPage := fmt.Sprintf("%s/runs/%d", b.base, b.private)
	if status, _ := anon.get(t, runPage); status != http.StatusNotFound {
		t.Fatalf("private run: %d", status)
	}
	if out := deliverEvent(t, b.base, "repository", "vis-1", repositoryEvent(t, "publicized")); out["outcome"] != "visibility" {
		t.Fatalf("publicized: %v", out)
	}
	if status, body := anon.get(t, runPage); status != http.StatusOK || !strings.Contains(body, "SECRET-SERVICE-OUTPUT") {
		t.Fatalf("after publicized: %d", status)
	}
	deliverEvent(t, b.base, "repository", "vis-2", repositoryEvent(t, "privatized"))
	if status, _ := anon.get(t, runPage); status != http.StatusNotFound {
		t.Fatalf("after privatized: %d", status)
	}

	// A re-run through the API.
	req, _ := http.NewRequest(http.MethodPost, fmt.Sprintf("%s/api/v1/runs/%d/rerun", b.base, b.private), nil)
	req.Header.Set("Authorization", "Bearer "+privToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var out struct{ ID int64 }
	json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted || out.ID == 0 {
		t.Fatalf("re-run: %d", resp.StatusCode)
	}
	if status, _ := anon.get(t, fmt.Sprintf("%s/api/v1/runs/%d", b.base, out.ID)); status != http.StatusNotFound {
		t.Errorf("the re-run of a private run is visible to nobody: %d", status)
	}
	if run, _ := b.store.Run(context.Background(), out.ID); !run.Private {
		t.Errorf("the re-run is not marked private: %+v", run)
	}
}
