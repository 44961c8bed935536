// Package access decides who may see which runs, in one place: public
// repositories' runs for everyone; a private repository's runs only for the
// API token (operators, automation) and for a user signed in with GitHub
// whom GitHub lets read that repository. Every read of run data — lists,
// pages, badges, profiles, the JSON API — goes through a Reader, and a
// repository memgate is not sure is public counts as private.
package access

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/memgate/memgate/storage"
)

// Config configures an Authorizer.
type Config struct {
	// APIToken is MEMGATE_API_TOKEN: its holder sees every run.
	APIToken string
	// GitHub signs users in; nil turns GitHub sign-in off, and private
	// repositories' runs are then visible with the API token only.
	GitHub *GitHub
	// SecureCookies marks cookies Secure (memgate behind HTTPS).
	SecureCookies bool
	// CacheFor is how long GitHub's answer about a user and a repository
	// is trusted (default 5 minutes): revoked access stops after it.
	CacheFor time.Duration
	// SessionFor is how long a GitHub sign-in lasts (default 8 hours, or
	// less when GitHub's token expires sooner).
	SessionFor time.Duration
	Now        func() time.Time
}

// Authorizer applies the visibility rule.
type Authorizer struct {
	cfg   Config
	store *storage.Store
	seal  *sealer // nil without GitHub sign-in
	log   *slog.Logger

	mu     sync.Mutex
	grants map[grantKey]grant
}

type grantKey struct {
	user int64
	repo string
}

type grant struct {
	ok    bool
	until time.Time
}

// maxGrants bounds the cache: past it, expired answers are dropped, and if
// none were, all.
const maxGrants = 50_000

// lookups is how many repositories are asked about at once when listing.
const lookups = 4

// New makes an Authorizer.
func New(cfg Config, store *storage.Store, log *slog.Logger) (*Authorizer, error) {
	if cfg.CacheFor == 0 {
		cfg.CacheFor = 5 * time.Minute
	}
	if cfg.SessionFor == 0 {
		cfg.SessionFor = 8 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &Authorizer{cfg: cfg, store: store, log: log, grants: map[grantKey]grant{}}
	if cfg.GitHub != nil {
		s, err := newSealer(cfg.GitHub.ClientSecret)
		if err != nil {
			return nil, err
		}
		a.seal = s
	}
	return a, nil
}

// GitHubSignIn reports whether users can sign in with GitHub.
func (a *Authorizer) GitHubSignIn() bool { return a.seal != nil }

// CanSee reports whether a viewer may see a repository's runs.
func (a *Authorizer) CanSee(ctx context.Context, v Viewer, repo string) (bool, error) {
	if v.Operator {
		return true, nil
	}
	private, known, err := a.store.Visibility(ctx, nil, repo)
	switch {
	case err != nil:
		return false, err
	case !known:
		// memgate holds nothing of it: no need to spend the user's rate
		// limit asking GitHub about names anyone can make up.
		return false, nil
	case !private:
		return true, nil
	}
	return a.userCanRead(ctx, v, repo), nil
}

// Scope is the part of the store a viewer may list: public repositories,
// and the private ones GitHub lets the user read.
func (a *Authorizer) Scope(ctx context.Context, v Viewer) (storage.Scope, error) {
	if v.Operator {
		return storage.Scope{All: true}, nil
	}
	if v.User == nil {
		return storage.Scope{}, nil
	}
	private, err := a.store.PrivateRepositories(ctx)
	if err != nil {
		return storage.Scope{}, err
	}
	a.learn(ctx, v, private)
	ok := make([]bool, len(private))
	var wg sync.WaitGroup
	sem := make(chan struct{}, lookups)
	for i, repo := range private {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			ok[i] = a.userCanRead(ctx, v, repo)
		}()
	}
	wg.Wait()
	var sc storage.Scope
	for i, repo := range private {
		if ok[i] {
			sc.Private = append(sc.Private, repo)
		}
	}
	return sc, nil
}

// learn asks GitHub once for every repository the user may read when more
// than one of repos has no fresh answer, and keeps an answer for each: a
// list page then costs a few calls however many private repositories
// memgate holds. If GitHub will not list them (a token that is not a
// GitHub App's), userCanRead asks per repository.
func (a *Authorizer) learn(ctx context.Context, v Viewer, repos []string) {
	if v.User == nil || v.token == "" || a.cfg.GitHub == nil {
		return
	}
	now := a.cfg.Now()
	missing := 0
	a.mu.Lock()
	for _, repo := range repos {
		if g, hit := a.grants[grantKey{user: v.User.ID, repo: repo}]; !hit || !now.Before(g.until) {
			missing++
		}
	}
	a.mu.Unlock()
	if missing < 2 {
		return
	}
	readable, err := a.cfg.GitHub.Readable(ctx, v.token)
	if err != nil {
		a.log.Info("could not list a user's repositories; asking per repository", "user", v.User.Login, "err", err)
		return
	}
	lower := make(map[string]bool, len(readable))
	for name := range readable {
		lower[strings.ToLower(name)] = true
	}
	for _, repo := range repos {
		a.remember(grantKey{user: v.User.ID, repo: repo}, grant{ok: lower[strings.ToLower(repo)], until: now.Add(a.cfg.CacheFor)}, now)
	}
}

// userCanRead asks GitHub, with the user's token, whether they may read a
// private repository, and keeps the answer for CacheFor. An error is a no
// (fail closed) and is not kept.
func (a *Authorizer) userCanRead(ctx context.Context, v Viewer, repo string) bool {
	if v.User == nil || v.token == "" || a.cfg.GitHub == nil {
		return false
	}
	key := grantKey{user: v.User.ID, repo: repo}
	now := a.cfg.Now()
	a.mu.Lock()
	g, hit := a.grants[key]
	a.mu.Unlock()
	if hit && now.Before(g.until) {
		return g.ok
	}
	ok, err := a.cfg.GitHub.CanRead(ctx, v.token, repo)
	if err != nil {
		a.log.Warn("could not ask GitHub about a user's access; refusing", "user", v.User.Login, "repository", repo, "err", err)
		return false
	}
	a.remember(key, grant{ok: ok, until: now.Add(a.cfg.CacheFor)}, now)
	return ok
}

func (a *Authorizer) remember(key grantKey, g grant, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.grants) >= maxGrants {
		for k, old := range a.grants {
			if !now.Before(old.until) {
				delete(a.grants, k)
			}
		}
		if len(a.grants) >= maxGrants {
			a.grants = map[grantKey]grant{}
		}
	}
	a.grants[key] = g
}
