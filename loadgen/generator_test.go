package loadgen

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/memgate/memgate/internal/testlock"
)

func TestAttackPacesAndSummarises(t *testing.T) {
	testlock.Gate(t) // load from here would disturb a gate measuring in another package
	var hits atomic.Int64
	var mu sync.Mutex
	conns := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		mu.Lock()
		conns[r.RemoteAddr] = true
		mu.Unlock()
		if r.URL.Path == "/fail" {
			http.Error(w, "no", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(strings.Repeat("x", 4096)))
	}))
	defer srv.Close()

	g, err := New(srv.URL, []Target{{Method: "GET", URL: "/ok"}, {Method: "GET", URL: "/ok"}, {Method: "GET", URL: "/fail"}},
		Options{Rate: 100, Connections: 3, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var ticks []Tick
	load, err := g.Attack(context.Background(), 2*time.Second, func(tk Tick) { ticks = append(ticks, tk) })
	if err != nil {
		t.Fatal(err)
	}
	if load.Requests < 190 || load.Requests > 210 || int64(load.Requests) != hits.Load() {
		t.Fatalf("requests %d (server saw %d), want about 200", load.Requests, hits.Load())
	}
	if load.AchievedRate < 90 || load.AchievedRate > 110 {
		t.Errorf("achieved rate %.1f, want about 100", load.AchievedRate)
	}
	if load.SuccessRatio < 0.6 || load.SuccessRatio > 0.7 {
		t.Errorf("success %.3f, want 2/3", load.SuccessRatio)
	}
	if load.StatusCodes["500"] == 0 || load.StatusCodes["200"] == 0 || len(load.Errors) == 0 {
		t.Errorf("codes %v errors %v", load.StatusCodes, load.Errors)
	}
	if load.Latency.P99 <= 0 || load.Latency.Max < load.Latency.P50 {
		t.Errorf("latency %+v", load.Latency)
	}
	if len(ticks) < 1 || ticks[0].Rate < 50 {
		t.Errorf("ticks %+v", ticks)
	}
	mu.Lock()
	if len(conns) > 3 {
		t.Errorf("%d connections used, want at most 3", len(conns))
	}
	mu.Unlock()

	// A second attack reuses the same connections.
	if _, err := g.Attack(context.Background(), 500*time.Millisecond, nil); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(conns) > 3 {
		t.Errorf("%d connections after the second attack", len(conns))
	}
	mu.Unlock()
	g.CloseIdleConnections()
}

func TestAttackStopsWithContext(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	g, err := New(srv.URL, []Target{{Method: "GET", URL: "/"}}, Options{Rate: 50, Connections: 2, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = g.Attack(ctx, time.Minute, nil)
	if err == nil {
		t.Fatal("want an error when the context ends")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("attack ran %v after cancel", time.Since(start))
	}
}

func TestOnlyLoopback(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1/", "http://example.com/", "http://192.168.1.1:80/x", "ftp://127.0.0.1/"} {
		if _, err := New("http://127.0.0.1:1", []Target{{Method: "GET", URL: u}}, Options{Rate: 1, Connections: 1, Timeout: time.Second}); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, err := New("http://127.0.0.1:1", []Target{{Method: "GET", URL: "http://[::1]:9/x"}}, Options{Rate: 1, Connections: 1, Timeout: time.Second}); err != nil {
		t.Errorf("::1 refused: %v", err)
	}
}

// TestScheduledLatencySeesAStall: a lock held 300 ms every 2 s holds the
// one connection, and the requests due meanwhile wait behind it. Counted
// from the send, only the one request caught in the lock is slow (0.5% of
// them, under the p99); counted from the schedule, every request due in
// the stall is.
func TestScheduledLatencySeesAStall(t *testing.T) {
	testlock.Gate(t)
	var mu sync.Mutex
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(1700 * time.Millisecond):
			}
			mu.Lock()
			time.Sleep(300 * time.Millisecond)
			mu.Unlock()
		}
	}()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		mu.Unlock()
	}))
	defer srv.Close()
	g, err := New(srv.URL, []Target{{Method: "GET", URL: "/"}}, Options{Rate: 100, Connections: 1, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer g.CloseIdleConnections()
	load, err := g.Attack(context.Background(), 4*time.Second, nil)
	if err != nil {
		t.Fatal(err)
	}
	sent, due := load.Latency.P99.Std(), load.ScheduledLatency.P99.Std()
	t.Logf("p99 from the send %v, from the schedule %v; max %v / %v", sent, due, load.Latency.Max, load.ScheduledLatency.Max)
	if due < 150*time.Millisecond {
		t.Errorf("p99 from the schedule %v: the 300 ms stalls are not seen", due)
	}
	if sent >= due || load.ScheduledLatency.P50 < load.Latency.P50 || load.ScheduledLatency.Max.Std() < 250*time.Millisecond {
		t.Errorf("from the send %+v, from the schedule %+v", load.Latency, load.ScheduledLatency)
	}
}
