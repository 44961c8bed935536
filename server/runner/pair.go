package runner

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/memgate/memgate/gate"
	"github.com/memgate/memgate/gate/config"
	"github.com/memgate/memgate/gate/pipeline"
	"github.com/memgate/memgate/server/workspace"
	"github.com/memgate/memgate/storage"
)

// A pull request's head is gated with its base beside it: the base commit
// with the base's config, the same config the head is judged by. A base's
// result is kept (storage's base_results) and reused by every pull request
// on the same base commit and config, so a busy repository pays for each
// base once; two pull requests on one base at once measure it once (the
// first claims it, the other waits for its result).
//
// A stored base result is not reused, but measured again, when:
//   - the config differs: the key's ConfigHash covers the base's effective
//     config and memgate's version (Options.Version), so a new memgate or
//     any change to .memgate.yml on the base measures anew;
//   - it is older than Options.BaseMaxAge (7 days by default): the
//     workers' machine, kernel and Go toolchain drift under a number;
//   - the base's gate errored or was inconclusive: only pass and fail are
//     kept, so a broken measurement is never reused; and a failure only
//     once a second run bore it out (corroborated);
//   - its measurer died: its claim's lease (renewed while it measures)
//     runs out and the next run takes the base over.

// Pair is a pull request's head and its base, to gate alike and compare.
type Pair struct {
	Head    pipeline.Options
	HeadSHA string
	Base    PairBase
}

// PairBase is a Pair's base: a checkout to gate (Dir, Config, Files), or a
// stored result to compare against instead (Stored).
type PairBase struct {
	SHA, Ref string
	Dir      string
	Config   config.Config
	Files    pipeline.RepoFiles
	OwnsDir  bool
	// Stored is the base's kept result, reused; StoredRun is the run that
	// measured it.
	Stored    *gate.Report
	StoredRun int64
}

// PairResult is what gating a Pair found.
type PairResult struct {
	// Comparison is the verdict; its Base.Report is the base's report
	// when the base was gated here (Base.Reused false), kept for others.
	Comparison gate.Comparison
	Head       pipeline.Result // the head's report and profiles
}

// PairGate gates a pull request's head with its base beside it: the
// compare orchestration of gate/pair in memgate serve. A nil PairGate
// gates the head alone, against the config's limits only.
type PairGate func(ctx context.Context, p Pair) PairResult

// BaseStore keeps base results for reuse.
type BaseStore interface {
	ClaimBase(ctx context.Context, key storage.BaseKey, runID int64, lease, maxAge time.Duration) (storage.BaseClaim, error)
	RenewBase(ctx context.Context, id, runID int64, lease time.Duration) (bool, error)
	FinishBase(ctx context.Context, id, runID int64, rep *gate.Report) (bool, error)
	ReleaseBase(ctx context.Context, id, runID int64) error
}

// gated is a gate's outcome: the head's result, and for a pull request
// gated beside its base the comparison and the kept base result it used
// (0: none kept; the base's report then stays inside the comparison).
type gated struct {
	pipeline.Result
	cmp    *gate.Comparison
	baseID int64
}

// pairable reports whether a run is gated beside its base: a pull
// request's head with a known base that is another commit.
func (r *Runner) pairable(run gate.Run) bool {
	return r.opts.Pair != nil && run.PR != 0 && run.BaseSHA != "" && run.BaseSHA != run.HeadSHA
}

// ConfigHash is the part of a base result's key that is not a commit: the
// effective config the base is gated with, and memgate's version.
func ConfigHash(cfg config.Config, version string) (string, error) {
	data, err := json.Marshal(cfg)
	if err != nil {
		return "", fmt.Errorf("config hash: %w", err)
	}
	h := sha256.New()
	fmt.Fprintf(h, "memgate %s\n", version)
	h.Write(data)
	return hex.EncodeToString(h.Sum(nil)), nil
}

