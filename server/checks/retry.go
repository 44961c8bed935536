package checks

import (
	"context"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// retryTransport retries GitHub API calls that failed for reasons that pass:
// 5xx, 429, a 403 from a rate limit, and network errors. It honours
// Retry-After and X-RateLimit-Reset, and backs off exponentially otherwise.
type retryTransport struct {
	base     http.RoundTripper
	attempts int
	maxWait  time.Duration
	log      *slog.Logger
}

func newRetryTransport(base http.RoundTripper, log *slog.Logger) *retryTransport {
	if base == nil {
		base = http.DefaultTransport
	}
	return &retryTransport{base: base, attempts: 6, maxWait: 60 * time.Second, log: log}
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && req.Body != nil {
			if req.GetBody == nil {
				return t.base.RoundTrip(req) // cannot replay the body: one try
			}
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(req.Context())
			r.Body = body
		}
		resp, err := t.base.RoundTrip(r)
		wait, retry := t.shouldRetry(resp, err, attempt)
		if !retry || attempt >= t.attempts {
			return resp, err
		}
		status := "error"
		if resp != nil {
			status = resp.Status
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t.log.Warn("GitHub API call failed; retrying", "method", req.Method, "path", req.URL.Path,
			"status", status, "err", err, "attempt", attempt, "wait", wait)
		if err := sleep(req.Context(), wait); err != nil {
			return nil, err
		}
	}
}

func (t *retryTransport) shouldRetry(resp *http.Response, err error, attempt int) (time.Duration, bool) {
	backoff := time.Duration(float64(500*time.Millisecond) * float64(int(1)<<(attempt-1)) * (0.75 + 0.5*rand.Float64()))
	if err != nil {
		return min(backoff, t.maxWait), true
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode >= 500:
	case resp.StatusCode == http.StatusForbidden && (resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0"):
	default:
		return 0, false
	}
	if s := resp.Header.Get("Retry-After"); s != "" {
		if secs, err := strconv.Atoi(s); err == nil && secs >= 0 {
			return min(time.Duration(secs)*time.Second, t.maxWait), true
		}
	}
	if resp.Header.Get("X-RateLimit-Remaining") == "0" {
		if reset, err := strconv.ParseInt(resp.Header.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			return min(max(time.Until(time.Unix(reset, 0)), time.Second), t.maxWait), true
		}
	}
	return min(backoff, t.maxWait), true
}

func sleep(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
