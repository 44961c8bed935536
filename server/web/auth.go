package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"

	"github.com/gin-gonic/gin"
)

// Signing in, two ways. People sign in with GitHub (the App's OAuth web
// flow, in package access): they then see the private repositories GitHub
// lets them read. Operators may sign in with the API token, typed once into
// a form (/login?with=token), which becomes an HTTP-only, SameSite=Strict
// session cookie holding a MAC of it (never the token); it sees everything
// and may re-run. Writes from the pages also need a CSRF token derived from
// that session and a same-origin Origin header, so another site cannot post
// them.

func (p *Pages) mac(purpose string) string {
	m := hmac.New(sha256.New, []byte(p.cfg.APIToken))
	m.Write([]byte("memgate/" + purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func (p *Pages) csrf() string { return p.mac("csrf") }

// signedIn: the operator's session (the API token).
func (p *Pages) signedIn(c *gin.Context) bool {
	return p.cfg.APIToken != "" && p.auth.Viewer(c.Request).Operator
}

// allowWrite: signed in, the form's CSRF token, and no foreign Origin.
func (p *Pages) allowWrite(c *gin.Context) bool {
	if !p.signedIn(c) {
		return false
	}
	if subtle.ConstantTimeCompare([]byte(c.PostForm("csrf")), []byte(p.csrf())) != 1 {
		return false
	}
	if origin := c.GetHeader("Origin"); origin != "" && origin != "null" {
		u, err := url.Parse(origin)
		if err != nil || u.Host != c.Request.Host {
			return false
		}
	}
	return true
}

type loginData struct {
	Next   string
	GitHub bool // GitHub sign-in is configured
	Token  bool // the API token form is on
}

// loginForm sends the browser to GitHub when GitHub sign-in is configured
// (operators add ?with=token for the token form); otherwise it shows the
// token form and says that private repositories need the token.
func (p *Pages) loginForm(c *gin.Context) {
	next := localPath(c.Query("next"))
	if p.auth.GitHubSignIn() && c.Query("with") != "token" {
		to, err := p.auth.BeginSignIn(c.Writer, next)
		if err != nil {
			p.fail(c, err)
			return
		}
		c.Redirect(http.StatusFound, to)
		return
	}
	p.render(c, http.StatusOK, "login", page{Title: "Sign in", Message: p.loginNotice(), Data: p.loginData(next)})
}

func (p *Pages) loginNotice() string {
	switch {
	case p.cfg.APIToken == "" && !p.auth.GitHubSignIn():
		return "Signing in is off: this memgate has no MEMGATE_API_TOKEN and no GitHub sign-in, so its pages are read-only and show public repositories only."
	case !p.auth.GitHubSignIn():
		return "Signing in with GitHub is off (MEMGATE_GITHUB_CLIENT_ID is not set): private repositories' runs are visible only with the API token."
	}
	return ""
}

func (p *Pages) loginData(next string) loginData {
	return loginData{Next: next, GitHub: p.auth.GitHubSignIn(), Token: p.cfg.APIToken != ""}
}

// callback is where GitHub sends the browser back.
func (p *Pages) callback(c *gin.Context) {
	next, err := p.auth.FinishSignIn(c.Request.Context(), c.Writer, c.Request)
	if err != nil {
		p.fail(c, err)
		return
	}
	c.Redirect(http.StatusSeeOther, localPath(next))
}

func (p *Pages) login(c *gin.Context) {
	next := localPath(c.PostForm("next"))
	if !p.auth.IsAPIToken(c.PostForm("token")) {
		p.render(c, http.StatusUnauthorized, "login", page{Title: "Sign in", Message: "That is not this memgate's API token.", Data: p.loginData(next)})
		return
	}
	http.SetCookie(c.Writer, p.auth.OperatorCookie())
	c.Redirect(http.StatusSeeOther, next)
}

func (p *Pages) logout(c *gin.Context) {
	p.auth.SignOut(c.Writer)
	c.Redirect(http.StatusSeeOther, "/")
}

// localPath keeps redirects on this site: every redirect to a
// caller-supplied place goes through it, and anything but a plain path of
// this site becomes "/". Browsers do not read a Location as Go does: they
// drop tabs and newlines anywhere and read a backslash as a slash, so
// "/\t/evil.example" and "/\\evil.example" mean "//evil.example", another
// site. Hence no control character and no backslash at all, then a parse
// that must find neither scheme nor host.
func localPath(next string) string {
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return "/"
	}
	for _, r := range next {
		if r < 0x20 || r == 0x7f || r == '\\' || (r >= 0x80 && r < 0xa0) {
			return "/"
		}
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" || !strings.HasPrefix(u.Path, "/") {
		return "/"
	}
	return next
}
