package access

import (
	"context"
	"fmt"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/storage"
)

// Reader reads runs as one viewer may see them. A run or repository the
// viewer may not see answers exactly as one that does not exist.
type Reader struct {
	a *Authorizer
	v Viewer
}

// For is the store as v may see it.
func (a *Authorizer) For(v Viewer) Reader { return Reader{a: a, v: v} }

// List lists runs, filtered in the query, so pages and cursors count only
// what the viewer may see.
func (r Reader) List(ctx context.Context, f storage.Filter) ([]gate.Run, int64, error) {
	if f.Repository != "" {
		ok, err := r.a.CanSee(ctx, r.v, f.Repository)
		if err != nil {
			return nil, 0, err
		}
		f.Scope = storage.Scope{All: ok} // not ok: public only, which this repository is not
	} else {
		sc, err := r.a.Scope(ctx, r.v)
		if err != nil {
			return nil, 0, err
		}
		f.Scope = sc
	}
	return r.a.store.ListRuns(ctx, f)
}

// Run is one run with its report.
func (r Reader) Run(ctx context.Context, id int64) (gate.Run, error) {
	if err := r.visibleRun(ctx, id); err != nil {
		return gate.Run{}, err
	}
	return r.a.store.RunWithReport(ctx, id)
}

// ProfileNames lists a run's stored profiles.
func (r Reader) ProfileNames(ctx context.Context, id int64) ([]string, error) {
	if err := r.visibleRun(ctx, id); err != nil {
		return nil, err
	}
	return r.a.store.ProfileNames(ctx, id)
}

// Profile is one stored profile of a run.
func (r Reader) Profile(ctx context.Context, id int64, name string) ([]byte, error) {
	if err := r.visibleRun(ctx, id); err != nil {
		return nil, err
	}
	return r.a.store.Profile(ctx, id, name)
}

// LatestCompleted is a repository's newest completed run (for badges).
func (r Reader) LatestCompleted(ctx context.Context, repo string) (gate.Run, error) {
	if err := r.visibleRepo(ctx, repo, "no completed run of %s: %w", repo); err != nil {
		return gate.Run{}, err
	}
	return r.a.store.LatestCompleted(ctx, repo)
}

// OpenPullRequests lists a repository's open pull requests.
func (r Reader) OpenPullRequests(ctx context.Context, repo string, limit int) ([]int, error) {
	if err := r.visibleRepo(ctx, repo, "no pull requests of %s: %w", repo); err != nil {
		return nil, err
	}
	return r.a.store.OpenPullRequests(ctx, repo, limit)
}

// LatestForPR is a pull request's newest run.
func (r Reader) LatestForPR(ctx context.Context, repo string, pr int) (gate.Run, error) {
	if err := r.visibleRepo(ctx, repo, "no run of %s#%d: %w", repo, pr); err != nil {
		return gate.Run{}, err
	}
	return r.a.store.LatestForPR(ctx, repo, pr)
}

// visibleRun is nil when the run exists and v may see it; otherwise the
// store's own not-found error for that id, word for word.
func (r Reader) visibleRun(ctx context.Context, id int64) error {
	run, err := r.a.store.Run(ctx, id)
	if err != nil {
		return err
	}
	return r.visibleRepo(ctx, run.Repository, "run %d: %w", id)
}

// visibleRepo is nil when v may see the repository, else the not-found
// error the store gives when there is nothing (format's last verb is %w);
// a database error is returned as it is.
func (r Reader) visibleRepo(ctx context.Context, repo, format string, args ...any) error {
	ok, err := r.a.CanSee(ctx, r.v, repo)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf(format, append(args, storage.ErrNotFound)...)
	}
	return nil
}

// Comparison is a run's comparison with its base, nil for a run gated
// alone.
func (r Reader) Comparison(ctx context.Context, id int64) (*gate.Comparison, error) {
	if err := r.visibleRun(ctx, id); err != nil {
		return nil, err
	}
	return r.a.store.Comparison(ctx, id)
}

// AcceptanceOf is the acceptance of a pull request's head commit, or
// storage.ErrNotFound.
func (r Reader) AcceptanceOf(ctx context.Context, repo string, pr int, headSHA, baseSHA string) (storage.Acceptance, error) {
	if err := r.visibleRepo(ctx, repo, "no acceptance of %s#%d: %w", repo, pr); err != nil {
		return storage.Acceptance{}, err
	}
	return r.a.store.AcceptanceOf(ctx, repo, pr, headSHA, baseSHA)
}

// CountRepo is a repository's tally of flakes and acceptances.
func (r Reader) CountRepo(ctx context.Context, repo string) (storage.RepoCounts, error) {
	if err := r.visibleRepo(ctx, repo, "no runs of %s: %w", repo); err != nil {
		return storage.RepoCounts{}, err
	}
	return r.a.store.CountRepo(ctx, repo)
}

// RecentAcceptances lists a repository's newest acceptances.
func (r Reader) RecentAcceptances(ctx context.Context, repo string, limit int) ([]storage.Acceptance, error) {
	if err := r.visibleRepo(ctx, repo, "no acceptances of %s: %w", repo); err != nil {
		return nil, err
	}
	return r.a.store.RecentAcceptances(ctx, repo, limit)
}
