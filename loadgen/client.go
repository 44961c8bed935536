package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// Stream makes a target a stream (server-sent events, a long poll, a
// chunked response that does not end): the client holds the response for
// Hold, or until MaxBytes or MaxEvents have arrived, then disconnects. The
// request succeeds when the response started with Status.
type Stream struct {
	Hold      time.Duration
	MaxBytes  int64 // 0: no limit
	MaxEvents int   // server-sent events (ended by a blank line); 0: no limit
	Status    int   // 0 means 200
}

// Leave makes a share of a target's requests leave early: the client
// cancels them After the request started, wherever they are, as a user
// closing a tab does. A request left this way succeeds unless it failed
// before the client left.
type Leave struct {
	After time.Duration
	Share float64 // of the target's requests, in (0, 1]
}

// Headers between the transport and the attack loop. The target header is
// removed before a request leaves; the others are set on responses here.
const (
	hdrTarget     = "X-Memgate-Target"
	hdrTTFB       = "X-Memgate-Ttfb"       // a stream's time to its response headers, ns
	hdrUnexpected = "X-Memgate-Unexpected" // a stream's status was not the one wanted
	hdrLeft       = "X-Memgate-Left"       // "before" or "during" the response
)

// kindTransport runs each request by its target's kind: ordinary requests
// within the timeout, streams held and then left, some requests left early.
// It owns every deadline, so the client has no timeout of its own (a
// client timeout would end every stream).
type kindTransport struct {
	base    http.RoundTripper
	timeout time.Duration
	targets []Target
	counts  []atomic.Uint64 // requests per target, for the share that leaves
}

func (t *kindTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	i, err := strconv.Atoi(req.Header.Get(hdrTarget))
	if err != nil || i < 0 || i >= len(t.targets) {
		return nil, fmt.Errorf("loadgen: request without a known target")
	}
	req = req.Clone(req.Context())
	req.Header.Del(hdrTarget)
	tg := t.targets[i]
	switch {
	case tg.Stream != nil:
		return t.stream(req, *tg.Stream)
	case tg.Leave.After > 0 && t.leaves(i, tg.Leave.Share):
		return t.leave(req, tg.Leave.After)
	}
	return t.ordinary(req)
}

// leaves picks the target's requests that leave, spread evenly: the nth
// leaves when floor(n*share) steps up.
func (t *kindTransport) leaves(i int, share float64) bool {
	n := float64(t.counts[i].Add(1))
	return int64(n*share) > int64((n-1)*share)
}

func (t *kindTransport) ordinary(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	var timedOut atomic.Bool
	timer := time.AfterFunc(t.timeout, func() { timedOut.Store(true); cancel() })
	stop := func() { timer.Stop(); cancel() }
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		if timedOut.Load() {
			return nil, fmt.Errorf("no response within %s (load.timeout)", t.timeout)
		}
		return nil, err
	}
	resp.Body = &heldBody{rc: resp.Body, stop: stop, timedOut: &timedOut, timeout: t.timeout}
	return resp, nil
}

// leave sends a request and cancels it after a delay.
func (t *kindTransport) leave(req *http.Request, after time.Duration) (*http.Response, error) {
	ctx, cancel := context.WithCancel(req.Context())
	var left, timedOut atomic.Bool
	leave := time.AfterFunc(after, func() { left.Store(true); cancel() })
	timer := time.AfterFunc(t.timeout, func() { timedOut.Store(!left.Load()); cancel() })
	stop := func() { leave.Stop(); timer.Stop(); cancel() }
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	if err != nil {
		stop()
		switch {
		case left.Load():
			// Counted apart by the attack loop, not as a status.
			h := http.Header{}
			h.Set(hdrLeft, "before")
			return &http.Response{StatusCode: http.StatusOK, Status: "left", Header: h, Body: http.NoBody, Request: req}, nil
		case timedOut.Load():
			return nil, fmt.Errorf("no response within %s (load.timeout)", t.timeout)
		}
		return nil, err
	}
	resp.Body = &heldBody{rc: resp.Body, stop: stop, left: &left, header: resp.Header, timedOut: &timedOut, timeout: t.timeout}
	return resp, nil
}

// stream waits for the response's headers within the timeout, then holds
// the response until its hold, bytes or events are used up.
func (t *kindTransport) stream(req *http.Request, s Stream) (*http.Response, error) {
	start := time.Now()
	ctx, cancel := context.WithCancel(req.Context())
	var timedOut, held atomic.Bool
	timer := time.AfterFunc(t.timeout, func() { timedOut.Store(true); cancel() })
	resp, err := t.base.RoundTrip(req.WithContext(ctx))
	timer.Stop()
	if err != nil {
		cancel()
		if timedOut.Load() {
			return nil, fmt.Errorf("stream: no response headers within %s (load.timeout)", t.timeout)
		}
		return nil, err
	}
	resp.Header.Set(hdrTTFB, strconv.FormatInt(int64(time.Since(start)), 10))
	want := s.Status
	if want == 0 {
		want = http.StatusOK
	}
	if resp.StatusCode != want {
		resp.Header.Set(hdrUnexpected, fmt.Sprintf("stream answered %d, want %d", resp.StatusCode, want))
	}
	hold := time.AfterFunc(s.Hold, func() { held.Store(true); cancel() })
	resp.Body = &heldBody{rc: resp.Body, stop: func() { hold.Stop(); cancel() }, left: &held,
		bytesLeft: s.MaxBytes, eventsLeft: s.MaxEvents}
	return resp, nil
}

// heldBody is a response body the client may end on purpose: once left is
// set (a hold ran out, a request left early), or its bytes or events are
// used up, it ends as if the server had ended it. Close cancels the
// request, which closes its connection.
type heldBody struct {
	rc       io.ReadCloser
	stop     func()
	left     *atomic.Bool // nil: never left on purpose
	header   http.Header  // marked when a request leaves during its body
	timedOut *atomic.Bool
	timeout  time.Duration

	bytesLeft  int64 // 0: no limit
	eventsLeft int   // 0: no limit
	lastNL     bool  // the previous byte read was a newline
	done       bool
}

func (b *heldBody) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if b.used(p[:n]) {
		b.done = true
		b.stop()
		return n, io.EOF
	}
	if err != nil && !errors.Is(err, io.EOF) {
		switch {
		case b.left != nil && b.left.Load():
			if b.header != nil {
				b.header.Set(hdrLeft, "during")
			}
			b.done = true
			return n, io.EOF
		case b.timedOut != nil && b.timedOut.Load():
			return n, fmt.Errorf("response not finished within %s (load.timeout)", b.timeout)
		}
	}
	return n, err
}

// used counts what arrived against the byte and event limits.
func (b *heldBody) used(p []byte) bool {
	if b.bytesLeft > 0 {
		b.bytesLeft -= int64(len(p))
		if b.bytesLeft <= 0 {
			return true
		}
	}
	if b.eventsLeft > 0 {
		for _, c := range p {
			switch c {
			case '\r':
				continue
			case '\n':
				if b.lastNL {
					b.eventsLeft--
					if b.eventsLeft == 0 {
						return true
					}
				}
				b.lastNL = true
			default:
				b.lastNL = false
			}
		}
	}
	return false
}

func (b *heldBody) Close() error {
	b.stop()
	return b.rc.Close()
}
