package access

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/memgate/memgate/server/access/accesstest"
	"github.com/memgate/memgate/storage"
)

type testBundle struct {
	store *storage.Store
	gh    *accesstest.GitHub
	auth  *Authorizer
	clock *clock
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

const privRepo = "acme/secret"

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	st, err := storage.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "access.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.SetVisibility(ctx, nil, privRepo, true); err != nil {
		t.Fatal(err)
	}
	gh := accesstest.New(t)
	gh.AddUser("octocat", 1, privRepo)
	c := &clock{now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	a, err := New(Config{APIToken: "api", GitHub: &GitHub{ClientID: accesstest.ClientID, ClientSecret: accesstest.ClientSecret,
		WebURL: gh.URL, APIURL: gh.URL + "/", RedirectURL: "http://127.0.0.1/login/callback"}, Now: c.Now}, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &testBundle{store: st, gh: gh, auth: a, clock: c}
}

func (b *testBundle) octocat() Viewer {
	return Viewer{User: &User{ID: 1, Login: "octocat"}, token: b.gh.IssueToken("octocat")}
}

// GitHub's answer is kept five minutes: pages stay fast, and a revoked
// access ends when the answer expires.
func TestAccessIsCachedAndRevocationEndsWithTheCache(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	v := b.octocat()
	for i := 0; i < 5; i++ {
		if ok, err := b.auth.CanSee(ctx, v, privRepo); !ok || err != nil {
			t.Fatalf("octocat cannot see %s: %v", privRepo, err)
		}
	}
	if n := b.gh.RepoChecks(); n != 1 {
		t.Fatalf("%d checks for five reads, want 1", n)
	}
	b.gh.Revoke("octocat", privRepo)
	b.clock.advance(4 * time.Minute)
	if ok, _ := b.auth.CanSee(ctx, v, privRepo); !ok {
		t.Fatal("the cached answer was not used")
	}
	b.clock.advance(61 * time.Second)
	if ok, _ := b.auth.CanSee(ctx, v, privRepo); ok {
		t.Fatal("revoked access still works after the cache")
	}
	if n := b.gh.RepoChecks(); n != 2 {
		t.Fatalf("%d checks, want 2", n)
	}
	sc, err := b.auth.Scope(ctx, v)
	if err != nil || sc.All || len(sc.Private) != 0 {
		t.Fatalf("scope after revocation: %+v %v", sc, err)
	}
}

// When GitHub cannot be asked, the answer is no, and it is not kept.
func TestGitHubTroubleFailsClosed(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer down.Close()
	b.auth.cfg.GitHub.APIURL = down.URL
	v := b.octocat()
	if ok, _ := b.auth.CanSee(ctx, v, privRepo); ok {
		t.Fatal("access granted while GitHub answers 502")
	}
	b.auth.cfg.GitHub.APIURL = b.gh.URL
	if ok, _ := b.auth.CanSee(ctx, v, privRepo); !ok {
		t.Fatal("the failure was cached")
	}
}

// The API token sees everything; nobody and unknown repositories see
// nothing private.
func TestTheRule(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	if err := b.store.SetVisibility(ctx, nil, "acme/open", false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		v    Viewer
		repo string
		want bool
	}{
		{"nobody, public", Viewer{}, "acme/open", true},
		{"nobody, private", Viewer{}, privRepo, false},
		{"nobody, never heard of", Viewer{}, "acme/unknown", false},
		{"operator, private", Viewer{Operator: true}, privRepo, true},
		{"user without a token", Viewer{User: &User{ID: 1, Login: "octocat"}}, privRepo, false},
		{"user, never heard of", b.octocat(), "acme/unknown", false},
	} {
		if got, err := b.auth.CanSee(ctx, tc.v, tc.repo); got != tc.want || err != nil {
			t.Errorf("%s: %v (%v), want %v", tc.name, got, err, tc.want)
		}
	}
}

// Sessions end when they expire; cookies sealed for one purpose do not
// open for another, nor under another key.
func TestSessionsExpireAndCookiesAreBound(t *testing.T) {
	b := setup(t)
	tok := b.gh.IssueToken("octocat")
	sealed, err := b.auth.seal.seal(userCookie, session{ID: 1, Login: "octocat", Token: tok, Expires: b.clock.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	req := func(name, value string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.AddCookie(&http.Cookie{Name: name, Value: value})
		return r
	}
	if v := b.auth.Viewer(req(userCookie, sealed)); v.User == nil || v.User.Login != "octocat" || v.token != tok {
		t.Fatalf("a fresh session: %+v", v)
	}
	b.clock.advance(time.Hour)
	if v := b.auth.Viewer(req(userCookie, sealed)); v.User != nil {
		t.Fatal("an expired session still signs in")
	}
	other, _ := New(Config{GitHub: &GitHub{ClientSecret: "another secret"}, Now: b.clock.Now}, b.store, nil)
	foreign, _ := other.seal.seal(userCookie, session{ID: 1, Login: "octocat", Token: tok, Expires: b.clock.Now().Add(time.Hour).Unix()})
	if v := b.auth.Viewer(req(userCookie, foreign)); v.User != nil {
		t.Fatal("a session sealed under another key opens")
	}
	state, _ := b.auth.seal.seal(stateCookie, session{ID: 1, Login: "octocat", Token: tok, Expires: b.clock.Now().Add(time.Hour).Unix()})
	if v := b.auth.Viewer(req(userCookie, state)); v.User != nil {
		t.Fatal("a cookie sealed as a sign-in state opens as a session")
	}
	if v := b.auth.Viewer(req(operatorCookie, "0000")); v.Operator {
		t.Fatal("a made-up operator cookie is the operator")
	}
}

// Behind HTTPS every cookie is Secure; all are HTTP-only.
func TestCookiesAreSecureBehindHTTPS(t *testing.T) {
	b := setup(t)
	b.auth.cfg.SecureCookies = true
	w := httptest.NewRecorder()
	if _, err := b.auth.BeginSignIn(w, "/"); err != nil {
		t.Fatal(err)
	}
	b.auth.SignOut(w)
	cookies := w.Result().Cookies()
	if len(cookies) != 4 {
		t.Fatalf("%d cookies", len(cookies))
	}
	for _, c := range append(cookies, b.auth.OperatorCookie()) {
		if !c.Secure || !c.HttpOnly {
			t.Errorf("cookie %s: Secure %v HttpOnly %v", c.Name, c.Secure, c.HttpOnly)
		}
	}
}

// A list page asks GitHub for everything the user may read in a few calls
// (paged), not once per private repository; when GitHub will not list
// (not a GitHub App's token), it asks per repository.
func TestScopeListsReadableRepositoriesInAFewCalls(t *testing.T) {
	ctx := context.Background()
	for _, listing := range []bool{true, false} {
		b := setup(t)
		b.auth.cfg.GitHub.perPage = 4
		var readable []string
		for i := 0; i < 30; i++ {
			repo := fmt.Sprintf("acme/private-%02d", i)
			if err := b.store.SetVisibility(ctx, nil, repo, true); err != nil {
				t.Fatal(err)
			}
			if i%3 == 0 {
				readable = append(readable, repo)
			}
		}
		b.gh.AddUser("octocat", 1, append(readable, privRepo)...)
		if !listing {
			b.gh.NoListing()
		}
		v := b.octocat()
		sc, err := b.auth.Scope(ctx, v)
		if err != nil {
			t.Fatal(err)
		}
		if len(sc.Private) != len(readable)+1 {
			t.Fatalf("listing=%v: scope %v, want the %d readable", listing, sc.Private, len(readable)+1)
		}
		lists, checks := b.gh.ListCalls(), b.gh.RepoChecks()
		// 1 installations page, 3 pages of 4 repositories (11 readable).
		if listing && (lists != 4 || checks != 0) {
			t.Errorf("with listing: %d list calls and %d repository checks, want 4 and 0", lists, checks)
		}
		if !listing && checks != 31 {
			t.Errorf("without listing: %d repository checks, want 31", checks)
		}
		// Everything is cached now: pages and single runs cost nothing.
		b.auth.Scope(ctx, v)
		if ok, _ := b.auth.CanSee(ctx, v, "acme/private-03"); !ok {
			t.Error("a readable repository is not visible")
		}
		if ok, _ := b.auth.CanSee(ctx, v, "acme/private-04"); ok {
			t.Error("an unreadable repository is visible")
		}
		if b.gh.ListCalls() != lists || b.gh.RepoChecks() != checks {
			t.Errorf("listing=%v: cached answers were asked again", listing)
		}
	}
}
