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

// Signing in: the API token, typed once into a form, becomes an HTTP-only,
// SameSite=Strict session cookie holding a MAC of it (never the token).
// Writes from the pages also need a CSRF token derived from the session and
// a same-origin Origin header, so another site cannot post them.

const sessionCookie = "memgate_session"

func (p *Pages) mac(purpose string) string {
	m := hmac.New(sha256.New, []byte(p.cfg.APIToken))
	m.Write([]byte("memgate/" + purpose))
	return hex.EncodeToString(m.Sum(nil))
}

func (p *Pages) csrf() string { return p.mac("csrf") }

func (p *Pages) signedIn(c *gin.Context) bool {
	if p.cfg.APIToken == "" {
		return false
	}
	v, err := c.Cookie(sessionCookie)
	return err == nil && subtle.ConstantTimeCompare([]byte(v), []byte(p.mac("session"))) == 1
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

func (p *Pages) loginForm(c *gin.Context) {
	msg := ""
	if p.cfg.APIToken == "" {
		msg = "Signing in is off: this memgate has no MEMGATE_API_TOKEN, so its pages are read-only."
	}
	p.render(c, http.StatusOK, "login", page{Title: "Sign in", Message: msg, Data: localPath(c.Query("next"))})
}

func (p *Pages) login(c *gin.Context) {
	next := localPath(c.PostForm("next"))
	token := c.PostForm("token")
	if p.cfg.APIToken == "" || subtle.ConstantTimeCompare([]byte(token), []byte(p.cfg.APIToken)) != 1 {
		p.render(c, http.StatusUnauthorized, "login", page{Title: "Sign in", Message: "That is not this memgate's API token.", Data: next})
		return
	}
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: p.mac("session"), Path: "/", HttpOnly: true,
		Secure: p.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: 12 * 3600})
	c.Redirect(http.StatusSeeOther, next)
}

func (p *Pages) logout(c *gin.Context) {
	http.SetCookie(c.Writer, &http.Cookie{Name: sessionCookie, Value: "", Path: "/", HttpOnly: true,
		Secure: p.cfg.SecureCookies, SameSite: http.SameSiteStrictMode, MaxAge: -1})
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
