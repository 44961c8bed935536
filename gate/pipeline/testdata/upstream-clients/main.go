// upstream-clients calls an upstream stub for every request, in one of two
// ways that both leave idle client connections open after the load:
//
//   - CLIENT=pool-widens: one shared client whose pool is bounded at 8 idle
//     connections. Each request fans out to the upstream, one call at a
//     time for its first 1,400 requests (a test's 3 s warm-up at 200/s is
//     600: the window's first reading, taken while its load runs, has 4 s
//     to come even on a busy machine), then wider, up to 8 at once from
//     request 1,680 on: the pool widens to its bound during the measured
//     window and stays there. Not a leak.
//   - CLIENT=new-every-400: a new client (transport) for every 400th
//     request, the old one never closed: its idle connection stays open for
//     good. A slow leak: 3 connections (6 goroutines) in the last half of a
//     test's 12 s window, too few for the growth trend to call it.
package main

import (
	"io"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

var (
	shared   = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	requests atomic.Int64
	mu       sync.Mutex
	current  = shared
)

func get(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// poolWidens fans out to the upstream, wider as requests go by.
func poolWidens(url string) error {
	n := requests.Add(1)
	width := min(8, max(1, 1+int(n-1400)/40))
	errs := make(chan error, width)
	for range width {
		go func() { errs <- get(shared, url) }()
	}
	var first error
	for range width {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// newEvery400 swaps in a new client every 400th request, as a service
// that remakes its client when a credential rotates, and never closes the
// old one's idle connection. Calls take turns on the client (a lock), so
// each client has exactly one connection.
func newEvery400(url string) error {
	mu.Lock()
	defer mu.Unlock()
	if requests.Add(1)%400 == 0 {
		current = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	}
	return get(current, url)
}

func main() {
	call := poolWidens
	if os.Getenv("CLIENT") == "new-every-400" {
		call = newEvery400
	}
	url := "http://" + os.Getenv("UPSTREAM") + "/price?sku=A-1"
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if err := call(url); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Write([]byte("ok\n"))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+os.Getenv("PORT"), nil))
}
