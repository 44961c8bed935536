package server

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
)

// step makes one request in a browser without following redirects and
// returns the status and Location.
func step(t *testing.T, v *viewer, u string) (int, string) {
	t.Helper()
	resp, err := v.noFollow().Get(u)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// startSignIn goes to /login and on to the fake GitHub, which approves, and
// returns the callback URL GitHub sent the browser back to (not yet
// visited).
func (b *privacyBundle) startSignIn(t *testing.T, v *viewer, login, next string) string {
	t.Helper()
	b.gh.SignInAs(login)
	status, authorize := step(t, v, b.base+"/login?next="+next)
	if status != http.StatusFound || !strings.HasPrefix(authorize, b.gh.URL+"/login/oauth/authorize?") {
		t.Fatalf("/login: %d to %q", status, authorize)
	}
	au, _ := url.Parse(authorize)
	if st := au.Query().Get("state"); len(st) < 40 {
		t.Fatalf("state %q is guessable", st)
	}
	status, callback := step(t, v, authorize)
	if status != http.StatusFound || !strings.HasPrefix(callback, b.base+"/login/callback?") {
		t.Fatalf("GitHub's authorize page: %d to %q", status, callback)
	}
	return callback
}

func (b *privacyBundle) seesPrivateRun(t *testing.T, v *viewer) bool {
	t.Helper()
	status, _ := v.get(t, fmt.Sprintf("%s/runs/%d", b.base, b.private))
	return status == http.StatusOK
}

func withState(callback, state string) string {
	u, _ := url.Parse(callback)
	q := u.Query()
	q.Set("state", state)
	u.RawQuery = q.Encode()
	return u.String()
}

func TestSignInRefusesForgedStateReplayedCodesAndForgedCookies(t *testing.T) {
	b := setupPrivacy(t, "sqlite:"+filepath.Join(t.TempDir(), "signin.db"), nil)

	// A state that is not the one this browser was given.
	v := newViewer("octocat")
	callback := b.startSignIn(t, v, "octocat", "/")
	if status, _ := step(t, v, withState(callback, "forged-state")); status != http.StatusForbidden {
		t.Errorf("forged state: %d, want 403", status)
	}
	// The state was spent: the genuine callback no longer works either.
	if status, _ := step(t, v, callback); status != http.StatusForbidden {
		t.Errorf("callback after a refused one: %d, want 403", status)
	}
	if b.seesPrivateRun(t, v) {
		t.Fatal("signed in after a forged state")
	}

	// A callback taken to another browser (login CSRF, a leaked URL): that
	// browser holds no state.
	callback = b.startSignIn(t, v, "octocat", "/")
	other := newViewer("another browser")
	if status, _ := step(t, other, callback); status != http.StatusForbidden {
		t.Errorf("callback in a browser that did not start the sign-in: %d, want 403", status)
	}
	if b.seesPrivateRun(t, other) {
		t.Fatal("another browser signed in with a stolen callback")
	}

	// A used code, replayed with a fresh, valid state of the same browser:
	// GitHub refuses it, and so does memgate.
	exchanges := b.gh.Exchanges()
	if status, to := step(t, v, callback); status != http.StatusSeeOther || to != "/" {
		t.Fatalf("genuine callback: %d to %q", status, to)
	}
	if !b.seesPrivateRun(t, v) {
		t.Fatal("octocat cannot see the private run after signing in")
	}
	used, _ := url.Parse(callback)
	fresh := newViewer("a fresh browser")
	again, _ := url.Parse(b.startSignIn(t, fresh, "octocat", "/"))
	replay := withState(callback, again.Query().Get("state"))
	if status, _ := step(t, fresh, replay); status != http.StatusForbidden {
		t.Errorf("replayed code %s: %d, want 403", used.Query().Get("code"), status)
	}
	if b.gh.Exchanges() != exchanges+2 {
		t.Errorf("%d exchanges, want 2 (the genuine one and the replay GitHub refused)", b.gh.Exchanges()-exchanges)
	}
	if b.seesPrivateRun(t, fresh) {
		t.Fatal("a replayed code signed a browser in")
	}

	// Forged sessions: the real cookie altered, the state cookie passed off
	// as a session, and a hand-made one. Each is nobody.
	u, _ := url.Parse(b.base)
	var session string
	for _, c := range v.client.Jar.Cookies(u) {
		if c.Name == "memgate_user" {
			session = c.Value
		}
	}
	if session == "" {
		t.Fatal("no session cookie")
	}
	raw, _ := base64.RawURLEncoding.DecodeString(session)
	raw[len(raw)/2] ^= 1
	stateBrowser := newViewer("state")
	b.startSignIn(t, stateBrowser, "octocat", "/")
	var state string
	for _, c := range stateBrowser.client.Jar.Cookies(u) {
		if c.Name == "memgate_oauth" {
			state = c.Value
		}
	}
	for name, value := range map[string]string{
		"altered":          base64.RawURLEncoding.EncodeToString(raw),
		"state as session": state,
		"hand-made":        base64.RawURLEncoding.EncodeToString([]byte(`{"i":1,"l":"octocat","t":"x","e":99999999999}`)),
	} {
		jar, _ := cookiejar.New(nil)
		jar.SetCookies(u, []*http.Cookie{{Name: "memgate_user", Value: value, Path: "/"}})
		forged := &viewer{name: "forged cookie: " + name, client: &http.Client{Jar: jar}}
		if b.seesPrivateRun(t, forged) {
			t.Errorf("a %s session cookie sees the private run", name)
		}
	}
	// Signing out ends it.
	req, _ := http.NewRequest(http.MethodPost, b.base+"/logout", nil)
	resp, err := v.noFollow().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if b.seesPrivateRun(t, v) {
		t.Error("still signed in after signing out")
	}
}

func TestSignInRedirectsOnlyWithinTheSite(t *testing.T) {
	b := setupPrivacy(t, "sqlite:"+filepath.Join(t.TempDir(), "redirect.db"), nil)
	for next, want := range map[string]string{
		url.QueryEscape("//evil.example/x"):      "/",
		"%2F%09%2Fevil.example":                  "/",
		url.QueryEscape("/\n/evil.example"):      "/",
		url.QueryEscape(`/\evil.example`):        "/",
		url.QueryEscape("https://evil.example/"): "/",
		url.QueryEscape("javascript:alert(1)"):   "/",
		url.QueryEscape("/runs/7?x=1"):           "/runs/7?x=1",
	} {
		v := newViewer("octocat")
		callback := b.startSignIn(t, v, "octocat", next)
		status, to := step(t, v, callback)
		if status != http.StatusSeeOther || to != want {
			t.Errorf("next=%s: %d to %q, want %q", next, status, to, want)
		}
	}
	// The token form keeps its redirects on the site too.
	v := newViewer("operator")
	form := url.Values{"token": {privToken}, "next": {"/\t/evil.example"}}
	resp, err := v.noFollow().PostForm(b.base+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if to := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || to != "/" {
		t.Errorf("token sign-in with next=/\\t/evil.example: %d to %q", resp.StatusCode, to)
	}
	// The operator's session sees the private run.
	if !b.seesPrivateRun(t, v) {
		t.Error("the API token's session does not see the private run")
	}
}
