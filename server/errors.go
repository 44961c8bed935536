package server

import (
	"context"
	"errors"
	"net/http"

	"github.com/memgate/memgate/storage"
)

// What can go wrong with a request. Handlers wrap these (or storage's
// classes) with %w; failures below turns them into statuses.
var (
	errBadRequest    = errors.New("bad request")
	errMalformed     = errors.New("malformed payload")
	errUnprocessable = errors.New("unprocessable")
	errStale         = errors.New("event too old")
	errDuplicate     = errors.New("already queued")
	errNoSecret      = errors.New("webhooks are refused: MEMGATE_WEBHOOK_SECRET is not set")
	errBadSignature  = errors.New("invalid or missing X-Hub-Signature-256")
	errNoDelivery    = errors.New("missing or invalid X-GitHub-Delivery")
	errTooLarge      = errors.New("body too large")
	errNeedsApproval = errors.New("needs a maintainer's approval")
)

// Outcomes of deliveries refused or needing nothing done, besides those in
// webhook.go.
const (
	outcomeUnprocessable = "unprocessable"
	outcomeStale         = "stale"
	outcomeReplayed      = "replayed"
	outcomeDuplicateJob  = "duplicate_job"
	outcomeError         = "error"
)

// failure is what an error class means to a client.
type failure struct {
	err    error
	status int // the API's status, and a delivery's unless delivery is set
	// delivery is a webhook delivery's status when it differs: a delivery
	// that has already had its effect is acknowledged, since GitHub would
	// only show a failure that no redelivery can fix.
	delivery int
	outcome  string // a delivery's outcome in the metrics
}

// failures maps errors to statuses: the one place that does. The first
// class the error is (errors.Is) wins; anything else is a 500.
var failures = []failure{
	{err: errNoSecret, status: http.StatusUnauthorized, outcome: outcomeNoSecret},
	{err: errBadSignature, status: http.StatusUnauthorized, outcome: outcomeBadSig},
	{err: errTooLarge, status: http.StatusRequestEntityTooLarge, outcome: outcomeTooLarge},
	{err: errNoDelivery, status: http.StatusBadRequest, outcome: outcomeNoDelivery},
	{err: errMalformed, status: http.StatusBadRequest, outcome: outcomeMalformed},
	{err: errBadRequest, status: http.StatusBadRequest, outcome: outcomeMalformed},
	{err: errUnprocessable, status: http.StatusUnprocessableEntity, outcome: outcomeUnprocessable},
	{err: errStale, status: http.StatusUnprocessableEntity, outcome: outcomeStale},
	{err: errNeedsApproval, status: http.StatusForbidden, outcome: "needs_approval"},
	{err: storage.ErrNotFound, status: http.StatusNotFound, outcome: "not_found"},
	{err: storage.ErrReplayed, status: http.StatusConflict, delivery: http.StatusOK, outcome: outcomeReplayed},
	{err: errDuplicate, status: http.StatusConflict, delivery: http.StatusOK, outcome: outcomeDuplicateJob},
	{err: storage.ErrDuplicate, status: http.StatusConflict, delivery: http.StatusOK, outcome: outcomeDuplicateJob},
	{err: storage.ErrUnavailable, status: http.StatusServiceUnavailable, outcome: outcomeDBDown},
	{err: context.DeadlineExceeded, status: http.StatusServiceUnavailable, outcome: outcomeDBDown},
}

func classify(err error) failure {
	for _, f := range failures {
		if errors.Is(err, f.err) {
			if f.delivery == 0 {
				f.delivery = f.status
			}
			return f
		}
	}
	return failure{err: err, status: http.StatusInternalServerError, delivery: http.StatusInternalServerError, outcome: outcomeError}
}

// statusFor is an API error's status.
func statusFor(err error) int { return classify(err).status }
