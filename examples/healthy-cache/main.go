// healthy-cache keeps the last CACHE_ENTRIES responses (2 KiB each) in a
// bounded cache. At memgate's default 200 requests/s the default 5,000
// entries fill 25 s after the load starts, well into the measured window,
// then stay full: growth that stops is not a leak, and memgate should pass it.
package main

import (
	"fmt"
	"log"
	"net/http"
	_ "net/http/pprof"
	"os"
	"strconv"
	"sync"
)

type cache struct {
	mu      sync.Mutex
	max     int
	next    int
	entries map[int][]byte
	order   []int
}

func (c *cache) put(key int, val []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.order) >= c.max {
		oldest := c.order[0]
		c.order = c.order[1:]
		delete(c.entries, oldest)
	}
	c.entries[key] = val
	c.order = append(c.order, key)
}

func main() {
	max := 5000
	if v, err := strconv.Atoi(os.Getenv("CACHE_ENTRIES")); err == nil && v > 0 {
		max = v
	}
	c := &cache{max: max, entries: map[int][]byte{}}
	http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.next++
		key := c.next
		c.mu.Unlock()
		body := make([]byte, 2048)
		copy(body, fmt.Sprintf(`{"key":%d}`, key))
		c.put(key, body)
		w.Write(body[:16])
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:"+port(), nil))
}

func port() string {
	if p := os.Getenv("PORT"); p != "" {
		return p
	}
	return "8080"
}
