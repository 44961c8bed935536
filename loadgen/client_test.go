package loadgen

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testlock"
)

// sseServer sends an event every period until its client leaves, and counts
// the handlers running, the most at once, and the events each sent.
type sseServer struct {
	period             time.Duration
	running, most, all atomic.Int64
	events             atomic.Int64
	leftByClient       atomic.Int64
}

func (s *sseServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := s.running.Add(1)
	defer s.running.Add(-1)
	for {
		m := s.most.Load()
		if n <= m || s.most.CompareAndSwap(m, n) {
			break
		}
	}
	s.all.Add(1)
	if r.Header.Get(hdrTarget) != "" {
		http.Error(w, "the transport's header reached the service", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.WriteHeader(http.StatusOK)
	w.(http.Flusher).Flush()
	tick := time.NewTicker(s.period)
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-r.Context().Done():
			s.leftByClient.Add(1)
			return
		case <-tick.C:
			fmt.Fprintf(w, "id: %d\r\ndata: tick\r\n\r\n", i)
			w.(http.Flusher).Flush()
			s.events.Add(1)
		}
	}
}

func TestStreamsAreHeldThenLeft(t *testing.T) {
	testlock.Gate(t)
	sse := &sseServer{period: 20 * time.Millisecond}
	srv := httptest.NewServer(sse)
	defer srv.Close()
	hold := 300 * time.Millisecond
	targets := []Target{{Method: "GET", URL: "/events", Stream: &Stream{Hold: hold}}}
	g, err := New(srv.URL, targets, Options{Rate: 20, Connections: 2, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	load, err := g.Attack(context.Background(), 2*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if load.Requests < 36 || load.Requests > 44 || load.Streams != load.Requests {
		t.Fatalf("requests %d, streams %d: want about 40, all streams", load.Requests, load.Streams)
	}
	if load.SuccessRatio != 1 || load.AchievedRate < 18 {
		t.Fatalf("success %.3f rate %.1f (errors %v): want every stream a success at about 20/s", load.SuccessRatio, load.AchievedRate, load.Errors)
	}
	// Latency is the time to the response headers, not the hold.
	if p := load.Latency.P99.Std(); p >= hold/2 {
		t.Errorf("p99 latency %v: want the time to first byte, well under the %v hold", p, hold)
	}
	if took > 2*time.Second+hold+time.Second {
		t.Errorf("attack took %v: streams were not left at their hold", took)
	}
	// The client left each stream: every handler saw it and ended.
	deadline := time.Now().Add(2 * time.Second)
	for sse.running.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if sse.running.Load() != 0 || sse.leftByClient.Load() != sse.all.Load() {
		t.Fatalf("%d handlers still running, %d of %d saw the client leave", sse.running.Load(), sse.leftByClient.Load(), sse.all.Load())
	}
	// 20/s held 0.3 s: about 6 open at once, more than the 2 connections.
	// The workers also cover headers that would take the whole timeout.
	if m := sse.most.Load(); m < 4 || int(m) > g.workers {
		t.Errorf("%d streams open at once, want about 6 and at most %d", m, g.workers)
	}
	if per := float64(sse.events.Load()) / float64(sse.all.Load()); per < 8 || per > 16 {
		t.Errorf("%.1f events per stream, want about 15 (300 ms at one per 20 ms)", per)
	}
}

func TestStreamLeavesAfterEventsOrBytes(t *testing.T) {
	testlock.Gate(t)
	for _, c := range []struct {
		name   string
		stream Stream
		most   float64 // events a stream may have been sent before the client left
	}{
		{"events", Stream{Hold: 10 * time.Second, MaxEvents: 3}, 4},
		// An event is 21 bytes ("id: 0\r\ndata: tick\r\n\r\n"): 60 end the third.
		{"bytes", Stream{Hold: 10 * time.Second, MaxBytes: 60}, 4},
	} {
		t.Run(c.name, func(t *testing.T) {
			sse := &sseServer{period: 30 * time.Millisecond}
			srv := httptest.NewServer(sse)
			defer srv.Close()
			g, err := New(srv.URL, []Target{{Method: "GET", URL: "/events", Stream: &c.stream}}, Options{Rate: 10, Connections: 1, Timeout: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			load, err := g.Attack(context.Background(), time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Fatalf("attack took %v: streams were held to their hold, not their %s", took, c.name)
			}
			if load.SuccessRatio != 1 || load.Streams == 0 {
				t.Fatalf("success %.3f streams %d: %v", load.SuccessRatio, load.Streams, load.Errors)
			}
			for deadline := time.Now().Add(time.Second); sse.running.Load() > 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			// The client leaves once the third event is in: a handler may
			// have sent it a moment after a ticker's last, or one more.
			if per := float64(sse.events.Load()) / float64(sse.all.Load()); per < 2.5 || per > c.most {
				t.Errorf("%.1f events sent per stream, want 3 to %g", per, c.most)
			}
		})
	}
}

func TestStreamWithUnexpectedStatusFails(t *testing.T) {
	testlock.Gate(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such stream", http.StatusNotFound)
	}))
	defer srv.Close()
	g, err := New(srv.URL, []Target{{Method: "GET", URL: "/events", Stream: &Stream{Hold: time.Second}}}, Options{Rate: 20, Connections: 2, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	load, err := g.Attack(context.Background(), 500*time.Millisecond, nil)
	if err != nil {
		t.Fatal(err)
	}
	if load.SuccessRatio != 0 || len(load.Errors) == 0 || !strings.Contains(load.Errors[0], "stream answered 404, want 200") {
		t.Fatalf("success %.3f errors %v: want every stream failed for its status", load.SuccessRatio, load.Errors)
	}
}

// slowServer answers after a delay unless the client leaves first; with
// early it sends its headers at once and the body after the delay.
type slowServer struct {
	delay               time.Duration
	early               bool
	served, leftByPeer  atomic.Int64
	targetHeaderReached atomic.Bool
}

func (s *slowServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get(hdrTarget) != "" {
		s.targetHeaderReached.Store(true)
	}
	if s.early {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
	}
	select {
	case <-r.Context().Done():
		s.leftByPeer.Add(1)
	case <-time.After(s.delay):
		w.Write([]byte("done"))
		s.served.Add(1)
	}
}

func TestRequestsLeaveEarly(t *testing.T) {
	testlock.Gate(t)
	for _, early := range []bool{false, true} {
		t.Run(fmt.Sprintf("headers-first=%v", early), func(t *testing.T) {
			slow := &slowServer{delay: 300 * time.Millisecond, early: early}
			srv := httptest.NewServer(slow)
			defer srv.Close()
			targets := []Target{{Method: "GET", URL: "/report", Leave: Leave{After: 50 * time.Millisecond, Share: 0.5}}}
			g, err := New(srv.URL, targets, Options{Rate: 40, Connections: 20, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			load, err := g.Attack(context.Background(), time.Second, nil)
			if err != nil {
				t.Fatal(err)
			}
			if load.Requests < 36 || load.Requests > 44 {
				t.Fatalf("requests %d, want about 40", load.Requests)
			}
			if load.LeftEarly != load.Requests/2 {
				t.Errorf("%d of %d left early, want half", load.LeftEarly, load.Requests)
			}
			if load.SuccessRatio != 1 {
				t.Errorf("success %.3f (%v): leaving is not failing", load.SuccessRatio, load.Errors)
			}
			// Only answers are statuses: requests left before their headers
			// are not a status.
			if load.StatusCodes["0"] != 0 || (!early && load.StatusCodes["200"] != int(load.Requests-load.LeftEarly)) {
				t.Errorf("status codes %v for %d requests, %d left", load.StatusCodes, load.Requests, load.LeftEarly)
			}
			time.Sleep(100 * time.Millisecond)
			if got := slow.leftByPeer.Load(); got != int64(load.LeftEarly) {
				t.Errorf("the server saw %d clients leave, want %d", got, load.LeftEarly)
			}
			if slow.targetHeaderReached.Load() {
				t.Error("the transport's target header reached the service")
			}
		})
	}
}

func TestOrdinaryRequestsKeepTheirTimeout(t *testing.T) {
	testlock.Gate(t)
	slow := &slowServer{delay: 2 * time.Second}
	srv := httptest.NewServer(slow)
	defer srv.Close()
	for _, early := range []bool{false, true} {
		slow.early = early
		g, err := New(srv.URL, []Target{{Method: "GET", URL: "/"}}, Options{Rate: 10, Connections: 5, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		load, err := g.Attack(context.Background(), 300*time.Millisecond, nil)
		if err != nil {
			t.Fatal(err)
		}
		if load.SuccessRatio != 0 || len(load.Errors) == 0 || !strings.Contains(load.Errors[0], "within 200ms (load.timeout)") {
			t.Fatalf("headers first %v: success %.3f errors %v: want timeouts", early, load.SuccessRatio, load.Errors)
		}
	}
}

func TestStreamsHeldBound(t *testing.T) {
	targets := []Target{{Method: "GET", URL: "/"}, {Method: "GET", URL: "/events", Stream: &Stream{Hold: 2 * time.Second}}}
	// 200/s, half of it streams held 2 s whose headers may take 5 s.
	if got := StreamsHeld(200, 5*time.Second, targets); got != 701 {
		t.Errorf("StreamsHeld = %d, want 701", got)
	}
	if got := StreamsHeld(200, 5*time.Second, targets[:1]); got != 0 {
		t.Errorf("StreamsHeld without streams = %d", got)
	}
	if _, err := New("http://127.0.0.1:1", targets, Options{Rate: 2000, Connections: 10, Timeout: time.Second}); err == nil ||
		!strings.Contains(err.Error(), "lower the rate, the hold or the timeout") {
		t.Errorf("3000 streams in flight: err %v", err)
	}
	bad := []Target{{Method: "GET", URL: "/", Leave: Leave{After: time.Second, Share: 1.5}}}
	if _, err := New("http://127.0.0.1:1", bad, Options{Rate: 1, Connections: 1, Timeout: time.Second}); err == nil {
		t.Error("a share of 1.5 accepted")
	}
}