// gatePair gates the head with its base beside it, reusing the base's kept
// result or measuring (and keeping) it.
func (r *Runner) gatePair(ctx context.Context, run gate.Run, token string, head pipeline.Options, log *slog.Logger) (gated, error) {
	hash, err := ConfigHash(head.Config, r.opts.Version)
	if err != nil {
		return gated{}, err
	}
	key := storage.BaseKey{Repository: run.Repository, BaseSHA: run.BaseSHA, ConfigHash: hash}
	claim, err := r.claimBase(ctx, run, key, head.Progress)
	if err != nil {
		return gated{}, err
	}
	p := Pair{Head: head, HeadSHA: run.HeadSHA,
		Base: PairBase{SHA: run.BaseSHA, Ref: run.BaseRef, Config: head.Config, Files: head.Files}}
	if claim.Report != nil {
		log.Info("reusing the base's kept result", "base", gate.ShortSHA(run.BaseSHA), "measured_by_run", claim.RunID)
		p.Base.Stored, p.Base.StoredRun = claim.Report, claim.RunID
		res := r.opts.Pair(ctx, p)
		return gated{Result: res.Head, cmp: &res.Comparison, baseID: claim.ID}, nil
	}
	// This run measures the base. Whatever happens, the claim ends: kept,
	// or given back for the next run on this base.
	kept := false
	defer func() {
		if kept {
			return
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if err := r.store.ReleaseBase(rctx, claim.ID, run.ID); err != nil {
			log.Warn("could not give the base claim back; it lapses with its lease", "err", err)
		}
	}()
	ws, err := workspace.Checkout(ctx, r.opts.WorkDir, run.CloneURL, run.BaseSHA, nil, token,
		workspace.Options{AllowLocal: r.opts.AllowLocalRepos, Env: r.opts.GitEnv})
	if err != nil {
		return gated{}, fmt.Errorf("checking the base %s out: %w", gate.ShortSHA(run.BaseSHA), err)
	}
	defer ws.Remove()
	p.Base.Dir, p.Base.OwnsDir = ws.Dir, true
	stop := r.renewBase(ctx, claim.ID, run.ID, log)
	res := r.opts.Pair(ctx, p)
	stop()
	out := gated{Result: res.Head, cmp: &res.Comparison}
	if base := res.Comparison.Base.Report; base != nil && !res.Comparison.Base.Reused && ctx.Err() == nil && corroborated(res.Comparison) {
		ok, err := r.store.FinishBase(ctx, claim.ID, run.ID, base)
		if err != nil {
			log.Warn("could not keep the base's result", "err", err)
		}
		if ok {
			kept, out.baseID = true, claim.ID
		}
	}
	return out, nil
}

// corroborated reports whether a base's result may be kept for other pull
// requests: a pass, or a failure that a second run bore out (the head
// failing alike, "already", or the base failing again beside a
// confirmation). A single failing run may be a noisy machine's, and kept
// it would tell every pull request on that base for a week that the leak
// is main's (found by an attacker's review); such a base is measured
// again by the next run.
func corroborated(c gate.Comparison) bool {
	switch c.Base.Verdict {
	case gate.Pass:
		return true
	case gate.Fail:
		if c.Outcome == gate.OutcomeAlready {
			return true
		}
		for _, b := range c.BaseConfirmations {
			if b.Verdict == gate.Fail {
				return true
			}
		}
	}
	return false
}

// claimBase finds the base's kept result or claims its measuring, waiting
// while another run measures it.
func (r *Runner) claimBase(ctx context.Context, run gate.Run, key storage.BaseKey, progress pipeline.Progress) (storage.BaseClaim, error) {
	told := false
	for {
		c, err := r.store.ClaimBase(ctx, key, run.ID, r.opts.BaseLease, r.opts.BaseMaxAge)
		if err != nil || c.Mine || c.Report != nil {
			return c, err
		}
		if !told && progress != nil {
			progress.Phase("base", fmt.Sprintf("another gate is measuring the base %s with this config; waiting for its result", gate.ShortSHA(run.BaseSHA)))
			told = true
		}
		select {
		case <-ctx.Done():
			return c, ctx.Err()
		case <-time.After(r.opts.BaseWait):
		}
	}
}

// renewBase keeps the claim on a base being measured alive until stop.
func (r *Runner) renewBase(ctx context.Context, id, runID int64, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(r.opts.BaseLease / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if ok, err := r.store.RenewBase(ctx, id, runID, r.opts.BaseLease); err != nil || !ok {
					log.Warn("base claim not renewed; another run may measure the base too", "ok", ok, "err", err)
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}
