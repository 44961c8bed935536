// Package server is memgate's HTTP face: GitHub webhooks in, the run API,
// health and metrics. Gates run elsewhere (the queue's workers); the server
// only records what arrives and enqueues.
package server

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/server/access"
	"github.com/memgate/memgate/server/checks"
	"github.com/memgate/memgate/server/queue"
	"github.com/memgate/memgate/server/web"
	"github.com/memgate/memgate/server/workspace"
	"github.com/memgate/memgate/storage"
)

// Queue is what the server needs of the job queue.
type Queue interface {
	EnqueueTx(ctx context.Context, tx *sql.Tx, args queue.GateArgs) (jobID int64, duplicate bool, err error)
	CancelTx(ctx context.Context, tx *sql.Tx, jobID int64) error
}

// Reporter shows runs on GitHub as soon as they are queued or cancelled.
type Reporter interface {
	Queued(ctx context.Context, run gate.Run) (int64, error)
	Completed(ctx context.Context, run gate.Run, rep *gate.Report) error
	Compared(ctx context.Context, run gate.Run, c *gate.Comparison, acceptedBy string) error
	Permission(ctx context.Context, repo, user string, installationID int64) (string, error)
	Cancelled(ctx context.Context, run gate.Run, reason string) error
	NeedsApproval(ctx context.Context, run gate.Run, text string) error
	ActionRequired(ctx context.Context, run gate.Run, title, text string) error
	PullRequest(ctx context.Context, repo string, number int, installationID int64) (checks.PullRequest, error)
}

// Config configures the server.
type Config struct {
	WebhookSecret string // without it every delivery is refused
	APIToken      string // bearer token for API writes; without it writes are refused
	GateDrafts    bool   // gate draft pull requests too
	MaxBody       int64  // webhook body limit; GitHub caps payloads at 25 MB
	GitHubURL     string // where pages link commits and pull requests
	SecureCookies bool   // memgate is served over HTTPS
	// AllowForks gates pull requests from forks without approval (private
	// setups only). Otherwise a maintainer approves each head commit by
	// adding ApproveLabel.
	AllowForks   bool
	ApproveLabel string
	// NotReady, when set, says why this process cannot gate (no sandbox):
	// /readyz answers 503 with it.
	NotReady string
	// SignIn is the GitHub App's OAuth client for signing people in; nil:
	// private repositories' runs are visible with the API token only.
	SignIn *access.GitHub
	// MaxEventAge refuses deliveries whose payload says the event happened
	// longer ago (see checkAge); 0 sets no bound.
	MaxEventAge time.Duration
	// WorkDir, when set, is where this process's gates make their
	// workspaces: /readyz reports it once it becomes unusable.
	WorkDir string
}

// Server handles HTTP.
type Server struct {
	cfg      Config
	store    *storage.Store
	queue    Queue
	reporter Reporter
	metrics  *Metrics
	pages    *web.Pages
	auth     *access.Authorizer // who may read which runs
	log      *slog.Logger
	// bg is the server's own context: work that outlives a request (GitHub
	// calls after a delivery is committed) hangs off it, never off the
	// request's.
	bg context.Context
	// followups counts that work, so a stopping server can let it finish.
	followups sync.WaitGroup
}

