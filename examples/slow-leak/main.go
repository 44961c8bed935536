// slow-leak keeps a small session record (LEAK_BYTES, default 256 bytes) for
// every request in a map nothing ever evicts: a leak of a few hundred bytes
// per request that memgate should still catch, naming sessions.touch.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
)

type sessions struct {
	mu   sync.Mutex
	seen map[int64][]byte
	next int64
}

//go:noinline
func (s *sessions) touch(size int) {
	rec := make([]byte, size)
	s.mu.Lock()
	s.next++
	s.seen[s.next] = rec
	s.mu.Unlock()
}

func main() {
	size := 256
	if v, err := strconv.Atoi(os.Getenv("LEAK_BYTES")); err == nil && v > 0 {
		size = v
	}
	s := &sessions{seen: map[int64][]byte{}}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.touch(size)
		w.Write([]byte(`{"ok":true}`))
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
