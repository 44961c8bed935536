// big-heap holds a large, steady catalogue in memory (HEAP_MB, default 256
// MiB of entries) and, for every request, remembers LEAK_BYTES (default
// 128; 0 for none) in a view log it never trims. The leak is a fraction of
// a percent of the heap over a gate's window: memgate must find it by its
// slope, not by the heap's size or swing, and name catalogue.recordView.
// With LEAK_BYTES=0 it is a healthy big-heap service that must pass.
package main

import (
	"encoding/json"
	"log"
	"math/rand/v2"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
)

const entrySize = 256

type catalogue struct {
	entries [][]byte

	mu    sync.Mutex
	views [][]byte
}

func newCatalogue(megabytes int) *catalogue {
	c := &catalogue{entries: make([][]byte, megabytes<<20/entrySize)}
	for i := range c.entries {
		e := make([]byte, entrySize)
		e[0] = byte(i)
		c.entries[i] = e
	}
	return c
}

//go:noinline
func (c *catalogue) recordView(n int) {
	if n == 0 {
		return
	}
	v := make([]byte, n)
	c.mu.Lock()
	c.views = append(c.views, v)
	c.mu.Unlock()
}

func main() {
	heapMB := envInt("HEAP_MB", 256)
	leak := envInt("LEAK_BYTES", 128)
	cat := newCatalogue(heapMB)
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		i := rand.IntN(len(cat.entries))
		cat.recordView(leak)
		json.NewEncoder(w).Encode(map[string]any{"item": i, "first": cat.entries[i][0]})
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+envString("PORT", "8080"), nil))
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v >= 0 {
		return v
	}
	return def
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