// New creates a server. bg bounds background work started by requests.
func New(bg context.Context, cfg Config, store *storage.Store, q Queue, reporter Reporter, metrics *Metrics, log *slog.Logger) (*Server, error) {
	if cfg.MaxBody == 0 {
		cfg.MaxBody = 25 << 20
	}
	if cfg.ApproveLabel == "" {
		cfg.ApproveLabel = "memgate/ok-to-test"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if metrics == nil {
		metrics = NewMetrics(store)
	}
	auth, err := access.New(access.Config{APIToken: cfg.APIToken, GitHub: cfg.SignIn, SecureCookies: cfg.SecureCookies}, store, log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, store: store, queue: q, reporter: reporter, metrics: metrics, auth: auth, log: log, bg: bg}
	pages, err := web.New(web.Config{APIToken: cfg.APIToken, GitHubURL: cfg.GitHubURL, SecureCookies: cfg.SecureCookies, StatusOf: statusFor}, auth, s, log)
	if err != nil {
		return nil, err
	}
	s.pages = pages
	return s, nil
}

// Handler is the server's routes.
func (s *Server) Handler() http.Handler {
	gin.SetMode(gin.ReleaseMode)
	r := gin.New()
	r.Use(gin.Recovery(), s.accessLog)
	r.POST("/webhook", s.webhook)
	r.GET("/healthz", func(c *gin.Context) { c.JSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.readyz)
	r.GET("/metrics", gin.WrapH(s.metrics.Handler()))

	api := r.Group("/api/v1")
	api.GET("/runs", s.listRuns)
	api.GET("/runs/:id", s.getRun)
	api.GET("/runs/:id/profiles/:name", s.getProfile)
	api.POST("/runs", s.requireToken, s.createRun)
	api.POST("/runs/:id/rerun", s.requireToken, s.rerun)

	s.pages.Register(r)
	r.NoRoute(func(c *gin.Context) {
		if strings.HasPrefix(c.Request.URL.Path, "/api/") {
			c.JSON(http.StatusNotFound, gin.H{"error": "no such endpoint"})
			return
		}
		s.pages.NotFound(c)
	})
	return r
}

func (s *Server) accessLog(c *gin.Context) {
	start := time.Now()
	c.Next()
	if c.Request.URL.Path == "/healthz" || c.Request.URL.Path == "/metrics" {
		return
	}
	s.log.Info("http", "method", c.Request.Method, "path", c.Request.URL.Path, "status", c.Writer.Status(),
		"took", time.Since(start).Round(time.Microsecond))
}

func (s *Server) readyz(c *gin.Context) {
	ctx, cancel := context.WithTimeout(c.Request.Context(), 2*time.Second)
	defer cancel()
	if err := s.store.Ping(ctx); err != nil {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "database unreachable", "error": err.Error()})
		return
	}
	if s.cfg.NotReady != "" {
		c.JSON(http.StatusServiceUnavailable, gin.H{"status": "cannot gate", "error": s.cfg.NotReady})
		return
	}
	if s.cfg.WorkDir != "" {
		if err := workspace.CheckRoot(s.cfg.WorkDir); err != nil {
			c.JSON(http.StatusServiceUnavailable, gin.H{"status": "workdir unusable", "error": err.Error()})
			return
		}
	}
	c.JSON(http.StatusOK, gin.H{"status": "ready"})
}

// requireToken guards API writes with MEMGATE_API_TOKEN.
func (s *Server) requireToken(c *gin.Context) {
	got, ok := strings.CutPrefix(c.GetHeader("Authorization"), "Bearer ")
	if !ok || !s.auth.IsAPIToken(got) {
		c.Header("WWW-Authenticate", `Bearer realm="memgate"`)
		msg := "a valid bearer token is required"
		if s.cfg.APIToken == "" {
			msg = "API writes are disabled: MEMGATE_API_TOKEN is not set"
		}
		c.AbortWithStatusJSON(http.StatusUnauthorized, gin.H{"error": msg})
		return
	}
	c.Next()
}

func (s *Server) fail(c *gin.Context, err error) {
	status := statusFor(err)
	if status >= 500 {
		s.log.Error("request failed", "path", c.Request.URL.Path, "err", err)
	}
	c.AbortWithStatusJSON(status, gin.H{"error": err.Error()})
}

// background runs fn after the request, bounded by the server's context.
func (s *Server) background(what string, fn func(ctx context.Context) error) {
	s.followups.Add(1)
	go func() {
		defer s.followups.Done()
		ctx, cancel := context.WithTimeout(s.bg, 5*time.Minute)
		defer cancel()
		if err := fn(ctx); err != nil {
			s.log.Warn("background work failed", "what", what, "err", err)
		}
	}()
}

// Drain waits, until ctx ends, for the work started after requests (check
// runs being created, cancellations being posted) to finish, so that a
// stopping server leaves no check run half-made. Call it once no request
// can start more.
func (s *Server) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		s.followups.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
