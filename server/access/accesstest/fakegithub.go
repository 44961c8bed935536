// Package accesstest is a fake GitHub for tests of signing in and of who
// may see what: an httptest server speaking the OAuth web flow (authorize,
// token exchange), GET /user, GET /repos/{owner}/{repo} and the user's
// installations and their repositories as GitHub does, with users and their repository access set by the test. Point memgate's
// OAuth client (access.GitHub) at URL, as web and API base, with ClientID
// and ClientSecret. Tests only.
package accesstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// The fake's OAuth client.
const (
	ClientID     = "Iv1.memgate-test"
	ClientSecret = "memgate-test-client-secret"
)

// GitHub is the fake.
type GitHub struct {
	URL string

	mu     sync.Mutex
	users  map[string]*user  // by login
	next   string            // whom the authorize page signs in
	codes  map[string]*grant // code -> who it is for
	tokens map[string]string // token -> login
	// RepoChecks counts GET /repos/{owner}/{repo} calls (the cache's work).
	repoChecks int
	// Exchanges counts token exchanges, refused ones included.
	exchanges int
	listCalls int
	noListing bool
}

type user struct {
	id    int64
	login string
	repos map[string]bool
}

type grant struct {
	login, redirect string
	used            bool
}

// New starts a fake GitHub on a loopback port, closed when the test ends.
func New(t testing.TB) *GitHub {
	f := &GitHub{users: map[string]*user{}, codes: map[string]*grant{}, tokens: map[string]string{}}
	srv := httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}

// AddUser makes a GitHub user who may read repos.
func (f *GitHub) AddUser(login string, id int64, repos ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u := &user{id: id, login: login, repos: map[string]bool{}}
	for _, r := range repos {
		u.repos[strings.ToLower(r)] = true
	}
	f.users[login] = u
}

// Revoke takes a user's access to a repository away.
func (f *GitHub) Revoke(login, repo string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.users[login].repos, strings.ToLower(repo))
}

// SignInAs decides who approves the next sign-in at the authorize page.
func (f *GitHub) SignInAs(login string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = login
}

// IssueToken gives a user a token without the web flow, for tests of what
// a token may read.
func (f *GitHub) IssueToken(login string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	token := "ghu_" + randomHex()
	f.tokens[token] = login
	return token
}

// RepoChecks is how many times memgate asked about a repository.
func (f *GitHub) RepoChecks() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repoChecks
}

// Exchanges is how many codes memgate tried to exchange.
func (f *GitHub) Exchanges() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.exchanges
}

// Tokens lists every user token the fake issued (to look for leaks).
func (f *GitHub) Tokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for t := range f.tokens {
		out = append(out, t)
	}
	return out
}

func (f *GitHub) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/login/oauth/authorize":
		f.authorize(w, r)
	case r.Method == http.MethodPost && r.URL.Path == "/login/oauth/access_token":
		f.exchange(w, r)
	case r.Method == http.MethodGet && r.URL.Path == "/user":
		if u := f.caller(r); u != nil {
			writeJSON(w, http.StatusOK, map[string]any{"login": u.login, "id": u.id, "type": "User"})
			return
		}
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/repos/"):
		f.repo(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/user/installations"):
		f.installations(w, r)
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}
}

// authorize approves at once, as f.next, and sends the browser back to the
// redirect_uri with a code and the state it was given.
func (f *GitHub) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	back, err := url.Parse(q.Get("redirect_uri"))
	if q.Get("client_id") != ClientID || err != nil || back.Host == "" || f.users[f.next] == nil {
		http.Error(w, "bad authorize request", http.StatusBadRequest)
		return
	}
	code := randomHex()
	f.codes[code] = &grant{login: f.next, redirect: back.String()}
	v := url.Values{"code": {code}, "state": {q.Get("state")}}
	back.RawQuery = v.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

// exchange trades a code once, as GitHub does; a bad or used code is
// 200 with an "error" field, also as GitHub does.
func (f *GitHub) exchange(w http.ResponseWriter, r *http.Request) {
	f.exchanges++
	if err := r.ParseForm(); err != nil || r.PostForm.Get("client_id") != ClientID || r.PostForm.Get("client_secret") != ClientSecret {
		writeJSON(w, http.StatusOK, map[string]any{"error": "incorrect_client_credentials"})
		return
	}
	g := f.codes[r.PostForm.Get("code")]
	if g == nil || g.used || (r.PostForm.Get("redirect_uri") != "" && r.PostForm.Get("redirect_uri") != g.redirect) {
		writeJSON(w, http.StatusOK, map[string]any{"error": "bad_verification_code",
			"error_description": "The code passed is incorrect or expired."})
		return
	}
	g.used = true
	token := "ghu_" + randomHex()
	f.tokens[token] = g.login
	writeJSON(w, http.StatusOK, map[string]any{"access_token": token, "token_type": "bearer", "scope": "", "expires_in": 28800})
}

func (f *GitHub) repo(w http.ResponseWriter, r *http.Request) {
	f.repoChecks++
	parts := strings.Split(strings.TrimPrefix(r.URL.Path, "/repos/"), "/")
	u := f.caller(r)
	if u == nil {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
		return
	}
	if len(parts) != 2 || !u.repos[strings.ToLower(parts[0]+"/"+parts[1])] {
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"full_name": parts[0] + "/" + parts[1], "private": true})
}

// installations answers GET /user/installations (one installation, id
// 1, holding every repository) and GET /user/installations/1/repositories
// (the user's repositories in it), paged as GitHub pages them. With
// NoListing set both are 403, as for a token that is not a GitHub App's.
func (f *GitHub) installations(w http.ResponseWriter, r *http.Request) {
	f.listCalls++
	u := f.caller(r)
	switch {
	case u == nil:
		writeJSON(w, http.StatusUnauthorized, map[string]any{"message": "Bad credentials"})
		return
	case f.noListing:
		writeJSON(w, http.StatusForbidden, map[string]any{"message": "You must authenticate with an access token authorized to a GitHub App"})
		return
	}
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	page, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if per <= 0 || per > 100 {
		per = 30
	}
	if page <= 0 {
		page = 1
	}
	switch r.URL.Path {
	case "/user/installations":
		var items []any
		if page == 1 {
			items = []any{map[string]any{"id": 1}}
		}
		writeJSON(w, http.StatusOK, map[string]any{"total_count": 1, "installations": items})
	case "/user/installations/1/repositories":
		var names []string
		for name := range u.repos {
			names = append(names, name)
		}
		sort.Strings(names)
		items := []any{}
		for i := (page - 1) * per; i < len(names) && i < page*per; i++ {
			items = append(items, map[string]any{"full_name": names[i], "private": true})
		}
		writeJSON(w, http.StatusOK, map[string]any{"total_count": len(names), "repositories": items})
	default:
		writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
	}
}

// NoListing makes the installation listings refuse, as GitHub does for a
// token that is not a GitHub App's user token.
func (f *GitHub) NoListing() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.noListing = true
}

// ListCalls is how many listing requests memgate made.
func (f *GitHub) ListCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.listCalls
}

func (f *GitHub) caller(r *http.Request) *user {
	auth := r.Header.Get("Authorization")
	token, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		token, _ = strings.CutPrefix(auth, "token ")
	}
	login, ok := f.tokens[token]
	if !ok {
		return nil
	}
	return f.users[login]
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func randomHex() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("accesstest: %v", err))
	}
	return hex.EncodeToString(b)
}
