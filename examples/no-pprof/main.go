// no-pprof does not import net/http/pprof, and its catch-all route answers
// 200 to any path, /debug/pprof/heap included. memgate must see that this is
// not pprof and read the service through the reader it adds to the build.
// LEAK_BYTES (default 0) makes it leak, to show the reader names leaks too.
package main

import (
	"encoding/json"
	"log"
	"net/http"
	"os"
	"strconv"
	"sync"
)

type router struct {
	mu       sync.Mutex
	kept     [][]byte
	leakSize int
}

func (rt *router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rt.leakSize > 0 {
		rt.keep(rt.leakSize)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"path": r.URL.Path, "status": "ok"})
}

//go:noinline
func (rt *router) keep(n int) {
	b := make([]byte, n)
	rt.mu.Lock()
	rt.kept = append(rt.kept, b)
	rt.mu.Unlock()
}

func main() {
	rt := &router{}
	if v, err := strconv.Atoi(os.Getenv("LEAK_BYTES")); err == nil {
		rt.leakSize = v
	}
	addr := "127.0.0.1:" + os.Getenv("PORT")
	if os.Getenv("PORT") == "" {
		addr = "127.0.0.1:8080"
	}
	log.Fatal(http.ListenAndServe(addr, rt))
}
