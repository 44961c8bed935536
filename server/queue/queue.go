// Package queue is memgate's durable job queue: River on the same database
// as the runs, so a webhook's delivery, its run and its job commit together
// and a restart loses no queued gate.
package queue

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"
)

// GateArgs is the job that runs one stored gate run. A job is unique per
// repository, pull request, head commit and re-run number.
type GateArgs struct {
	RunID      int64  `json:"run_id"`
	Repository string `json:"repository" river:"unique"`
	PR         int    `json:"pr" river:"unique"`
	HeadSHA    string `json:"head_sha" river:"unique"`
	Attempt    int    `json:"attempt" river:"unique"`
	// Rescue counts the times the run was handed to a new job because
	// its worker died.
	Rescue int `json:"rescue,omitempty" river:"unique"`
}

// Kind names the job in the queue's tables.
func (GateArgs) Kind() string { return "memgate_gate" }

// Executor runs a stored gate run as job jobID. final says whether the
// queue will try again if Execute returns an error.
type Executor interface {
	Execute(ctx context.Context, runID, jobID int64, final bool) error
}

// Config shapes the queue.
type Config struct {
	// Workers is how many gates this process runs at once; 0 only inserts.
	Workers int
	// JobTimeout cancels a gate that runs longer; it must exceed the
	// longest gate (build, warm-up, window, cooldown, checkout).
	JobTimeout time.Duration
	// RescueAfter re-queues a job whose worker died mid-gate.
	RescueAfter time.Duration
	// MaxAttempts is how often a job is tried before it is discarded.
	MaxAttempts int
	// PollInterval is how often idle workers look for jobs.
	PollInterval time.Duration
	Logger       *slog.Logger
	// Postgres selects River's Postgres driver; otherwise SQLite.
	Postgres bool
}

// DefaultConfig suits one gate at a time on a small machine.
func DefaultConfig() Config {
	return Config{Workers: 1, JobTimeout: 45 * time.Minute, RescueAfter: 50 * time.Minute, MaxAttempts: 2, PollInterval: time.Second}
}

// Queue is a River client over the store's database.
type Queue struct {
	client  *river.Client[*sql.Tx]
	workers int
}

// driver picks River's driver for the database: its SQLite driver, or its
// database/sql driver on Postgres (through pgx), so that a job is inserted
// in the same *sql.Tx as the run on either engine.
func driver(db *sql.DB, postgres bool) riverdriver.Driver[*sql.Tx] {
	if postgres {
		return riverdatabasesql.New(db)
	}
	return riversqlite.New(db)
}

// Migrate applies River's own migrations.
func Migrate(ctx context.Context, db *sql.DB, postgres bool) error {
	m, err := rivermigrate.New(driver(db, postgres), nil)
	if err != nil {
		return fmt.Errorf("queue: migrations: %w", err)
	}
	if _, err := m.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return fmt.Errorf("queue: migrate: %w", err)
	}
	return nil
}

type gateWorker struct {
	river.WorkerDefaults[GateArgs]
	exec    Executor
	timeout time.Duration
}

func (w *gateWorker) Work(ctx context.Context, job *river.Job[GateArgs]) error {
	return w.exec.Execute(ctx, job.Args.RunID, job.ID, job.Attempt >= job.MaxAttempts)
}

func (w *gateWorker) Timeout(*river.Job[GateArgs]) time.Duration { return w.timeout }

// New creates the queue. exec may be nil when cfg.Workers is 0.
func New(db *sql.DB, exec Executor, cfg Config) (*Queue, error) {
	if cfg.Workers < 0 {
		return nil, errors.New("queue: workers must be >= 0")
	}
	if cfg.RescueAfter <= cfg.JobTimeout {
		return nil, fmt.Errorf("queue: rescue after (%s) must exceed the job timeout (%s)", cfg.RescueAfter, cfg.JobTimeout)
	}
	rc := &river.Config{
		Logger:               cfg.Logger,
		JobTimeout:           cfg.JobTimeout,
		RescueStuckJobsAfter: cfg.RescueAfter,
		MaxAttempts:          cfg.MaxAttempts,
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        min(cfg.PollInterval, 100*time.Millisecond),
	}
	if cfg.Workers > 0 {
		if exec == nil {
			return nil, errors.New("queue: workers need an executor")
		}
		workers := river.NewWorkers()
		river.AddWorker(workers, &gateWorker{exec: exec, timeout: cfg.JobTimeout})
		rc.Workers = workers
		rc.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: cfg.Workers}}
	}
	client, err := river.NewClient(driver(db, cfg.Postgres), rc)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return &Queue{client: client, workers: cfg.Workers}, nil
}

// Start starts working jobs (when the queue has workers).
func (q *Queue) Start(ctx context.Context) error {
	if q.workers == 0 {
		return nil
	}
	return q.client.Start(ctx)
}

// Stop stops fetching jobs and waits for running gates to finish, until
// ctx ends; then it cancels them, and River hands them back to the queue.
func (q *Queue) Stop(ctx context.Context) error {
	if q.workers == 0 {
		return nil
	}
	err := q.client.Stop(ctx)
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		hard, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return q.client.StopAndCancel(hard)
	}
	return err
}

// EnqueueTx inserts a gate job in tx. duplicate reports that an equal job
// already exists (and nothing was inserted).
func (q *Queue) EnqueueTx(ctx context.Context, tx *sql.Tx, args GateArgs) (jobID int64, duplicate bool, err error) {
	res, err := q.client.InsertTx(ctx, tx, args, &river.InsertOpts{UniqueOpts: river.UniqueOpts{ByArgs: true}})
	if err != nil {
		return 0, false, fmt.Errorf("queue: insert: %w", err)
	}
	return res.Job.ID, res.UniqueSkippedAsDuplicate, nil
}

// CancelTx cancels a job: a queued one never starts, a running one has its
// context cancelled.
func (q *Queue) CancelTx(ctx context.Context, tx *sql.Tx, jobID int64) error {
	if jobID == 0 {
		return nil
	}
	_, err := q.client.JobCancelTx(ctx, tx, jobID)
	if err != nil && !errors.Is(err, rivertype.ErrNotFound) {
		return fmt.Errorf("queue: cancel job %d: %w", jobID, err)
	}
	return nil
}

// Cancelled wraps err so the queue records the job as cancelled, not
// failed, and does not retry it.
func Cancelled(err error) error { return river.JobCancel(err) }

// Depth counts jobs waiting or running, for metrics.
func (q *Queue) Depth(ctx context.Context, db *sql.DB) (waiting, running int64, err error) {
	err = db.QueryRowContext(ctx, `SELECT
		COUNT(CASE WHEN state IN ('available', 'scheduled', 'retryable', 'pending') THEN 1 END),
		COUNT(CASE WHEN state = 'running' THEN 1 END) FROM river_job`).Scan(&waiting, &running)
	if err != nil {
		return 0, 0, fmt.Errorf("queue: depth: %w", err)
	}
	return waiting, running, nil
}
