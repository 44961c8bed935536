package access

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrNoSignIn is a GitHub sign-in on a memgate without an OAuth client.
var ErrNoSignIn = errors.New("signing in with GitHub is not configured")

// signInFor is how long a browser may take at GitHub.
const signInFor = 10 * time.Minute

// BeginSignIn starts GitHub's web flow: it binds a fresh state (and where
// to go afterwards) to this browser in a sealed cookie and returns the URL
// to send the browser to.
func (a *Authorizer) BeginSignIn(w http.ResponseWriter, next string) (string, error) {
	if a.seal == nil {
		return "", ErrNoSignIn
	}
	state, err := randomState()
	if err != nil {
		return "", err
	}
	sealed, err := a.seal.seal(stateCookie, pending{State: state, Next: next, Expires: a.cfg.Now().Add(signInFor).Unix()})
	if err != nil {
		return "", err
	}
	// Lax: the browser comes back from github.com with a top-level GET,
	// which Lax cookies accompany and Strict ones would not.
	http.SetCookie(w, a.cookie(stateCookie, sealed, signInFor))
	return a.cfg.GitHub.AuthorizeURL(state), nil
}

// FinishSignIn completes the flow at the callback: the state must be the
// one this browser was given (and is used once), GitHub must accept the
// code, and /user names the user. It sets the session and returns where the
// browser was going. Refusals wrap ErrSignIn.
func (a *Authorizer) FinishSignIn(ctx context.Context, w http.ResponseWriter, r *http.Request) (string, error) {
	if a.seal == nil {
		return "", ErrNoSignIn
	}
	// The state cookie is spent whatever happens next.
	http.SetCookie(w, a.cookie(stateCookie, "", -1))
	var p pending
	c, err := r.Cookie(stateCookie)
	if err != nil {
		return "", fmt.Errorf("%w: this browser did not start a sign-in (or it took over %s)", ErrSignIn, signInFor)
	}
	if err := a.seal.open(stateCookie, c.Value, &p); err != nil || expired(p.Expires, a.cfg.Now()) {
		return "", fmt.Errorf("%w: the sign-in expired or its cookie was altered", ErrSignIn)
	}
	q := r.URL.Query()
	if got := q.Get("state"); got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(p.State)) != 1 {
		return "", fmt.Errorf("%w: state does not match this browser's sign-in", ErrSignIn)
	}
	if e := q.Get("error"); e != "" {
		return "", fmt.Errorf("%w: GitHub said %q", ErrSignIn, e)
	}
	code := q.Get("code")
	if code == "" {
		return "", fmt.Errorf("%w: no code", ErrSignIn)
	}
	token, lifetime, err := a.cfg.GitHub.Exchange(ctx, code)
	if err != nil {
		return "", err
	}
	user, err := a.cfg.GitHub.User(ctx, token)
	if err != nil {
		return "", err
	}
	life := a.cfg.SessionFor
	if lifetime > 0 && lifetime < life {
		life = lifetime
	}
	sealed, err := a.seal.seal(userCookie, session{ID: user.ID, Login: user.Login, Token: token, Expires: a.cfg.Now().Add(life).Unix()})
	if err != nil {
		return "", err
	}
	http.SetCookie(w, a.cookie(userCookie, sealed, life))
	return p.Next, nil
}

// OperatorCookie is the API-token session's cookie. It stays Strict: it
// may re-run gates, and nothing links into memgate that needs it.
func (a *Authorizer) OperatorCookie() *http.Cookie {
	c := a.cookie(operatorCookie, a.operatorMAC(), 12*time.Hour)
	c.SameSite = http.SameSiteStrictMode
	return c
}

// SignOut removes every session cookie.
func (a *Authorizer) SignOut(w http.ResponseWriter) {
	for _, name := range []string{userCookie, stateCookie, operatorCookie} {
		http.SetCookie(w, a.cookie(name, "", -1))
	}
}

// cookie is an HTTP-only, Lax cookie for the whole site; a negative life
// deletes it.
func (a *Authorizer) cookie(name, value string, life time.Duration) *http.Cookie {
	c := &http.Cookie{Name: name, Value: value, Path: "/", HttpOnly: true, Secure: a.cfg.SecureCookies, SameSite: http.SameSiteLaxMode}
	if life < 0 {
		c.MaxAge = -1
	} else {
		c.MaxAge = int(life / time.Second)
		c.Expires = a.cfg.Now().Add(life)
	}
	return c
}
