package queue

import (
	"context"
	"fmt"

	"github.com/riverqueue/river"
)

// Job states, as River names them, and JobGone for a job no longer in the
// queue's tables (River deletes finished jobs after a while).
const (
	JobDiscarded = "discarded" // failed on every attempt: River gave up
	JobCancelled = "cancelled"
	JobCompleted = "completed"
	JobRunning   = "running"
	JobGone      = "gone"
)

// Job is what the queue knows of one job.
type Job struct {
	State    string
	Attempts int
	// LastError is the last attempt's error or panic, if any.
	LastError string
}

// Ended reports whether the job will never run again.
func (j Job) Ended() bool {
	return j.State == JobDiscarded || j.State == JobCancelled || j.State == JobCompleted || j.State == JobGone
}

// Jobs looks jobs up by id; every id is in the answer, JobGone when the
// queue has no such job.
func (q *Queue) Jobs(ctx context.Context, ids []int64) (map[int64]Job, error) {
	out := make(map[int64]Job, len(ids))
	for start := 0; start < len(ids); start += 1000 {
		batch := ids[start:min(start+1000, len(ids))]
		res, err := q.client.JobList(ctx, river.NewJobListParams().IDs(batch...).First(len(batch)))
		if err != nil {
			return nil, fmt.Errorf("queue: list jobs: %w", err)
		}
		for _, j := range res.Jobs {
			job := Job{State: string(j.State), Attempts: j.Attempt}
			if n := len(j.Errors); n > 0 {
				job.LastError = j.Errors[n-1].Error
			}
			out[j.ID] = job
		}
	}
	for _, id := range ids {
		if _, ok := out[id]; !ok {
			out[id] = Job{State: JobGone}
		}
	}
	return out, nil
}
