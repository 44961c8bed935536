package access

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// GitHub is the OAuth client of memgate's GitHub App: it signs people in
// (the web flow) and asks GitHub, with the person's own token, what they
// may read.
type GitHub struct {
	ClientID     string
	ClientSecret string
	// WebURL is where people sign in (https://github.com, or a GitHub
	// Enterprise host); APIURL is the REST API (https://api.github.com/).
	WebURL string
	APIURL string
	// RedirectURL is memgate's /login/callback as registered in the App;
	// empty leaves GitHub to use the App's first callback URL.
	RedirectURL string
	HTTP        *http.Client
	perPage     int // list page size; GitHub's maximum unless a test says
}

// User is a person signed in with GitHub.
type User struct {
	ID    int64  `json:"id"`
	Login string `json:"login"`
}

// ErrSignIn is a sign-in GitHub refused: a bad, used or expired code.
var ErrSignIn = errors.New("GitHub refused the sign-in")

// maxGitHubBody bounds what memgate reads of a GitHub answer.
const maxGitHubBody = 1 << 20

func (g *GitHub) client() *http.Client {
	if g.HTTP != nil {
		return g.HTTP
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// AuthorizeURL is where a browser is sent to sign in; GitHub sends it back
// to the callback with a code and this state.
func (g *GitHub) AuthorizeURL(state string) string {
	q := url.Values{"client_id": {g.ClientID}, "state": {state}, "allow_signup": {"false"}}
	if g.RedirectURL != "" {
		q.Set("redirect_uri", g.RedirectURL)
	}
	return strings.TrimRight(g.WebURL, "/") + "/login/oauth/authorize?" + q.Encode()
}

// Exchange trades a callback's code for the user's token and how long it
// lives (0: GitHub did not say). GitHub answers a bad or used code with
// 200 and an "error" field, which is ErrSignIn.
func (g *GitHub) Exchange(ctx context.Context, code string) (string, time.Duration, error) {
	form := url.Values{"client_id": {g.ClientID}, "client_secret": {g.ClientSecret}, "code": {code}}
	if g.RedirectURL != "" {
		form.Set("redirect_uri", g.RedirectURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(g.WebURL, "/")+"/login/oauth/access_token",
		strings.NewReader(form.Encode()))
	if err != nil {
		return "", 0, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	var out struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int64  `json:"expires_in"`
		Error       string `json:"error"`
	}
	status, err := g.do(req, &out)
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("access: token exchange: %w", err)
	case status >= 400 && status < 500, out.Error != "", status == http.StatusOK && out.AccessToken == "":
		// out.Error is GitHub's code ("bad_verification_code"), never a secret.
		return "", 0, fmt.Errorf("%w: token exchange: HTTP %d %s", ErrSignIn, status, out.Error)
	case status != http.StatusOK:
		return "", 0, fmt.Errorf("access: token exchange: HTTP %d", status)
	}
	return out.AccessToken, time.Duration(out.ExpiresIn) * time.Second, nil
}

// User reads who a token belongs to.
func (g *GitHub) User(ctx context.Context, token string) (User, error) {
	req, err := g.apiRequest(ctx, token, "user")
	if err != nil {
		return User{}, err
	}
	var u User
	status, err := g.do(req, &u)
	switch {
	case err != nil:
		return User{}, fmt.Errorf("access: GET /user: %w", err)
	case status == http.StatusUnauthorized:
		return User{}, fmt.Errorf("%w: GET /user: HTTP %d", ErrSignIn, status)
	case status != http.StatusOK || u.Login == "":
		return User{}, fmt.Errorf("access: GET /user: HTTP %d", status)
	}
	return u, nil
}

// CanRead asks GitHub whether the token's user may read a repository: 200
// yes; 404 (GitHub's answer for a private repository one may not see), 403
// and 401 no; anything else is an error, and the caller fails closed.
func (g *GitHub) CanRead(ctx context.Context, token, repo string) (bool, error) {
	owner, name, ok := strings.Cut(repo, "/")
	if !ok {
		return false, nil
	}
	req, err := g.apiRequest(ctx, token, "repos/"+url.PathEscape(owner)+"/"+url.PathEscape(name))
	if err != nil {
		return false, err
	}
	status, err := g.do(req, nil)
	switch {
	case err != nil:
		return false, fmt.Errorf("access: GET /repos/%s: %w", repo, err)
	case status == http.StatusOK:
		return true, nil
	case status == http.StatusNotFound, status == http.StatusForbidden, status == http.StatusUnauthorized:
		return false, nil
	}
	return false, fmt.Errorf("access: GET /repos/%s: HTTP %d", repo, status)
}

func (g *GitHub) apiRequest(ctx context.Context, token, path string) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(g.APIURL, "/")+"/"+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	return req, nil
}

// do sends a request and decodes a JSON answer into out (when not nil).
// Errors name the status, never the request's headers or body.
func (g *GitHub) do(req *http.Request, out any) (int, error) {
	resp, err := g.client().Do(req)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // url.Error repeats the URL; the error is enough
		}
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxGitHubBody))
	if err != nil {
		return resp.StatusCode, err
	}
	if out != nil && resp.StatusCode < 500 && len(body) > 0 {
		if err := json.Unmarshal(body, out); err != nil && resp.StatusCode == http.StatusOK {
			return resp.StatusCode, fmt.Errorf("decoding the answer: %w", err)
		}
	}
	return resp.StatusCode, nil
}

// maxListPages bounds the pages read when listing what a user may read.
const maxListPages = 50

// Readable lists the repositories a user may read through the App's
// installations (GET /user/installations, then each installation's
// repositories for the user), in a few calls however many repositories
// memgate holds. GitHub answers this only for a GitHub App's user tokens;
// an error leaves the caller to ask per repository.
func (g *GitHub) Readable(ctx context.Context, token string) (map[string]bool, error) {
	var installs []struct {
		ID int64 `json:"id"`
	}
	err := g.pages(ctx, token, "user/installations", func(body []byte) (int, error) {
		var page struct {
			Installations []struct {
				ID int64 `json:"id"`
			} `json:"installations"`
		}
		err := json.Unmarshal(body, &page)
		installs = append(installs, page.Installations...)
		return len(page.Installations), err
	})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, in := range installs {
		err := g.pages(ctx, token, fmt.Sprintf("user/installations/%d/repositories", in.ID), func(body []byte) (int, error) {
			var page struct {
				Repositories []struct {
					FullName string `json:"full_name"`
				} `json:"repositories"`
			}
			err := json.Unmarshal(body, &page)
			for _, r := range page.Repositories {
				out[r.FullName] = true
			}
			return len(page.Repositories), err
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// pages reads a paged list until a short page, at most maxListPages.
func (g *GitHub) pages(ctx context.Context, token, path string, page func(body []byte) (int, error)) error {
	per := g.perPage
	if per == 0 {
		per = 100
	}
	for n := 1; n <= maxListPages; n++ {
		req, err := g.apiRequest(ctx, token, fmt.Sprintf("%s?per_page=%d&page=%d", path, per, n))
		if err != nil {
			return err
		}
		var body json.RawMessage
		status, err := g.do(req, &body)
		if err != nil {
			return fmt.Errorf("access: GET /%s: %w", path, err)
		}
		if status != http.StatusOK {
			return fmt.Errorf("access: GET /%s: HTTP %d", path, status)
		}
		got, err := page(body)
		if err != nil {
			return fmt.Errorf("access: GET /%s: %w", path, err)
		}
		if got < per {
			return nil
		}
	}
	return fmt.Errorf("access: GET /%s: more than %d pages", path, maxListPages)
}
