// Package web is memgate's gate history: server-rendered pages (html/template,
// assets embedded, no CDN) for runs, a run's report with its charts, a
// repository's trends, and README badges.
package web

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/storage"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Rerunner queues a new attempt of a stored run.
type Rerunner interface {
	Rerun(ctx context.Context, id int64) (int64, error)
}

// Config configures the pages.
type Config struct {
	// APIToken signs in to re-run from the pages; without it the pages are
	// read-only.
	APIToken string
	// GitHubURL is where commits and pull requests link to.
	GitHubURL string
	// SecureCookies marks the session cookie Secure (memgate behind HTTPS).
	SecureCookies bool
	// StatusOf is the server's error table: the status a failure of the
	// server's operations (a re-run refused for an unapproved fork) reads
	// as. nil treats every such failure as the server's own (500).
	StatusOf func(error) int
}

// Pages serves the history pages.
type Pages struct {
	cfg Config
	// auth is the only way to run data: every page reads through a
	// Reader for its viewer.
	auth   *access.Authorizer
	rerun  Rerunner
	tmpl   map[string]*template.Template
	log    *slog.Logger
	now    func() time.Time
	static http.Handler
}

// New parses the templates; a template error is returned, never ignored.
func New(cfg Config, auth *access.Authorizer, rerun Rerunner, log *slog.Logger) (*Pages, error) {
	if cfg.GitHubURL == "" {
		cfg.GitHubURL = "https://github.com"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pages{cfg: cfg, auth: auth, rerun: rerun, log: log, now: time.Now, tmpl: map[string]*template.Template{}}
	funcs := template.FuncMap{
		"bytes": func(v float64) string { return gate.FormatBytes(v) },
		"value": gate.FormatValue,
		"count": func(v int64) string { return gate.FormatCount(v) },
		"short": gate.ShortSHA,
		"ago":   p.ago,
		"utc":   func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 UTC") },
		"dur":   roundDur,
		"pct": func(v *float64) string {
			return optFmt(v, func(f float64) string { return fmt.Sprintf("%.1f%%", 100*f) })
		},
		"per1k":     func(v *float64) string { return optFmt(v, func(f float64) string { return fmt.Sprintf("%+.2f", f) }) },
		"ghCommit":  func(repo, sha string) string { return p.cfg.GitHubURL + "/" + repo + "/commit/" + sha },
		"ghPR":      func(repo string, n int) string { return fmt.Sprintf("%s/%s/pull/%d", p.cfg.GitHubURL, repo, n) },
		"upper":     strings.ToUpper,
		"countu":    func(v uint64) string { return gate.FormatCount(int64(v)) },
		"mul100":    func(v float64) float64 { return 100 * v },
		"float":     func(v int64) float64 { return float64(v) },
		"lat":       func(d gate.Duration) string { return roundLatency(d.Std()) },
		"source":    p.source,
		"anySource": anySource,
		"inc":       func(i int) int { return i + 1 },
	}
	pages, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, page := range pages {
		name := strings.TrimSuffix(strings.TrimPrefix(page, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", page)
		if err != nil {
			return nil, fmt.Errorf("web: template %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
	sub, _ := fs.Sub(staticFS, "static")
	p.static = http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
	return p, nil
}

// Register adds the pages to a router.
func (p *Pages) Register(r gin.IRouter) {
	r.GET("/", p.list)
	r.GET("/runs/:id", p.run)
	r.POST("/runs/:id/rerun", p.rerunForm)
	r.GET("/repos/:owner/:repo", p.repo)
	r.GET("/badge/:owner/:repo", p.badge)
	r.GET("/login", p.loginForm)
	r.GET("/login/callback", p.callback)
	r.POST("/login", p.login)
	r.POST("/logout", p.logout)
	r.GET("/static/*file", func(c *gin.Context) {
		c.Header("Cache-Control", "public, max-age=3600")
		p.static.ServeHTTP(c.Writer, c.Request)
	})
}

// NotFound renders the 404 page.
func (p *Pages) NotFound(c *gin.Context) {
	p.render(c, http.StatusNotFound, "notfound", page{Title: "Not found", Message: "There is no page at " + c.Request.URL.Path + "."})
}

// page is what every template gets.
type page struct {
	Title    string
	Message  string
	SignedIn bool   // the operator (API token): re-runs allowed
	User     string // the GitHub user signed in
	CSRF     string
	Path     string
	Data     any
}

func (p *Pages) render(c *gin.Context, status int, name string, pg page) {
	t, ok := p.tmpl[name]
	if !ok {
		c.String(http.StatusInternalServerError, "no template %s", name)
		return
	}
	v := p.auth.Viewer(c.Request)
	pg.SignedIn = p.cfg.APIToken != "" && v.Operator
	if v.User != nil {
		pg.User = v.User.Login
	}
	if pg.SignedIn {
		pg.CSRF = p.csrf()
	}
	pg.Path = c.Request.URL.RequestURI()
	c.Header("Content-Type", "text/html; charset=utf-8")
	c.Header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'")
	c.Header("X-Content-Type-Options", "nosniff")
	c.Status(status)
	if err := t.Execute(c.Writer, pg); err != nil {
		p.log.Error("render", "page", name, "err", err)
	}
}

// fail maps an error to a status and a page, in one place.
func (p *Pages) fail(c *gin.Context, err error) {
	switch {
	case errors.Is(err, storage.ErrNotFound):
		p.render(c, http.StatusNotFound, "notfound", page{Title: "Not found", Message: err.Error()})
	case errors.Is(err, access.ErrSignIn):
		p.log.Warn("sign-in refused", "err", err)
		p.render(c, http.StatusForbidden, "notfound", page{Title: "Sign-in refused",
			Message: "memgate could not sign you in: " + err.Error() + ". Start again from the Sign in link."})
	case errors.Is(err, access.ErrNoSignIn):
		p.render(c, http.StatusNotFound, "notfound", page{Title: "Not found", Message: err.Error()})
	case p.cfg.StatusOf != nil && p.cfg.StatusOf(err) < http.StatusInternalServerError:
		// Refused, not broken: the message says why and what to do.
		status := p.cfg.StatusOf(err)
		p.render(c, status, "notfound", page{Title: http.StatusText(status), Message: err.Error()})
	default:
		p.log.Error("page failed", "path", c.Request.URL.Path, "err", err)
		p.render(c, http.StatusInternalServerError, "notfound", page{Title: "Something went wrong", Message: "memgate could not load this page: " + err.Error()})
	}
}

// reader is the store as this request's viewer may see it.
func (p *Pages) reader(c *gin.Context) access.Reader { return p.auth.For(p.auth.Viewer(c.Request)) }

// --- the list ---------------------------------------------------------------

type listData struct {
	Runs       []gate.Run
	Repository string
	PR         string
	Verdict    string
	Verdicts   []string
	Next       string
	Filtered   bool
	Now        time.Time
}

func (p *Pages) list(c *gin.Context) {
	d := listData{Repository: strings.TrimSpace(c.Query("repository")), PR: c.Query("pr"), Verdict: c.Query("verdict"),
		Verdicts: []string{"pass", "fail", "neutral", "error", "inconclusive"}, Now: p.now()}
	f := storage.Filter{Repository: d.Repository, Verdict: gate.Verdict(d.Verdict), Limit: 50}
	if d.PR != "" {
		n, err := strconv.Atoi(d.PR)
		if err != nil || n < 0 {
			p.render(c, http.StatusBadRequest, "notfound", page{Title: "Bad filter", Message: "pr must be a number"})
			return
		}
		f.PR = n
	}
	if cur := c.Query("cursor"); cur != "" {
		n, err := strconv.ParseInt(cur, 10, 64)
		if err != nil || n < 0 {
			p.render(c, http.StatusBadRequest, "notfound", page{Title: "Bad page", Message: "cursor must be a number"})
			return
		}
		f.Before = n
	}
	runs, next, err := p.reader(c).List(c.Request.Context(), f)
	if err != nil {
		p.fail(c, err)
		return
	}
	d.Runs = runs
	d.Filtered = d.Repository != "" || d.PR != "" || d.Verdict != "" || f.Before != 0
	if next != 0 {
		q := url.Values{}
		for k, v := range map[string]string{"repository": d.Repository, "pr": d.PR, "verdict": d.Verdict} {
			if v != "" {
				q.Set(k, v)
			}
		}
		q.Set("cursor", strconv.FormatInt(next, 10))
		d.Next = "/?" + q.Encode()
	}
	p.render(c, http.StatusOK, "list", page{Title: "Gate runs", Data: d})
}

// --- helpers ------------------------------------------------------------------

func (p *Pages) ago(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := p.now().Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%d min ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h ago", int(d.Hours()))
	}
	return fmt.Sprintf("%d days ago", int(d.Hours()/24))
}

func roundDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

func roundLatency(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}

func optFmt(v *float64, f func(float64) string) string {
	if v == nil || math.IsNaN(*v) {
		return "–"
	}
	return f(*v)
}
