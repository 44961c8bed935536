// heap-leak remembers LEAK_BYTES (default 1 KiB) for every request and
// never forgets: memgate should fail it and name orderStore.remember.
package main

import (
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
)

type orderStore struct {
	mu      sync.Mutex
	history [][]byte
}

//go:noinline
func (s *orderStore) remember(n int) {
	rec := make([]byte, n)
	s.mu.Lock()
	s.history = append(s.history, rec)
	s.mu.Unlock()
}

func main() {
	n := 1024
	if v, err := strconv.Atoi(os.Getenv("LEAK_BYTES")); err == nil && v > 0 {
		n = v
	}
	store := &orderStore{}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		store.remember(n)
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
