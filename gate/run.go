package gate

import "time"

// RunStatus is where a stored gate run is in its life.
type RunStatus string

// Run statuses. A run ends completed (with a verdict) or cancelled.
const (
	RunQueued    RunStatus = "queued"
	RunRunning   RunStatus = "running"
	RunCompleted RunStatus = "completed"
	RunCancelled RunStatus = "cancelled"
)

// Run is one gate of one commit of a repository, as the server records it:
// what triggered it, where it is, and its report once it has one.
type Run struct {
	ID             int64     `json:"id"`
	Repository     string    `json:"repository"` // owner/name
	PR             int       `json:"pr,omitempty"`
	HeadSHA        string    `json:"head_sha"`
	BaseSHA        string    `json:"base_sha,omitempty"`
	HeadRef        string    `json:"head_ref,omitempty"`
	BaseRef        string    `json:"base_ref,omitempty"`
	CloneURL       string    `json:"clone_url"`
	Private        bool      `json:"private"`
	InstallationID int64     `json:"installation_id,omitempty"`
	Trigger        string    `json:"trigger"` // e.g. pull_request.synchronize, check_run.rerequested, api
	DeliveryID     string    `json:"delivery_id,omitempty"`
	Attempt        int       `json:"attempt"` // 0 for the first gate of a head, +1 per re-run
	RerunOf        int64     `json:"rerun_of,omitempty"`
	Status         RunStatus `json:"status"`
	Verdict        Verdict   `json:"verdict,omitempty"`
	Reason         string    `json:"reason,omitempty"`
	CheckRunID     int64     `json:"check_run_id,omitempty"`
	JobID          int64     `json:"job_id,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	StartedAt      time.Time `json:"started_at,omitzero"`
	FinishedAt     time.Time `json:"finished_at,omitzero"`
	Report         *Report   `json:"report,omitempty"`

	// Headline numbers, for lists: nil until the run has them.
	HeapFluctuation *float64 `json:"heap_fluctuation,omitempty"`
	HeapGrowth      *float64 `json:"heap_growth,omitempty"`
	GoroutineGrowth *float64 `json:"goroutine_growth,omitempty"`
	// Progress is a running gate's latest progress line.
	Progress string `json:"progress,omitempty"`
}

// Duration is how long the run took, or has been running.
func (r *Run) Duration(now time.Time) time.Duration {
	switch {
	case r.StartedAt.IsZero():
		return 0
	case r.FinishedAt.IsZero():
		return now.Sub(r.StartedAt)
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

// Active reports whether the run has not ended.
func (r *Run) Active() bool { return r.Status == RunQueued || r.Status == RunRunning }
