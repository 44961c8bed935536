package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/memgate/memgate/server/access/accesstest"
)

// `memgate serve` configured only through its environment signs people in
// with GitHub: MEMGATE_GITHUB_CLIENT_ID/SECRET name the OAuth client,
// MEMGATE_GITHUB_WEB_URL where to sign in, MEMGATE_PUBLIC_URL the callback.
func TestServeSignsInWithGitHubFromTheEnvironment(t *testing.T) {
	gh := accesstest.New(t)
	gh.AddUser("octocat", 1)
	gh.SignInAs("octocat")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	env := map[string]string{
		"MEMGATE_ADDR": addr, "MEMGATE_DATABASE_URL": "sqlite:" + filepath.Join(t.TempDir(), "m.db"), "MEMGATE_WORKERS": "0",
		"MEMGATE_GITHUB_API_URL": gh.URL + "/", "MEMGATE_GITHUB_WEB_URL": gh.URL, "MEMGATE_PUBLIC_URL": base,
		"MEMGATE_GITHUB_CLIENT_ID": accesstest.ClientID, "MEMGATE_GITHUB_CLIENT_SECRET": accesstest.ClientSecret,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() { done <- runServe(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d", code)
		}
	}()
	waitHTTP(t, base+"/readyz")

	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(base + "/login?next=/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	to, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(to.String(), gh.URL+"/login/oauth/authorize") ||
		to.Query().Get("client_id") != accesstest.ClientID || to.Query().Get("redirect_uri") != base+"/login/callback" {
		t.Fatalf("/login: %d to %s", resp.StatusCode, to)
	}
	var state *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "memgate_oauth" {
			state = c
		}
	}
	if state == nil || !state.HttpOnly || state.SameSite != http.SameSiteLaxMode || state.MaxAge <= 0 {
		t.Fatalf("state cookie %+v", state)
	}
	resp, err = browser.Get(to.String()) // GitHub approves and sends the browser back
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = browser.Get(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var session *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "memgate_user" {
			session = c
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil || !session.HttpOnly || session.SameSite != http.SameSiteLaxMode ||
		session.MaxAge <= 0 || session.MaxAge > 8*3600 {
		t.Fatalf("callback: %d, session cookie %+v", resp.StatusCode, session)
	}
	resp, err = browser.Get(base + resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "octocat") {
		t.Fatalf("after signing in: %d %s", resp.StatusCode, page)
	}
}
